"""LPIPS (Zhang et al. 2018), the VGG16 variant the LWGAN evaluator reports (LWGAN: 0.087 on iPER).

The network is torchvision's ``vgg16().features`` through relu5_3 (same indices, so a torchvision state
dict loads as is), tapped at relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3; the learned linear layers
are the lpips package's ``weights/v0.1/vgg.pth``, which its wheel ships. The lpips package's own
``LPIPS`` class is not used at run time: it imports torchvision, which cannot be installed beside the
CPU torch 2.13 this project pins. tests/test_quality_metrics.py checks this module against it.
Nothing is downloaded: the VGG16 file is the user's (``backbones.lpips_vgg16``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from lwgan.errors import UserError
from lwgan.models.backbones import _load_checked, _read_state_dict, _vgg_state_dict
from lwgan.quality.status import ABSENT, PRETRAINED, QualityStatus
from lwgan.train.image_metrics import LPIPS_SCALE, LPIPS_SHIFT, load_lpips_weights, lpips_distance

# torchvision's vgg16 ``features`` layout ("D"): conv widths, "M" = 2x2 max pool.
_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
# Exclusive ends in ``features`` of the LPIPS taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
LPIPS_SLICE_ENDS = (4, 9, 16, 23, 30)
LPIPS_CHANNELS = (64, 128, 256, 512, 512)
LPIPS_PACKAGE_FILE = ("weights", "v0.1", "vgg.pth")


class VGG16Features(nn.Module):
    """torchvision's ``vgg16().features[:30]`` (through relu5_3); ``forward`` returns the five LPIPS taps."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_ch, v, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                in_ch = v
        assert len(layers) == LPIPS_SLICE_ENDS[-1]
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs, start = [], 0
        for end in LPIPS_SLICE_ENDS:
            for layer in self.features[start:end]:
                x = layer(x)
            outs.append(x)
            start = end
        return outs


class LPIPSVGG16(nn.Module):
    """``forward(x, y)`` -> (B,) LPIPS of images in [-1, 1]: the lpips ScalingLayer, unit-normalised
    VGG16 features, squared differences weighted by the linear layers, spatial mean, summed over layers."""

    def __init__(self, vgg: VGG16Features, linear_weights: Sequence[torch.Tensor]):
        super().__init__()
        self.vgg = vgg
        for i, w in enumerate(linear_weights):
            self.register_buffer(f"lin{i}", w.float())
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))
        self.n_layers = len(linear_weights)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        dtype = next(self.vgg.parameters()).dtype
        fx = [f.float() for f in self.vgg(((x.float() - self.shift) / self.scale).to(dtype))]
        fy = [f.float() for f in self.vgg(((y.float() - self.shift) / self.scale).to(dtype))]
        return lpips_distance(fx, fy, [getattr(self, f"lin{i}") for i in range(self.n_layers)])


def lpips_package_weights() -> Path:
    """The lpips package's shipped ``weights/v0.1/vgg.pth`` (found without importing the package)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("lpips_vgg16: the 'lpips' package is not installed (it ships the LPIPS linear layers): "
                        "pip install --no-deps lpips==0.1.4, or set lpips_weights to a vgg.pth")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*LPIPS_PACKAGE_FILE)
    if not path.is_file():
        raise UserError(f"lpips_vgg16: {path} is missing from the installed lpips package (allowed: lpips 0.1.x, or set lpips_weights)")
    return path


def build_lpips(vgg16_path: str | None, linear_path: str | None = None) -> tuple[LPIPSVGG16 | None, QualityStatus]:
    """LPIPS-VGG16 from the user's torchvision VGG16 state dict, or (None, absent) without one."""
    if vgg16_path is None or str(vgg16_path).strip() == "":
        return None, QualityStatus("lpips", ABSENT, None, "eval/lpips absent: no backbones.lpips_vgg16 (torchvision VGG16 state dict) given")
    vgg = VGG16Features()
    raw = _read_state_dict(str(vgg16_path), "VGG16", "lpips_vgg16")
    resolved = str(Path(vgg16_path).expanduser().resolve())
    _load_checked(vgg, _vgg_state_dict(raw), resolved, "VGG16", "lpips_vgg16")
    for p in vgg.parameters():
        p.requires_grad_(False)
    lin_file = str(Path(linear_path).expanduser()) if linear_path else str(lpips_package_weights())
    module = LPIPSVGG16(vgg.eval(), load_lpips_weights(lin_file, LPIPS_CHANNELS)).eval()
    return module, QualityStatus("lpips", PRETRAINED, resolved, f"LPIPS-VGG16: backbone {resolved}, linear layers {lin_file}")
