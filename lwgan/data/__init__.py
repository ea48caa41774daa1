"""Data: the iPER-format reader and pair sampling, a dataset checker, and the synthetic mini-iPER generator.

The generator needs the body model and rasterizer; it is imported lazily so the reader works without them.
"""

from __future__ import annotations

from typing import Any

from lwgan.data.check import DatasetReport, check_dataset
from lwgan.data.iper import IPERDataset

__all__ = ["IPERDataset", "DatasetReport", "check_dataset", "synthesize_iper", "ensure_synthetic_dataset"]


def __getattr__(name: str) -> Any:
    if name == "synthesize_iper":
        from lwgan.data.synth import synthesize_iper

        return synthesize_iper
    if name == "ensure_synthetic_dataset":
        from lwgan.data.cache import ensure_synthetic_dataset

        return ensure_synthetic_dataset
    raise AttributeError(f"module 'lwgan.data' has no attribute {name!r}")
