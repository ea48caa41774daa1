"""Where lwgan-study keeps generated assets (body model, synthetic dataset) and runs.

The one place that reads the environment for paths: ``LWGAN_CACHE`` (default
``~/.cache/lwgan-study``) and ``LWGAN_HOME`` (project root for ``runs/`` and the
MLflow store; default the current directory).
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    path = Path(os.environ.get("LWGAN_CACHE", Path.home() / ".cache" / "lwgan-study")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def project_dir() -> Path:
    return Path(os.environ.get("LWGAN_HOME", os.getcwd())).expanduser().resolve()
