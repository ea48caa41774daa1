"""Divergence guard: a non-finite or exploding loss ends a run as 'diverged' instead of training on garbage."""

from __future__ import annotations

import math
from typing import Mapping

from lwgan import vocab
from lwgan.errors import LossDivergedError


def check_losses(step: int, metrics: Mapping[str, float], threshold: float, prefix: str = vocab.LOSS_PREFIX) -> None:
    """Raise LossDivergedError for the first ``loss/*`` value that is NaN/inf or has ``|value| > threshold``."""
    for name, value in metrics.items():
        if not name.startswith(prefix):
            continue
        value = float(value)
        if not math.isfinite(value) or abs(value) > threshold:
            raise LossDivergedError(step, name, value)
