"""The config flags that ``run``, ``validate`` and ``train`` share (--profile, --seeds, --steps, --set):
declared by one function and read back by one, so the commands cannot drift apart."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Sequence

from lwgan.errors import UserError


@dataclass(frozen=True)
class ConfigFlags:
    """What the shared flags asked for (None = not given)."""

    profile: str | None = None
    seeds: int | None = None
    steps: int | None = None
    sets: dict[str, str] = field(default_factory=dict)


def add_config_flags(parser: argparse.ArgumentParser, profiles: Sequence[str], *, study: bool) -> None:
    """--profile, --steps, --set (and --seeds for a study) on ``parser``; ``study`` words the help for
    every trial of a study instead of one training run."""
    if study:
        parser.add_argument("--profile", default=None, choices=tuple(profiles), help="profile (default: the study's default profile)")
        parser.add_argument("--seeds", type=int, default=None, help="seeds per variant (default: the study's seeds)")
        parser.add_argument("--steps", type=int, default=None, help="max_steps of every trial (default: the profile's length)")
        parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                            help="override a config key in every trial (repeatable)")
    else:
        parser.add_argument("--profile", default=None, choices=tuple(profiles), help="profile (default: small)")
        parser.add_argument("--steps", type=int, default=None, help="max_steps (default: the profile's length)")
        parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                            help="override a config key (repeatable)")


def parse_sets(sets: list[str] | None) -> dict[str, str]:
    """``["lr_G=1e-4", "spectral_norm=true"]`` -> mapping; values are coerced by the config."""
    out: dict[str, str] = {}
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected KEY=VALUE (e.g. --set lr_G=1e-4)")
        out[key.strip()] = value.strip()
    return out


def config_flags(args: argparse.Namespace) -> ConfigFlags:
    """The shared flags of a parsed command line (absent ones as None / {})."""
    return ConfigFlags(getattr(args, "profile", None), getattr(args, "seeds", None), getattr(args, "steps", None),
                       parse_sets(getattr(args, "sets", None)))
