"""The ``claims:`` of a study file: what the paper says each variant does, in a form a test can check.

Each claim has an ``id``, a one-line ``statement`` in our own words, the paper ``section`` it comes
from and exactly one testable form::

    claims:
      - id: T1.E1.face
        statement: "E1 lowers L_face against the baseline by 12.80%"
        section: "3.6, Table 1"
        delta: {variant: E1, metric: loss/G_face, paper: -12.80%}
      - id: H_E3.swing
        statement: "E3 oscillates less than E2"
        section: "3.6, H_E3"
        compare: {variant: E3, against: E2, metric: stability/swing_G, direction: lower}

- ``delta``: ``variant`` against the baseline on ``metric``; ``paper`` is the paper's value: a
  string ending in ``%`` is relative (``100 (variant - baseline) / |baseline|``), a number is an
  absolute difference in the metric's unit (SSIM, dB for PSNR). Its sign is the claimed direction.
- ``compare``: ``variant`` against ``against`` (another variant or ``baseline``), ``direction``
  ``lower`` or ``higher`` (A's value against B's; not "better": a loss and SSIM differ in that).

Validation raises the study's error type (file, key path such as ``claims[3].delta.metric``,
allowed values), so a bad claim stops ``validate`` / ``run`` with exit code 2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from lwgan import vocab

CLAIM_KEYS = ("id", "statement", "section", *(k.value for k in vocab.ClaimKind))
DELTA_KEYS = ("variant", "metric", "paper")
COMPARE_KEYS = ("variant", "against", "metric", "direction")
DIRECTIONS = (vocab.Direction.LOWER.value, vocab.Direction.HIGHER.value)
# Groups a claim may name: what a run's final window, its stability or its unweighted terms give.
CLAIM_GROUPS = (
    vocab.Group.GENERATOR, vocab.Group.DISCRIMINATOR, vocab.Group.D_OUTPUTS, vocab.Group.GRAD_NORM,
    vocab.Group.EVAL, vocab.Group.STABILITY, vocab.Group.UNWEIGHTED,
)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_PCT = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*%\s*$")


@dataclass(frozen=True)
class Claim:
    """One testable claim. ``against`` is ``vocab.BASELINE`` for delta claims; ``direction`` is the
    claimed sign of ``variant - against`` (``lower`` / ``higher``); ``paper`` the paper's value of a
    delta claim (``relative``: in % of the baseline; else absolute, in the metric's unit)."""

    id: str
    statement: str
    section: str
    kind: vocab.ClaimKind
    variant: str
    against: str
    metric: str
    direction: str
    paper: float | None = None
    relative: bool = False

    @property
    def sign(self) -> int:
        return -1 if self.direction == vocab.Direction.LOWER else 1

    def paper_text(self) -> str:
        if self.paper is None:
            return ""
        return f"{self.paper:+.2f}%" if self.relative else f"{self.paper:+.4g}"


def claim_metrics() -> tuple[str, ...]:
    """The metric names a claim may use (registered in lwgan/vocab.py, in the groups above)."""
    return vocab.names(*CLAIM_GROUPS)


def _error(source: str, key: str, message: str, allowed: str = "") -> Exception:
    from lwgan.study.schema import StudyError  # the study's one error type (schema imports this module)

    return StudyError(source, key, message, allowed)


def _text(source: str, key: str, value: Any, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise _error(source, key, f"expected a non-empty line of text, got {value!r}", "a string")
    return " ".join(value.split())


def _no_unknown(source: str, prefix: str, body: dict, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    for key in body:
        if key not in allowed:
            raise _error(source, f"{prefix}.{key}", "unknown key", ", ".join(allowed))


def _variant(source: str, key: str, value: Any, variants: tuple[str, ...], baseline_ok: bool) -> str:
    names = ((vocab.BASELINE,) if baseline_ok else ()) + variants
    if not isinstance(value, str) or value not in names:
        raise _error(source, key, f"unknown variant {value!r}", " | ".join(names) or "no variants defined")
    return value


def _metric(source: str, key: str, value: Any) -> str:
    allowed = claim_metrics()
    if value not in allowed:
        raise _error(source, key, f"unknown metric {value!r}", " | ".join(allowed))
    return value


def parse_paper_value(source: str, key: str, value: Any) -> tuple[float, bool]:
    """``-12.80%`` -> (-12.8, relative); ``0.02`` -> (0.02, absolute). Zero is refused: the sign is the claim."""
    if isinstance(value, str):
        match = _PCT.match(value)
        if not match:
            raise _error(source, key, f"cannot read {value!r}", "a relative change like -12.80% or an absolute number like 0.02")
        number, relative = float(match.group(1)), True
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number, relative = float(value), False
    else:
        raise _error(source, key, f"expected the paper's value, got {value!r}", "a relative change like -12.80% or an absolute number")
    if number == 0 or number != number:
        raise _error(source, key, f"{value!r} has no sign", "a nonzero value (its sign is the claimed direction)")
    return number, relative


def parse_claims(value: Any, source: str, variants: Iterable[str]) -> tuple[Claim, ...]:
    """Validate a study file's ``claims:`` list against its ``variants`` (names, baseline excluded)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _error(source, "claims", f"expected a list of claims, got {type(value).__name__}", "a list of mappings (id, statement, section, delta | compare)")
    names = tuple(str(v) for v in variants)
    out: list[Claim] = []
    seen: set[str] = set()
    for i, body in enumerate(value):
        key = f"claims[{i}]"
        if not isinstance(body, dict):
            raise _error(source, key, f"expected a mapping, got {body!r}", ", ".join(CLAIM_KEYS))
        _no_unknown(source, key, body, CLAIM_KEYS)
        cid = body.get("id")
        if not isinstance(cid, str) or not _ID.match(cid):
            raise _error(source, f"{key}.id", f"invalid id {cid!r}", "letters, digits, '.', '_', '-' (starting with a letter or digit)")
        if cid in seen:
            raise _error(source, f"{key}.id", f"id {cid!r} used twice", "unique ids")
        seen.add(cid)
        statement = _text(source, f"{key}.statement", body.get("statement"))
        section = _text(source, f"{key}.section", body.get("section"))
        forms = [k for k in vocab.ClaimKind if k.value in body]
        if len(forms) != 1:
            raise _error(source, key, f"a claim has exactly one testable form, found {len(forms)}", " | ".join(k.value for k in vocab.ClaimKind))
        kind = forms[0]
        fkey = f"{key}.{kind.value}"
        form = body[kind.value]
        if not isinstance(form, dict):
            raise _error(source, fkey, f"expected a mapping, got {form!r}", ", ".join(DELTA_KEYS if kind is vocab.ClaimKind.DELTA else COMPARE_KEYS))
        if kind is vocab.ClaimKind.DELTA:
            _no_unknown(source, fkey, form, DELTA_KEYS)
            for required in DELTA_KEYS:
                if required not in form:
                    raise _error(source, f"{fkey}.{required}", "missing", ", ".join(DELTA_KEYS))
            variant = _variant(source, f"{fkey}.variant", form["variant"], names, baseline_ok=False)
            metric = _metric(source, f"{fkey}.metric", form["metric"])
            paper, relative = parse_paper_value(source, f"{fkey}.paper", form["paper"])
            direction = vocab.Direction.HIGHER.value if paper > 0 else vocab.Direction.LOWER.value
            out.append(Claim(cid, statement, section, kind, variant, vocab.BASELINE, metric, direction, paper, relative))
        else:
            _no_unknown(source, fkey, form, COMPARE_KEYS)
            for required in COMPARE_KEYS:
                if required not in form:
                    raise _error(source, f"{fkey}.{required}", "missing", ", ".join(COMPARE_KEYS))
            variant = _variant(source, f"{fkey}.variant", form["variant"], names, baseline_ok=True)
            against = _variant(source, f"{fkey}.against", form["against"], names, baseline_ok=True)
            if against == variant:
                raise _error(source, f"{fkey}.against", "a variant compared with itself", "another variant or baseline")
            metric = _metric(source, f"{fkey}.metric", form["metric"])
            direction = form["direction"]
            if direction not in DIRECTIONS:
                raise _error(source, f"{fkey}.direction", f"invalid direction {direction!r}", " | ".join(DIRECTIONS))
            out.append(Claim(cid, statement, section, kind, variant, against, metric, direction))
    return tuple(out)
