"""Frozen feature backbones of the losses: VGG19 (perceptual and style losses) and SphereFace-20
(face identity loss), loaded only from paths the user gives; without a path, a documented stand-in.

The stand-in is the same architecture with a fixed-seed random init (Kaiming normal). Random
frozen conv features still give a usable perceptual signal (random-feature perceptual losses are a
known baseline), but they are NOT the pretrained networks: every run records the status, and one
warning per backbone and process says so. Nothing is ever downloaded.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from lwgan.errors import UserError
from lwgan.models.frozen_conv import FrozenConv2d
from lwgan.models.pooling import MaxPool2x2

STAND_IN_SEED = 20190919  # fixed: every stand-in backbone of every run is the same network


@dataclass(frozen=True)
class BackboneStatus:
    name: str  # "vgg19" | "sphereface20"
    status: str  # "pretrained" | "stand-in"
    path: str | None
    note: str


# ----------------------------------------------------------------------------------
# VGG19
# ----------------------------------------------------------------------------------

# torchvision's vgg19 ``features`` layout ("E"): conv widths, "M" = 2x2 max pool.
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)
# Indices in ``features`` just after relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (exclusive ends).
VGG19_SLICE_ENDS = (2, 7, 12, 21, 30)
VGG19_LAYER_NAMES = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


class VGG19Features(nn.Module):
    """torchvision's ``vgg19().features[:30]`` (through relu5_1) with the same indices, so a
    torchvision state dict loads as is. ``forward`` returns the five relu*_1 activations."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for v in _VGG19_CFG:
            if v == "M":
                layers.append(MaxPool2x2())  # nn.MaxPool2d(2, 2), fast on the CPU (pooling.py)
            else:
                # FrozenConv2d: nn.Conv2d, with the weight packed once on the CPU once frozen (frozen_conv.py)
                layers += [FrozenConv2d(in_ch, v, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                in_ch = v
        assert len(layers) == VGG19_SLICE_ENDS[-1]
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs, start = [], 0
        for end in VGG19_SLICE_ENDS:
            for layer in self.features[start:end]:
                x = layer(x)
            outs.append(x)
            start = end
        return outs


def _vgg_state_dict(raw: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept a full torchvision vgg19 state dict (``features.N.*`` + ``classifier.*``) or a
    ``features`` state dict (``N.*``); keep the layers this module has, drop the rest."""
    out = {}
    for key, value in raw.items():
        key = key.removeprefix("module.")
        if key.startswith("features."):
            out[key] = value
        elif key.split(".")[0].isdigit():
            out["features." + key] = value
    return out


# ----------------------------------------------------------------------------------
# SphereFace-20 (sphere20a)
# ----------------------------------------------------------------------------------

# (stage, out channels, residual units): each stage is a stride-2 conv + PReLU, then units of
# two 3x3 conv + PReLU added to their input. Input 112x96 -> 56x48, 28x24, 14x12, 7x6.
_SPHERE_STAGES = ((1, 64, 1), (2, 128, 2), (3, 256, 4), (4, 512, 1))
SPHERE_INPUT_SIZE = (112, 96)


class SphereFace20(nn.Module):
    """SphereFace-20 (the reference's ``Sphere20a`` without its fc6 classifier). Parameter names
    match the public ``sphere20a_*.pth`` files (``conv1_1``, ``relu1_1`` (PReLU), ..., ``fc5``).
    ``forward`` returns the four stage outputs and the 512-d embedding."""

    def __init__(self, input_size: tuple[int, int] = (112, 96)):
        super().__init__()
        self.input_size = tuple(input_size)
        h, w = self.input_size
        for _ in _SPHERE_STAGES:  # each stage opens with a 3x3 stride-2 conv, padding 1
            h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        in_ch = 3
        for stage, ch, units in _SPHERE_STAGES:
            for j in range(1, 2 + 2 * units):
                self.add_module(f"conv{stage}_{j}", FrozenConv2d(in_ch if j == 1 else ch, ch, 3, 2 if j == 1 else 1, 1))
                self.add_module(f"relu{stage}_{j}", nn.PReLU(ch))
            in_ch = ch
        self.fc5 = nn.Linear(512 * h * w, 512)  # 512 * 7 * 6 at the reference's 112x96

    def _unit(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, f"relu{name}")(getattr(self, f"conv{name}")(x))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for stage, _, units in _SPHERE_STAGES:
            x = self._unit(f"{stage}_1", x)
            for u in range(units):
                a, b = 2 + 2 * u, 3 + 2 * u
                x = x + self._unit(f"{stage}_{b}", self._unit(f"{stage}_{a}", x))
            outs.append(x)
        outs.append(self.fc5(x.flatten(1)))
        return outs


def _sphere_state_dict(raw: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the fc6 (AngleLinear classifier) keys as the reference's loader does."""
    return {k.removeprefix("module."): v for k, v in raw.items() if not k.removeprefix("module.").startswith("fc6")}


# ----------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------


def _stand_in_init(module: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu", generator=gen)
            nn.init.zeros_(m.bias)


STAND_IN_RESIDUAL_SCALE = 0.3


def _sphere_stand_in_init(module: "SphereFace20", seed: int) -> None:
    """Kaiming init, then the last conv of every residual unit scaled by 0.3. Plain Kaiming lets the
    un-normalised residual sums grow ~20x over the 20 layers (mean |fc5| ~ 21 vs ~0.7 at stage 1), and
    the face term would then dominate the objective; with 0.3 every level stays O(1) (0.5 .. 1.5)."""
    _stand_in_init(module, seed)
    with torch.no_grad():
        for stage, _, units in _SPHERE_STAGES:
            for u in range(units):
                getattr(module, f"conv{stage}_{3 + 2 * u}").weight.mul_(STAND_IN_RESIDUAL_SCALE)


def _freeze(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def _read_state_dict(path: str, what: str, key: str) -> Mapping[str, torch.Tensor]:
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"{key}: {what} weights file not found: {file} (give an existing state dict file, or leave {key} empty for the stand-in)")
    try:
        raw = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is the user's file
        raise UserError(f"{what} weights: cannot read {file} as a torch state dict ({type(exc).__name__}: {exc})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(raw, Mapping) and wrapper in raw and isinstance(raw[wrapper], Mapping):
            raw = raw[wrapper]
    if not isinstance(raw, Mapping) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise UserError(f"{what} weights: {file} does not hold a state dict (a mapping of names to tensors)")
    return raw


def _load_checked(module: nn.Module, state: Mapping[str, torch.Tensor], file: str, what: str, key: str) -> None:
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    mismatched = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing[:8])}" + (f" (+{len(missing) - 8} more)" if len(missing) > 8 else ""))
        if mismatched:
            parts.append(f"shape mismatches: {', '.join(mismatched[:8])}")
        raise UserError(f"{key}: {what} weights in {file} do not match the {what} architecture: " + "; ".join(parts))
    module.load_state_dict({k: state[k] for k in expected}, strict=True)


@functools.lru_cache(maxsize=None)
def _warn_stand_in_once(name: str, note: str) -> None:
    """One warning per backbone and process (memoised), however many runs build it."""
    warnings.warn(f"{name}: no pretrained weights given; using the stand-in: {note}", UserWarning, stacklevel=4)


def _build(name: str, what: str, key: str, module: nn.Module, path: str | None, to_state, stand_in_note: str, stand_in_init=None):
    if path is None or str(path).strip() == "":
        (stand_in_init or _stand_in_init)(module, STAND_IN_SEED)
        _warn_stand_in_once(name, stand_in_note)
        return _freeze(module), BackboneStatus(name, "stand-in", None, stand_in_note)
    raw = _read_state_dict(str(path), what, key)
    resolved = str(Path(path).expanduser().resolve())
    _load_checked(module, to_state(raw), resolved, what, key)
    return _freeze(module), BackboneStatus(name, "pretrained", resolved, f"loaded from {resolved}")


def build_vgg19(path: str | None = None) -> tuple[VGG19Features, BackboneStatus]:
    """Frozen VGG19 features through relu5_1, from a torchvision-format state dict at ``path``."""
    note = (
        "VGG19 with a fixed-seed random init (not ImageNet-trained): the perceptual and style losses "
        "compare random frozen conv features; give backbones.vgg_weights (torchvision vgg19 state dict) for the reference"
    )
    return _build("vgg19", "VGG19", "vgg_weights", VGG19Features(), path, _vgg_state_dict, note)


def build_sphereface(path: str | None = None, crop: int = 112) -> tuple[SphereFace20, BackboneStatus]:
    """Frozen SphereFace-20 from a ``sphere20a`` state dict at ``path`` (fc6 keys ignored).

    ``crop`` is the head-crop height (config ``face_crop``; width = 6/7 of it). Pretrained weights
    exist only for the reference's 112x96; smaller crops are for the stand-in on small images."""
    if crop % 28 or crop < 28:
        raise UserError(f"face_crop: invalid value {crop!r} (allowed: 112 | 56 | 28)")
    if path and crop != 112:
        raise UserError(f"face_crop: {crop} needs the stand-in; pretrained SphereFace weights ({path}) take 112x96 crops (allowed: 112)")
    note = (
        "SphereFace-20 with a fixed-seed random init (not face-trained): the face loss compares random "
        "frozen features of the head crops; give backbones.face_weights (sphere20a .pth) for the reference"
    )
    return _build("sphereface20", "SphereFace-20", "face_weights", SphereFace20((crop, crop * 6 // 7)), path, _sphere_state_dict, note, _sphere_stand_in_init)


__all__ = ["BackboneStatus", "VGG19Features", "SphereFace20", "build_vgg19", "build_sphereface"]
