"""Install anywhere: build the wheel, install it into a fresh virtual environment outside the repository
and run the tiny profile of the embedded study from an empty folder (slow: a real study through Ray).

The fresh environment gets lwgan-study from the wheel only (``--no-deps``); its dependencies (torch,
mlflow, ray, ...) come from this test's own environment through a path entry, so nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, cwd, env, timeout=900):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_wheel_runs_the_embedded_study_from_an_empty_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "LWGAN_HOME",
                                                            "LWGAN_EXPERIMENT", "PYTHONPATH", "VIRTUAL_ENV")}
    # Build from a copy of the sources, so the build leaves nothing (build/, *.egg-info) in the checkout.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "runs", "reports", "*.db", "__pycache__", "*.egg-info", ".pytest_cache"))
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src)],
         tmp_path, env)
    (wheel,) = dist.glob("lwgan_study-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    py = venv / "bin" / "python"
    fresh_site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                     capture_output=True, text=True, check=True).stdout.strip())
    # Dependencies from this environment, as a plain path entry (its .pth files, among them the editable
    # install of this repository, are not processed), after the fresh site-packages.
    (fresh_site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)], tmp_path, env)

    empty = tmp_path / "empty"
    empty.mkdir()
    where = _run([str(py), "-c", "import lwgan; print(lwgan.__file__)"], empty, env).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the wheel's copy, not this checkout
    cli = str(venv / "bin" / "lwgan-study")
    assert "ensembles.yaml" in _run([cli, "init", "my-studies"], empty, env).stdout

    done = _run([cli, "run", "--profile", "tiny", "--seeds", "1", "--steps", "2", "--max-concurrent", "2"], empty, env)
    assert "5 trials: 5 completed" in done.stdout, done.stdout + done.stderr
    assert (empty / "mlflow.db").is_file() and (empty / "reports" / "ensembles" / "report.md").is_file()
    listed = _run([cli, "ls"], empty, env).stdout
    assert listed.startswith("ensembles (1 run)") and "5 completed" in listed
