"""Numeric precision of a run: the config's ``precision`` (auto | bf16 | fp32) resolved for a device,
and the autocast context and backbone dtype that follow from it.

``auto`` means bf16 autocast where the hardware has bf16 matrix units: CUDA devices that support
bf16, and CPUs with AMX-BF16 or AVX-512 BF16 (oneDNN runs bf16 convolutions on them); fp32 elsewhere
(on other CPUs bf16 is emulated and slower than fp32).

What stays fp32 under bf16 autocast, and why (each place says so too):
- the gradient penalty (losses.gradient_penalty, run with autocast off): it is a double backward
  whose value is ``(||grad|| - 1)^2``; bf16 keeps ~3 significant digits, so the gradient norm near 1
  would carry ~1% noise that the penalty squares and trains D on;
- the BCE of the attention masks (losses.mask_loss): log(m) near m = 0 or 1 needs more than bf16's
  8-bit mantissa, and binary_cross_entropy is autocast-unsafe;
- the Gram products of the style loss (losses.style_loss): sums over H*W positions;
- every statistic of the metrics (SSIM / PSNR in float64, LPIPS distances and logged scalars in
  float32): eval numbers must not depend on the training precision.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

from lwgan.config import CHOICES, ConfigError

PRECISIONS = CHOICES["precision"]
# CPU feature flags (as /proc/cpuinfo and torch name them) of units that run bf16 dot products natively.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
CPUINFO = Path("/proc/cpuinfo")


def bf16_flags_in(flags: Iterable[str]) -> tuple[str, ...]:
    """The bf16 matrix-unit flags among ``flags`` (empty when none)."""
    present = set(flags)
    return tuple(f for f in CPU_BF16_FLAGS if f in present)


def cpuinfo_flags(text: str) -> frozenset[str]:
    """All words of the ``flags`` lines of a /proc/cpuinfo text."""
    out: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            out.update(value.split())
    return frozenset(out)


def cpu_bf16_units(cpuinfo: Path = CPUINFO) -> tuple[str, ...]:
    """The bf16 units of this CPU: torch's own capability report when it has one, else /proc/cpuinfo."""
    report = getattr(getattr(torch._C, "_cpu", None), "_get_cpu_capability", None)
    if report is not None:
        try:
            caps = report()
            return tuple(f for f in CPU_BF16_FLAGS if caps.get(f))
        except Exception:  # noqa: BLE001 - a private API; fall back to the kernel's view
            pass
    try:
        return bf16_flags_in(cpuinfo_flags(cpuinfo.read_text()))
    except OSError:
        return ()


@dataclass(frozen=True)
class Precision:
    """A resolved precision: ``name`` is "bf16" or "fp32"; ``reason`` says why (recorded in run_info)."""

    name: str
    device_type: str
    reason: str

    @property
    def bf16(self) -> bool:
        return self.name == "bf16"

    @property
    def backbone_dtype(self) -> torch.dtype:
        """Frozen backbones (VGG19, SphereFace) are stored in this dtype: under bf16 autocast their
        weights would otherwise be cast every call (autocast caches only weights that need grad)."""
        return torch.bfloat16 if self.bf16 else torch.float32

    def autocast(self, cache: bool = True):
        """bf16 autocast on the run's device, or nothing for fp32. ``cache=False`` re-casts a weight
        at every use instead of once per context (the same values; what CUDA graphs require)."""
        return torch.autocast(self.device_type, dtype=torch.bfloat16, cache_enabled=cache) if self.bf16 else nullcontext()


def resolve_precision(setting: str, device: torch.device, cpu_units: tuple[str, ...] | None = None) -> Precision:
    """``auto`` -> bf16 on a bf16-capable CUDA device or a CPU with bf16 units, else fp32; ``bf16`` and
    ``fp32`` are taken as given (bf16 on a CPU without the units works, emulated and slow)."""
    if setting not in PRECISIONS:
        raise ConfigError("precision", f"invalid value {setting!r}", " | ".join(PRECISIONS))
    kind = device.type
    if setting != "auto":
        return Precision(setting, kind, "set in the config")
    if kind == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", kind, f"auto: {torch.cuda.get_device_name(device)} supports bf16")
        return Precision("fp32", kind, f"auto: {torch.cuda.get_device_name(device)} lacks bf16")
    if kind == "cpu":
        units = cpu_bf16_units() if cpu_units is None else cpu_units
        if units:
            return Precision("bf16", kind, f"auto: CPU has {', '.join(units)}")
        return Precision("fp32", kind, f"auto: CPU has none of {', '.join(CPU_BF16_FLAGS)}")
    return Precision("fp32", kind, f"auto: no bf16 autocast rule for device type {kind!r}")


def use_channels_last(setting: bool | None, precision: Precision) -> bool:
    """The config's ``channels_last`` (None = auto = NCHW on every device; True opts in to NHWC).

    Measured (BENCHMARKS.md): on the CPU NHWC was no faster with bf16 (0.584 vs 0.575 CPU s per small
    step) and ~10-50% slower with fp32; on an H100 at 256 px, bf16 NHWC was 1.09x fp32 at batch 16
    where bf16 NCHW was 1.27x (equal at batch 4): the generator's instance norms and grid samples
    have no NHWC kernels, and the layout copies around them cost more than cuDNN's NHWC gains."""
    del precision  # the measured answer is the same for every precision and device
    return bool(setting) if setting is not None else False
