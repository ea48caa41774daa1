"""The local Ray processes a study driver started, recorded in its run folder, so that after the driver is
killed with SIGKILL (nothing of it runs to clean up) the next ``--resume`` of that run stops them.

Linux only (it reads ``/proc``); elsewhere nothing is recorded and the README's way applies: end the
driver's process group (``kill -- -PGID``), or ``ray stop`` when no other local Ray of yours runs.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from lwgan.fsutil import write_text_atomic

RAY_PROCS_FILE = "ray_processes.json"


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process; None when it is gone or unreadable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces
    if fields[0] == "Z":  # a zombie has already exited
        return None
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> list[tuple[int, int]]:
    """Every live process under ``root`` (children, their children, ...) as (pid, start time)."""
    if not Path("/proc").is_dir():
        return []
    parents: dict[int, list[tuple[int, int]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _stat(int(entry.name))
            if info is not None:
                parents.setdefault(info[0], []).append((int(entry.name), info[1]))
    out, todo = [], [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child[0])
    return out


def record_ray_processes(run_dir: Path) -> int:
    """Write the driver's pid and its child processes (the local Ray it just started) to the run folder."""
    me = os.getpid()
    mine = _stat(me)
    children = descendants(me)
    if mine is None:
        return 0
    write_text_atomic(Path(run_dir) / RAY_PROCS_FILE,
                      json.dumps({"driver": [me, mine[1]], "processes": children}, indent=1))
    return len(children)


def _alive(pid: int, start: int) -> bool:
    info = _stat(pid)
    return info is not None and info[1] == start  # same start time: not a recycled pid


def stop_leftover_ray(run_dir: Path, grace_s: float = 5.0) -> int:
    """Stop the Ray processes a killed driver of this run left behind; returns how many were still running.
    Nothing is touched while the recorded driver is alive (another driver still uses them)."""
    path = Path(run_dir) / RAY_PROCS_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return 0
    driver_pid, driver_start = data.get("driver", [0, 0])
    if driver_pid == os.getpid() or _alive(driver_pid, driver_start):
        return 0
    left = [(pid, start) for pid, start in data.get("processes", []) if _alive(pid, start)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid, start in left:
            if _alive(pid, start):
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
        end = time.monotonic() + grace_s
        while time.monotonic() < end and any(_alive(p, s) for p, s in left):
            time.sleep(0.1)
    path.unlink(missing_ok=True)
    return len(left)
