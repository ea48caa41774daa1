"""Checkpoints that ``torch.load(weights_only=True)`` accepts: models, optimisers, counters and every RNG state.

Two generations are kept: a new checkpoint is written to a temporary file, synced and verified
(every zip member's CRC), then the old ``last.pt`` becomes ``prev.pt`` and the new one ``last.pt``
(both renames atomic, the folder synced). ``load_latest_checkpoint`` reads ``last.pt`` and falls back
to ``prev.pt`` when it is unreadable (truncated, zero bytes, cut short by a crash of the machine),
saying so in one line; the trainer only ever saves a state that passed the divergence guard.
"""

from __future__ import annotations

import os
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lwgan.errors import DiskFullError, UserError, first_line
from lwgan.fsutil import atomic_write, free_mib, is_no_space


def capture_rng_state() -> dict[str, Any]:
    """torch (CPU and every CUDA device), numpy and Python RNG states as tensors / lists / ints."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "python": {"version": int(py_version), "internal": [int(x) for x in py_internal], "gauss_next": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["name"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


PREVIOUS_NAME = "prev.pt"


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint read by ``load_latest_checkpoint``: its payload, the file it came from, and the
    one-line fallback message when the newer file was unreadable (None when it was not)."""

    payload: dict[str, Any]
    path: Path
    fallback: str | None = None


def previous_path(path: Path) -> Path:
    """Where the generation before ``path`` is kept (``checkpoints/prev.pt`` beside ``last.pt``)."""
    return Path(path).with_name(PREVIOUS_NAME)


def checkpoint_files(path: Path) -> list[Path]:
    """The checkpoint files present, newest first (``last.pt``, then ``prev.pt``)."""
    return [p for p in (Path(path), previous_path(path)) if p.is_file()]


class CheckpointUnreadable(Exception):
    """A checkpoint file that cannot be read back; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


def verify_checkpoint_file(path: Path) -> None:
    """Raise ``CheckpointUnreadable`` unless ``path`` is a complete torch zip archive with intact CRCs."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise CheckpointUnreadable(path, "zero bytes")
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except CheckpointUnreadable:
        raise
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as err:
        raise CheckpointUnreadable(path, f"{type(err).__name__}: {err}") from None
    if bad is not None:
        raise CheckpointUnreadable(path, f"member {bad} fails its CRC check")


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path``: temp file, fsync, verify, then ``path`` -> ``prev.pt`` and temp -> ``path``.

    A crash at any moment leaves at least one verified checkpoint (``last.pt`` or ``prev.pt``)."""
    path = Path(path)
    try:
        with atomic_write(path) as tmp:
            torch.save(payload, tmp)
            verify_checkpoint_file(tmp)
            if path.is_file():
                os.replace(path, previous_path(path))  # the tmp -> path rename follows when the block ends
    except (OSError, RuntimeError) as err:
        full = disk_full_error(path, err)
        if full is None:
            raise
        raise full from err
    return path


MIN_CHECKPOINT_BYTES = 64 * 2**20  # a floor for the space a checkpoint needs when no earlier one shows its size


def disk_full_error(path: Path, err: BaseException) -> DiskFullError | None:
    """A DiskFullError (a UserError) naming ``path`` and the free space when writing it failed for want of space, else None.

    torch reports a full disk while saving only as ``unexpected pos N vs M`` (its zip writer); the
    write counts as failed for space when the OS said so (ENOSPC, EDQUOT) or when the folder now has
    less room than the previous checkpoint took (the failed temporary file is already removed)."""
    free = free_mib(path.parent)
    if free is None:
        return None
    needed = max((p.stat().st_size for p in checkpoint_files(path)), default=MIN_CHECKPOINT_BYTES) / 2**20
    if not is_no_space(err) and free >= needed * 1.1:
        return None
    return DiskFullError(f"cannot write checkpoint {path}: its disk has {free:.0f} MiB free and a checkpoint "
                         f"takes ~{needed:.0f} MiB ({type(err).__name__}: {first_line(err).strip()}); free space there "
                         "(old runs under runs/, caches) and resume (`--resume`), or train into a folder on another disk")


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load one checkpoint file with ``weights_only=True`` (no arbitrary unpickling)."""
    return torch.load(Path(path), map_location=map_location, weights_only=True)


def _read(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    verify_checkpoint_file(path)
    try:
        payload = load_checkpoint(path, map_location)
    except Exception as err:  # noqa: BLE001 - any failure to unpickle makes this generation unusable
        raise CheckpointUnreadable(path, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
    if not isinstance(payload, dict) or "step" not in payload:
        raise CheckpointUnreadable(path, "not a training checkpoint (no 'step')")
    return payload


def load_latest_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> LoadedCheckpoint | None:
    """The newest readable generation of ``path`` (``last.pt``, else ``prev.pt``); None when neither exists.

    Raises ``UserError`` naming the files and the way out when checkpoints exist but none is readable."""
    path = Path(path)
    problems: list[CheckpointUnreadable] = []
    for candidate in (path, previous_path(path)):
        if not candidate.is_file():
            continue
        try:
            payload = _read(candidate, map_location)
        except CheckpointUnreadable as err:
            problems.append(err)
            continue
        message = None
        if problems:
            message = (f"checkpoint {problems[0].path} is unreadable ({problems[0].reason}); "
                       f"resuming from the previous one, {candidate} (step {payload['step']})")
        return LoadedCheckpoint(payload, candidate, message)
    if not problems:
        return None
    what = "; ".join(f"{p.path}: {p.reason}" for p in problems)
    raise UserError(f"no readable checkpoint to resume from ({what}). Start over: train into a new --out "
                    f"(or delete {path.parent}); a study trial restarts from step 0 once that folder is removed")
