"""How the last trials of an ablation study share the machine, so no core idles at the end.

A study of n one-thread trials on c slots (cores / cpu per trial) runs in waves of c; when n is not a
multiple of c, the last r = n mod c trials run alone and c - r cores idle for a whole trial (on the
2-core machine: the 15th trial of ``make study`` ran alone for ~2 minutes). Instead, the last c + r
trials count for c / (c + r) of their cpu each, so they all run at once on the c slots. Each still
runs the thread count of the study's ``resources.cpu`` (threads never change with the share, so the
numbers a trial computes are the same bits in any packing; only the wall time differs). Three
one-thread trainings on two cores do 5% fewer steps per second in total than two (the OS
time-slices them; BENCHMARKS.md, "The 15-trial study"), far less than an idle core costs.

Ray is asked for the tail's share by *every* trial, so one actor can run any trial (Tune reuses an
actor only for a trial of the same request): the tail starts in the pairs' actors, already warm,
where three new ones took 14-21 s to start beside the running trials and their first step another
7 s. Which trials run together is decided by ``Packing.admits`` (a trial of a pair counts its full
cpu, one of the tail its share), applied in run order by the study runner.

Only for trials of at most one cpu and no GPU, on a Ray this study started on this machine, with no
``--max-concurrent`` limit: several multi-thread trials on too few cores wait on each other's
threads (BENCHMARKS.md, "Two trials on two cores"), a GPU is not time-sliced the same way, and a
cluster's cores are not this machine's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

RAY_RESOURCE_STEPS = 10_000  # per unit: Ray keeps fractional resources to four decimals


@dataclass(frozen=True)
class Packing:
    """The cpu each pending trial counts for, and how many run at once at most."""

    cpu: dict[str, float]  # trial id -> the cpu it takes of the slots while it runs
    max_concurrent: int
    shared_tail: tuple[str, ...] = ()  # the trials that share the slots at the end (empty: none)
    capacity: float = 0.0  # the cpu of all slots together (slots x cpu per trial)

    def describe(self, slots: int) -> str:
        if not self.shared_tail:
            return ""
        return f"the last {len(self.shared_tail)} share the {slots} slots"

    @property
    def ray_cpu(self) -> float:
        """The one cpu request every trial makes of Ray: the smallest share, so all of the tail fit at
        once and any actor can run any trial (see the module doc)."""
        return min(self.cpu.values())

    def admits(self, running: Iterable[str], trial_id: str) -> bool:
        """Whether ``trial_id`` may start beside the ``running`` trials: their cpu and its own fit the slots."""
        return sum(self.cpu[t] for t in running) + self.cpu[trial_id] <= self.capacity + 1e-6


def _floor_to_step(value: float) -> float:
    # Rounded down, so that k requests of c/k never add up to more than c in Ray's accounting.
    return math.floor(value * RAY_RESOURCE_STEPS + 1e-9) / RAY_RESOURCE_STEPS


def pack_trials(pending: Sequence[str], slots: int, cpu: float, *, may_share: bool) -> Packing:
    """The cpu request of each pending trial (in run order) when ``slots`` trials of ``cpu`` each fit.

    With ``may_share`` and a remainder r = len(pending) mod slots, the last slots + r trials ask for
    ``cpu * slots / (slots + r)`` each; all others (and every trial without ``may_share``) ask for
    ``cpu``."""
    pending = list(pending)
    if slots < 1:
        raise ValueError(f"slots must be >= 1, got {slots}")
    plain = Packing({tid: cpu for tid in pending}, slots, capacity=slots * cpu)
    remainder = len(pending) % slots
    if not may_share or remainder == 0 or len(pending) <= slots:
        return plain
    tail = pending[-(slots + remainder):]
    share = _floor_to_step(cpu * slots / len(tail))
    if share <= 0:
        return plain
    requests = {tid: cpu for tid in pending}
    requests.update({tid: share for tid in tail})
    return Packing(requests, len(tail), tuple(tail), capacity=slots * cpu)
