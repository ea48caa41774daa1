"""The ``lwgan-study`` console script: ``lwgan.cli.entry`` (main, then an exit without the last full GC)."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

from lwgan import cli


def test_console_script_is_entry():
    scripts = [ep for ep in metadata.entry_points(group="console_scripts") if ep.name == "lwgan-study"]
    assert [ep.value for ep in scripts] == ["lwgan.cli:entry"]
    assert scripts[0].load() is cli.entry


def test_entry_keeps_main_exit_code_and_freezes_the_heap(tmp_path):
    # atexit handlers still run after entry(); the one below sees the frozen heap.
    code = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen objects:', gc.get_freeze_count()))\n"
        f"sys.argv = ['lwgan-study', 'run', {str(tmp_path / 'missing.yaml')!r}, '--dry-run']\n"
        "from lwgan.cli import entry\n"
        "entry()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {tmp_path / 'missing.yaml'}: study file not found")
    frozen = int(proc.stdout.split("frozen objects:")[1])
    assert frozen > 10_000  # the CLI's imports: every object left was moved out of the collector's reach
