"""CUDA graphs of the network calls of a training step (config ``run.cuda_graphs``: auto | on | off).

At the paper profile's batch of 4 a step on a GPU is bound by the CPU issuing ~4,000 kernels, not by
the GPU (BENCHMARKS.md, "GPU"): bf16 makes the kernels faster and leaves the launches as they were. A
CUDA graph replays a recorded sequence of kernels with one launch. Each place in the step that calls a
network is a ``CallSite``: G on the batch, D on G's transfer (G phase), D on the target and on the
detached transfer (D phase), VGG19 and SphereFace on the transfer, and the two backbones on one target
frame. A site's first call runs eagerly and records what it was given (shapes, strides, dtypes, which
inputs and parameters need gradients, grad mode, autocast, train/eval); after the trainer's first step
``CallSites.capture`` records each called site as a forward graph and a backward graph
(``torch.cuda.make_graphed_callables``), each site with its own memory pool, so their replays never
share memory. Later calls that match the record replay the graphs; any other call (eval mode,
another batch size, no grad) runs eagerly, as without graphs.

Same maths, same kernels: a graph replays the kernels the eager call launched. What the capture
itself runs (three warm-up calls and the recording) would move the spectral-norm power iterations
and batch-norm running statistics on; every buffer of the captured networks is restored afterwards,
so a run with graphs follows the run without them (on CUDA as closely as two eager runs follow each
other: benchmarks/graphs_agreement.py). One difference at bf16: graphs need autocast's weight-cast cache
off, so each D call casts D's weights itself and D's two D-phase calls add their weight gradients in
fp32 instead of once in bf16. The gradient penalty (a double backward) always calls D eagerly: graphed
callables have no double backward. Each site's graph keeps its activations allocated between steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
from torch import nn

from lwgan.config import CHOICES, ConfigError
from lwgan.fingerprint import autocast_dtype
from lwgan.models.calls import NetCalls

GRAPH_SETTINGS = CHOICES["cuda_graphs"]

MakeGraphed = Callable[[nn.Module, tuple[torch.Tensor, ...]], nn.Module]


def resolve_cuda_graphs(setting: str, device: torch.device) -> tuple[bool, str]:
    """``auto`` -> on for a CUDA device, off elsewhere; ``on`` needs a CUDA device; ``off`` is off.
    Returns (enabled, why) for run_info."""
    if setting not in GRAPH_SETTINGS:
        raise ConfigError("cuda_graphs", f"invalid value {setting!r}", " | ".join(GRAPH_SETTINGS))
    if setting == "off":
        return False, "set in the config"
    if device.type != "cuda":
        if setting == "on":
            raise ConfigError("cuda_graphs", f"'on' needs a CUDA device (the run's device is {device.type!r})", "auto | off")
        return False, f"auto: no CUDA graphs on device type {device.type!r}"
    return True, "set in the config" if setting == "on" else "auto: CUDA device"


@dataclass(frozen=True)
class CallRecord:
    """What a site was first called with; a later call replays the graph only when it matches."""

    args: tuple[tuple[tuple[int, ...], tuple[int, ...], torch.dtype, torch.device, bool], ...]
    params_need_grad: tuple[bool, ...]
    grad_enabled: bool
    training: bool
    autocast: torch.dtype | None  # the autocast dtype in effect, None when off


def _record(net: nn.Module, args: tuple[torch.Tensor, ...]) -> CallRecord:
    device_type = args[0].device.type if args else "cpu"
    return CallRecord(
        args=tuple((tuple(a.shape), tuple(a.stride()), a.dtype, a.device, a.requires_grad) for a in args),
        params_need_grad=tuple(p.requires_grad for p in net.parameters()),
        grad_enabled=torch.is_grad_enabled(),
        training=net.training,
        autocast=autocast_dtype(device_type),
    )


class _TupleOutputs(nn.Module):
    """The site's network with its output as a tuple of tensors (what a graphed callable returns);
    a dataclass output (the generator's) becomes the tuple of its fields."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, *args: torch.Tensor):
        out = self.net(*args)
        if dataclasses.is_dataclass(out):
            return tuple(getattr(out, f.name) for f in dataclasses.fields(out))
        return out


class CallSite:
    """One place in the step that calls ``net``: eager until captured, then the graph for calls that
    match the first call's record. ``clone_outputs``: return copies of the graph's outputs (which the
    next replay overwrites) for callers that keep them beyond the next call of the same site (the
    per-frame target features). Other attributes (``input_size``) are the network's."""

    def __init__(self, name: str, net: nn.Module, clone_outputs: bool = False):
        self.name, self.net, self.clone_outputs = name, net, clone_outputs
        self.record: CallRecord | None = None
        self._sample: tuple[torch.Tensor, ...] | None = None
        self._output_type: type | None = None
        self._graphed: nn.Module | None = None
        self.replays = 0
        self.eager_calls = 0
        self.failure: str | None = None  # why the capture failed (the site then stays eager)

    def __getattr__(self, name: str) -> Any:  # only called for names the site itself lacks
        if name == "net":
            raise AttributeError(name)
        return getattr(self.net, name)

    @property
    def captured(self) -> bool:
        return self._graphed is not None

    def __call__(self, *args: torch.Tensor):
        if self._graphed is not None and _record(self.net, args) == self.record:
            self.replays += 1
            out = self._graphed(*args)
            if self.clone_outputs:
                out = type(out)(o.clone() for o in out) if isinstance(out, (list, tuple)) else out.clone()
            return self._output_type(*out) if self._output_type is not None else out
        self.eager_calls += 1
        if self.record is None:
            self.record = _record(self.net, args)
            self._sample = tuple(a.detach().clone().requires_grad_(a.requires_grad) for a in args)
            out = self.net(*args)
            self._output_type = type(out) if dataclasses.is_dataclass(out) else None
            return out
        return self.net(*args)

    @property
    def pending(self) -> bool:
        """Called, and neither captured nor failed yet (its first call's inputs are still held)."""
        return self._sample is not None

    def capture(self, make_graphed: MakeGraphed) -> bool:
        """Record the graphs for the first call's inputs; False when there is nothing to capture or the
        capture failed (``failure`` then says why, and the site stays eager)."""
        if not self.pending:
            return False
        rec, params, sample = self.record, list(self.net.parameters()), self._sample
        flags = [p.requires_grad for p in params]
        was_training = self.net.training
        dtype = rec.autocast
        device = sample[0].device
        on_device = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
        try:
            for p, need in zip(params, rec.params_need_grad):
                p.requires_grad_(need)
            self.net.train(rec.training)
            with on_device, torch.set_grad_enabled(rec.grad_enabled), \
                    torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None, cache_enabled=False):
                self._graphed = make_graphed(_TupleOutputs(self.net), sample)
        except Exception as err:  # noqa: BLE001 - the site runs eagerly: slower, same values
            self.failure = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        finally:
            for p, flag in zip(params, flags):
                p.requires_grad_(flag)
            self.net.train(was_training)
            self._sample = None
        return self._graphed is not None


class CallSites:
    """A ``CallSite`` for each network call of the step (``calls``), and their one-time capture."""

    def __init__(self, G: nn.Module, D: nn.Module, vgg: nn.Module | None, face: nn.Module | None):
        site = CallSite
        self.calls = NetCalls(
            generator=site("generator", G),
            d_for_g=site("d_for_g", D),
            d_real=site("d_real", D),
            d_fake=site("d_fake", D),
            vgg_fake=site("vgg_fake", vgg) if vgg is not None else None,
            face_fake=site("face_fake", face) if face is not None else None,
            vgg_target=site("vgg_target", vgg, clone_outputs=True) if vgg is not None else None,
            face_target=site("face_target", face, clone_outputs=True) if face is not None else None,
        )
        self.capture_seconds: float | None = None

    @property
    def sites(self) -> list[CallSite]:
        found = (getattr(self.calls, f.name) for f in dataclasses.fields(self.calls))
        return [s for s in found if isinstance(s, CallSite)]

    @property
    def captured(self) -> list[str]:
        return [s.name for s in self.sites if s.captured]

    @property
    def pending(self) -> bool:
        """Whether a site has been called but not captured (nor failed) yet."""
        return any(s.pending for s in self.sites)

    def capture(self, make_graphed: MakeGraphed | None = None) -> list[str]:
        """Capture every site called so far and not yet captured; restores every buffer of the captured
        networks and the RNG streams afterwards, so the warm-up and recording calls leave no trace in
        the run. A site whose capture fails stays eager, with a warning. Returns the captured sites' names."""
        if not self.pending:
            return self.captured
        make_graphed = make_graphed or torch.cuda.make_graphed_callables
        start = time.perf_counter()
        nets = _unique(s.net for s in self.sites)
        saved = [[b.detach().clone() for b in net.buffers()] for net in nets]
        devices = sorted({t.device for net in nets for t in [*net.parameters(), *net.buffers()] if t.device.type == "cuda"}, key=str)
        try:
            with torch.random.fork_rng(devices=devices):
                for s in self.sites:
                    if not s.capture(make_graphed) and s.failure is not None:
                        warnings.warn(f"CUDA graph capture of {s.name} failed, it runs eagerly: {s.failure}", stacklevel=2)
        finally:
            with torch.no_grad():
                for net, values in zip(nets, saved):
                    for b, v in zip(net.buffers(), values):
                        b.copy_(v)
            self.capture_seconds = (self.capture_seconds or 0.0) + time.perf_counter() - start
        return self.captured

    def summary(self) -> dict[str, Any]:
        """For run_info: captured sites, capture time, and how often each site replayed / ran eagerly."""
        return {"captured": self.captured, "capture_s": self.capture_seconds,
                "capture_failures": {s.name: s.failure for s in self.sites if s.failure is not None},
                "replays": {s.name: s.replays for s in self.sites}, "eager_calls": {s.name: s.eager_calls for s in self.sites}}


def _unique(nets: Iterable[nn.Module]) -> list[nn.Module]:
    out: list[nn.Module] = []
    for n in nets:
        if all(n is not m for m in out):
            out.append(n)
    return out


__all__ = ["CallSite", "CallSites", "resolve_cuda_graphs", "GRAPH_SETTINGS"]
