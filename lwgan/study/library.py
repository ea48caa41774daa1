"""The seed paper's study files, shipped inside the package (``lwgan/studies/*.yaml``, package data): find
one by name, list them, and copy them into a folder to edit (``lwgan-study init``)."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from lwgan.errors import UserError

DEFAULT_STUDY = "ensembles"  # the seed paper's Table 1 (E1-E4)
SUFFIX = ".yaml"


def embedded_dir() -> Path:
    """The folder of the shipped study files (a real folder: setuptools installs package data unzipped)."""
    folder = resources.files("lwgan") / "studies"
    path = Path(str(folder))
    if not path.is_dir():
        raise UserError(f"the embedded study folder {path} is missing: reinstall lwgan-study (pip install lwgan-study)")
    return path


def embedded_studies() -> dict[str, Path]:
    """``{name: path}`` of every shipped study file, by name (the file's stem)."""
    return {p.stem: p for p in sorted(embedded_dir().glob(f"*{SUFFIX}"))}


def embedded_study(name: str) -> Path | None:
    """The shipped study ``name`` (``ensembles`` or ``ensembles.yaml``); None when there is none."""
    stem = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name
    if "/" in stem or "\\" in stem:
        return None
    return embedded_studies().get(stem)


def init_studies(dest: Path, force: bool = False) -> list[Path]:
    """Copy every shipped study into ``dest`` (created). Refuses to overwrite an existing file unless ``force``,
    naming the files; returns the written paths."""
    dest = Path(dest).expanduser()
    sources = embedded_studies()
    clashes = [dest / p.name for p in sources.values() if (dest / p.name).exists()]
    if clashes and not force:
        raise UserError(f"{dest}: already holds {', '.join(p.name for p in clashes)}; "
                        "edit those, pick another folder, or pass --force to overwrite them")
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sources.values():
        target = dest / path.name
        shutil.copyfile(path, target)
        written.append(target)
    return written
