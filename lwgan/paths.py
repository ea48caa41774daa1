"""Where lwgan-study keeps generated assets (body model, synthetic dataset) and runs.

The one place that reads the environment for paths: ``LWGAN_CACHE`` (default
``~/.cache/lwgan-study``) and ``LWGAN_HOME`` (project root for ``runs/``, ``reports/`` and the
MLflow store). Without ``LWGAN_HOME`` the project root is the nearest folder, from the current one
upwards, that holds ``mlflow.env``, so a command run from a subfolder finds the project's store; the
walk stops at a repository root (``.git``), and with no ``mlflow.env`` found the current folder is the root.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    path = Path(os.environ.get("LWGAN_CACHE", Path.home() / ".cache" / "lwgan-study")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


PROJECT_MARKER = "mlflow.env"  # the project's tracking settings (lwgan.tracking reads it)
BOUNDARY_MARKER = ".git"


def find_project_root(start: Path) -> Path | None:
    """The nearest of ``start`` and its parents holding ``mlflow.env``, not looking above a ``.git`` folder."""
    for folder in (start, *start.parents):
        if (folder / PROJECT_MARKER).is_file():
            return folder
        if (folder / BOUNDARY_MARKER).exists():
            return None
    return None


def project_dir() -> Path:
    """``$LWGAN_HOME``, else the project root found from the current folder, else the current folder."""
    if os.environ.get("LWGAN_HOME"):
        return Path(os.environ["LWGAN_HOME"]).expanduser().resolve()
    cwd = Path(os.getcwd()).resolve()
    return find_project_root(cwd) or cwd
