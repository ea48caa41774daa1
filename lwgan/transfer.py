"""Host-to-device copies that do not stop the host: a CPU tensor bound for a CUDA device is copied
from page-locked memory without blocking (a copy from ordinary memory waits for the stream, and a
training step made ~70 of them: each a stall between the CPU issuing work and the GPU running it)."""

from __future__ import annotations

import torch


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``tensor`` on ``device``: CPU -> CUDA through pinned memory, asynchronously (the same values;
    the pinned copy stays reserved until the transfer is done); any other move as ``Tensor.to``."""
    device = torch.device(device)
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


__all__ = ["to_device"]
