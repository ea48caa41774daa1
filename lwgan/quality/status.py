"""What a run's quality metric was computed with, or why it is absent (run_info and the report read it)."""

from __future__ import annotations

from dataclasses import dataclass

PRETRAINED, ABSENT = "pretrained", "absent"


@dataclass(frozen=True)
class QualityStatus:
    name: str  # "lpips" | "inception_v3": the backbone-status name the report shows
    status: str  # PRETRAINED | ABSENT
    path: str | None
    note: str
