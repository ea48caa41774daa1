"""``lwgan-study train``: resolve a config (profile, YAML file, --set), run one Trainer, print a header and a summary."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Mapping

import yaml

from lwgan import vocab
from lwgan.cli_flags import config_flags
from lwgan.config import CHOICES, FIELD_SECTION, FIELD_TYPES, SECTIONS, ConfigError, TrainConfig
from lwgan.errors import UserError
from lwgan.layering import config_layers, layer_config
from lwgan.paths import project_dir
from lwgan.profiles import DEFAULT_PROFILE, PROFILES, missing_real_assets, profile_overrides

SUMMARY_METRICS = (vocab.G_TOTAL, vocab.G_REC, vocab.G_TSF, vocab.D_TOTAL, vocab.D_REAL_MEAN, vocab.D_FAKE_MEAN)


def load_flat_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping of flat config keys (optionally with ``profile``); errors name the file and key."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML ({err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of config keys (key: value), got {type(data).__name__}")
    for key, value in data.items():
        if isinstance(value, (dict, list)):
            raise ConfigError(str(key), "expected a single value; config files use flat keys (e.g. lr_G: 1e-4)", source=str(path))
    return {str(k): v for k, v in data.items()}


def build_config(
    profile: str, file_values: Mapping[str, Any], sets: Mapping[str, Any], steps: int | None, source: str = ""
) -> TrainConfig:
    """Reference defaults <- profile <- config file <- --set <- --steps (lwgan.layering's order, the
    file in the study base's place); each error names where it came from."""
    return layer_config(config_layers(profile_overrides(profile), profile_name=profile, source=source,
                                      base=file_values, base_prefix="", sets=sets, steps=steps))


def help_keys_text() -> str:
    """Every flat key with its section, default and allowed values."""
    defaults = TrainConfig().to_flat()
    rows = [("key", "section", "default", "allowed")]
    for key, section in sorted(FIELD_SECTION.items(), key=lambda kv: (SECTIONS.index(kv[1]), 0)):
        allowed = " | ".join(CHOICES[key]) if key in CHOICES else FIELD_TYPES[key]
        rows.append((key, section, repr(defaults[key]), allowed))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append("profiles (applied before a config file and --set): " + ", ".join(PROFILES))
    return "\n".join(lines)


def _default_out() -> Path:
    return project_dir() / "runs" / f"train-{time.strftime('%Y%m%d-%H%M%S')}"


def header_line(info: Mapping[str, Any], total_steps: int) -> str:
    backbones = ", ".join(f"{b['name']} {b['status']}" for b in info.get("backbones", [])) or "none"
    return (
        f"train | profile {info.get('profile') or 'custom'} | data {info['dataset']['kind']} | "
        f"body {info['body_model']['kind']} | backbones {backbones} | device {info['device']} | steps {total_steps}"
    )


def summary_text(result, seconds: float, out_dir: Path) -> str:
    m = result.metrics
    losses = ", ".join(f"{k.split('/')[1]} {m[k]:.4g}" for k in SUMMARY_METRICS if k in m)
    evals = ", ".join(f"{k.split('/')[1]} {m[k]:.4g}" for k in vocab.names(vocab.Group.EVAL) if k in m) or "none"
    lines = [
        f"status {result.status} | steps {result.step} | time {seconds:.1f}s",
        f"final losses: {losses or 'none'}",
        f"eval: {evals}",
        f"out: {out_dir}",
    ]
    if result.error:
        lines.insert(1, f"error: {result.error}")
    return "\n".join(lines)


def command_train(args: argparse.Namespace) -> int:
    from lwgan.train.checkpoint import checkpoint_files
    from lwgan.train.trainer import Trainer, checkpoint_path

    if getattr(args, "help_keys", False):
        print(help_keys_text())
        return 0
    file_values: dict[str, Any] = load_flat_yaml(args.config) if getattr(args, "config", None) else {}
    profile = getattr(args, "profile", None) or str(file_values.pop("profile", DEFAULT_PROFILE))
    file_values.pop("profile", None)
    profile_overrides(profile)  # raises ConfigError naming the allowed profiles
    out_dir = Path(args.out).expanduser().resolve() if getattr(args, "out", None) else _default_out()
    resume = bool(getattr(args, "resume", False))
    saved = out_dir / "config.yaml"
    existing = checkpoint_files(checkpoint_path(out_dir))  # last.pt and/or prev.pt
    if resume:
        if not existing:
            raise UserError(f"{checkpoint_path(out_dir)}: no checkpoint to resume from (check --out)")
        # The resumed run keeps its saved config; --steps / --set may still change it (e.g. extend a run).
        file_values = {**load_flat_yaml(saved), **file_values} if saved.is_file() else file_values
        source = str(saved)
    else:
        if existing:
            raise UserError(f"{out_dir}: already holds a run; pass --resume to continue it or choose another --out")
        source = str(args.config) if getattr(args, "config", None) else ""
    flags = config_flags(args)
    cfg = build_config(profile, file_values, flags.sets, flags.steps, source)
    missing = missing_real_assets(profile, cfg)
    if missing:
        raise UserError(
            f"profile {profile!r} needs real assets; missing: {', '.join(missing)} "
            f"(set them in a config file or with --set KEY=PATH; see README 'Real data')"
        )
    tracked = None
    if getattr(args, "track", False):  # the same MLflow store as the studies (lwgan.tracked_train)
        from lwgan.tracked_train import TrackedRun

        tracked = TrackedRun.open(cfg.to_flat(), out_dir, profile, resume)
    trainer = Trainer(cfg, out_dir, callbacks=[tracked] if tracked else (), progress=True, profile=profile)
    info = trainer.prepare()
    print(header_line(info, trainer.total_steps))
    start = time.monotonic()
    try:
        result = trainer.fit()
    except BaseException as err:
        if tracked is not None:
            tracked.fail(err)
        raise
    print(summary_text(result, time.monotonic() - start, out_dir))
    if tracked is not None:
        print(f"MLflow: run {tracked.run_id} in {tracked.tracker.uri} (browse: lwgan-study ui)")
    return 0 if result.status == vocab.TrialStatus.COMPLETED else 1
