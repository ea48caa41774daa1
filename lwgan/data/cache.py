"""The synthetic dataset a config asks for, generated once and cached under ``paths.cache_dir()/synth/<hash>``.

Generation writes into a temporary folder that is renamed into place, so a crash or a
concurrent reader never sees half a dataset; a lock file (filelock) makes concurrent trials wait
for one writer instead of generating the same data twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from filelock import FileLock

from lwgan import paths
from lwgan.data.synth import GENERATOR_VERSION, synthesize_iper
from lwgan.errors import DataError
from lwgan.fsutil import replace_dir

_STALE_TEMP_SECONDS = 3600.0


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def body_model_fingerprint(body_model: str | None) -> str:
    """Content hash of the body model file (the generated one is made and cached on first use)."""
    if body_model is None:
        from lwgan.body import load_body_model

        source = Path(str(load_body_model(None).source))
    else:
        source = Path(body_model).expanduser()
    if not source.is_file():
        raise DataError(f"{source}: body model file not found")
    return _file_digest(source)


def synth_params(data_cfg: Any) -> dict[str, Any]:
    return {
        "generator_version": GENERATOR_VERSION,
        "subjects": int(data_cfg.synth_subjects),
        "frames": int(data_cfg.synth_frames),
        "size": int(data_cfg.synth_size),
        "seed": int(data_cfg.synth_seed),
        "body_model": body_model_fingerprint(data_cfg.body_model),
    }


def synth_key(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def _remove_stale_temps(folder: Path, key: str) -> None:
    now = time.time()
    for tmp in folder.glob(f".tmp-{key}-*"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > _STALE_TEMP_SECONDS:
                shutil.rmtree(tmp, ignore_errors=True)


def ensure_synthetic_dataset(data_cfg: Any) -> Path:
    """Path of the synthetic mini-iPER for ``data_cfg`` (a ``DataConfig``), generated on first use."""
    params = synth_params(data_cfg)
    key = synth_key(params)
    folder = paths.cache_dir() / "synth"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / key
    summary = f"{params['subjects']} subjects x 2 videos x {params['frames']} frames, {params['size']} px, seed {params['seed']}"
    if (final / "train.txt").is_file():
        print(f"data: using the synthetic mini-iPER at {final} ({summary}; cached)")
        return final
    with FileLock(str(folder / f"{key}.lock")):
        if (final / "train.txt").is_file():  # another process finished while we waited
            print(f"data: using the synthetic mini-iPER at {final} ({summary}; cached)")
            return final
        _remove_stale_temps(folder, key)
        tmp = folder / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        start = time.perf_counter()
        try:
            synthesize_iper(
                tmp,
                subjects=params["subjects"],
                frames=params["frames"],
                size=params["size"],
                seed=params["seed"],
                body_model_path=data_cfg.body_model,
            )
            (tmp / "cache_key.json").write_text(json.dumps(params, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            try:
                replace_dir(tmp, final)
            except OSError:
                if not (final / "train.txt").is_file():
                    raise
                # Lost a race with a writer that ignored the lock (e.g. no flock on a network
                # file system): its dataset is identical, keep it.
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - start
    print(f"data: using the synthetic mini-iPER at {final} ({summary}; generated in {seconds:.1f} s)")
    return final
