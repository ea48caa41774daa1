"""Seeding and device selection: the same seed gives the same run on CPU."""

from __future__ import annotations

import random

import numpy as np
import torch

from lwgan.config import ConfigError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(spec: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; an unavailable cuda request raises ConfigError."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device", f"{spec!r} requested but CUDA is not available", "auto | cpu")
    return torch.device(spec)
