"""What a run really used: resolved config, environment, package versions, git commit, parameter counts."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

PACKAGES = ("torch", "numpy", "smplx", "opencv-python-headless", "scikit-image", "pillow", "pyyaml", "lwgan-study")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of the packages a run depends on (plus Python); missing ones are left out."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "lwgan-study" not in versions:
        import lwgan

        versions["lwgan-study"] = lwgan.__version__
    return versions


def git_commit(start: Path | None = None) -> str | None:
    """HEAD of the repository holding the lwgan package (``+dirty`` when it has changes), or None."""
    where = Path(start) if start is not None else Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=where, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


def write_config_yaml(path: Path, flat: dict[str, Any]) -> Path:
    """The resolved flat config, one key per line in declaration order (loadable by ``train CONFIG``)."""
    Path(path).write_text(yaml.safe_dump(flat, sort_keys=False, default_flow_style=False))
    return Path(path)
