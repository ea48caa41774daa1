"""What decides a cached result's bits, for the caches that runs share on disk (target features in
lwgan.models.feature_store, frame correspondences in lwgan.render.cache): the weights or buffers of
the module that made it, the compute environment it ran in, and the input tensors it was made from.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

import torch
from torch import nn


def module_digest(module: nn.Module) -> str:
    """sha1 of a module's parameters and buffers, saved or not (names, dtypes, shapes, bytes)."""
    h = hashlib.sha1()
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def compute_environment(device: torch.device) -> dict[str, str]:
    """What, besides weights and inputs, decides a forward's bits here and now: torch build, device
    kind (CPU instruction set or GPU name), intra-op threads, and the autocast dtype in effect."""
    kind = device.type
    if kind == "cuda":
        where = f"{torch.cuda.get_device_name(device)}|cudnn {torch.backends.cudnn.version()}"
    else:
        where = f"cpu {torch.backends.cpu.get_cpu_capability()}"
    return {"torch": torch.__version__, "device": where, "threads": str(torch.get_num_threads()), "autocast": _autocast_state(kind)}


def autocast_dtype(kind: str) -> torch.dtype | None:
    """The autocast dtype in effect for device type ``kind``, None when autocast is off there; torch < 2.4
    has per-device functions."""
    if hasattr(torch, "get_autocast_dtype"):
        return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None
    if kind == "cpu":  # pragma: no cover - torch 2.2 / 2.3
        return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
    return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None  # pragma: no cover


def _autocast_state(kind: str) -> str:
    """``autocast_dtype`` as a namespace field ("off" when none)."""
    dtype = autocast_dtype(kind)
    return "off" if dtype is None else str(dtype)


def same_tensors(stored: Sequence[torch.Tensor], given: Sequence[torch.Tensor]) -> bool:
    """Whether two fingerprints (the tensors a cache entry was made from) are equal bit for bit:
    same count, and each pair of the same shape, dtype and values (``given`` may sit on another device)."""
    return len(stored) == len(given) and all(
        a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b.to(a.device)) for a, b in zip(stored, given))


def namespace(ident: dict[str, Any]) -> str:
    """A short stable name (16 hex digits) for a cache namespace's identity (a JSON-able dict)."""
    return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


__all__ = ["autocast_dtype", "compute_environment", "module_digest", "namespace", "same_tensors"]
