"""LPIPS (Zhang et al. 2018) with the lpips package's learned linear layers ("net-lin"), on AlexNet (the
reference evaluator's choice) or VGG16.

The reference's evaluator (svip-lab/impersonator at b041dd4, thirdparty/his_evaluators metrics.py) builds
``PerceptualLoss(model='net-lin', net='alex')``: LPIPS-Alex. ``lpips_net`` picks ``alex`` (default, for
numbers comparable with LWGAN's 0.087 on iPER) or ``vgg`` (LPIPS-VGG16). The backbone is torchvision's
``alexnet().features`` / ``vgg16().features`` with the same indices, so the user's torchvision state dict
(``backbones.lpips_backbone``) loads as is; the taps are lpips' five slices (AlexNet relu1..relu5; VGG16
relu1_2, relu2_2, relu3_3, relu4_3, relu5_3). The linear layers are the lpips package's
``weights/v0.1/<net>.pth``, which its wheel ships. The lpips package's own ``LPIPS`` class is not used at
run time: it imports torchvision, which cannot be installed beside the CPU torch 2.13 this project pins;
tests/test_quality_metrics.py checks this module against it. Nothing is downloaded.
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

# torchvision's ``features`` layouts: ("C", out, kernel, stride, padding) conv + ReLU; ("M", kernel, stride) max pool.
_LAYOUTS = {
    "vgg": [("C", 64, 3, 1, 1), ("C", 64, 3, 1, 1), ("M", 2, 2), ("C", 128, 3, 1, 1), ("C", 128, 3, 1, 1), ("M", 2, 2),
            ("C", 256, 3, 1, 1), ("C", 256, 3, 1, 1), ("C", 256, 3, 1, 1), ("M", 2, 2), ("C", 512, 3, 1, 1),
            ("C", 512, 3, 1, 1), ("C", 512, 3, 1, 1), ("M", 2, 2), ("C", 512, 3, 1, 1), ("C", 512, 3, 1, 1), ("C", 512, 3, 1, 1)],
    "alex": [("C", 64, 11, 4, 2), ("M", 3, 2), ("C", 192, 5, 1, 2), ("M", 3, 2), ("C", 384, 3, 1, 1), ("C", 256, 3, 1, 1),
             ("C", 256, 3, 1, 1)],
}
# Exclusive ends in ``features`` of lpips' five slices, and their widths.
LPIPS_SLICE_ENDS = {"vgg": (4, 9, 16, 23, 30), "alex": (2, 5, 8, 10, 12)}
LPIPS_CHANNELS = {"vgg": (64, 128, 256, 512, 512), "alex": (64, 192, 384, 256, 256)}
LPIPS_NETS = tuple(_LAYOUTS)
TORCHVISION_NAMES = {"vgg": "VGG16", "alex": "AlexNet"}


class LPIPSBackbone(nn.Module):
    """torchvision's ``vgg16().features[:30]`` or ``alexnet().features[:12]``; ``forward`` returns the five LPIPS taps."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in _LAYOUTS:
            raise UserError(f"lpips_net: invalid value {net!r} (allowed: {' | '.join(LPIPS_NETS)})")
        self.net = net
        layers: list[nn.Module] = []
        in_ch = 3
        for spec in _LAYOUTS[net]:
            if spec[0] == "M":
                layers.append(nn.MaxPool2d(kernel_size=spec[1], stride=spec[2]))
            else:
                _, out, k, stride, pad = spec
                layers += [nn.Conv2d(in_ch, out, kernel_size=k, stride=stride, padding=pad), nn.ReLU(inplace=False)]
                in_ch = out
        self.ends = LPIPS_SLICE_ENDS[net]
        assert len(layers) == self.ends[-1]
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs, start = [], 0
        for end in self.ends:
            for layer in self.features[start:end]:
                x = layer(x)
            outs.append(x)
            start = end
        return outs


class LPIPSMetric(nn.Module):
    """``forward(x, y)`` -> (B,) LPIPS of images in [-1, 1]: the lpips ScalingLayer, unit-normalised
    backbone features, squared differences weighted by the linear layers, spatial mean, summed over layers."""

    def __init__(self, vgg: LPIPSBackbone, linear_weights: Sequence[torch.Tensor]):
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


def lpips_package_weights(net: str = "alex") -> Path:
    """The lpips package's shipped ``weights/v0.1/<net>.pth`` (found without importing the package)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("lpips_backbone: the 'lpips' package is not installed (it ships the LPIPS linear layers): "
                        "pip install --no-deps lpips==0.1.4, or set lpips_weights to a <net>.pth")
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1" / f"{net}.pth"
    if not path.is_file():
        raise UserError(f"lpips_backbone: {path} is missing from the installed lpips package (allowed: lpips 0.1.x, or set lpips_weights)")
    return path


def build_lpips(backbone_path: str | None, net: str = "alex", linear_path: str | None = None) -> tuple[LPIPSMetric | None, QualityStatus]:
    """LPIPS-``net`` from the user's torchvision state dict of that network, or (None, absent) without one."""
    if backbone_path is None or str(backbone_path).strip() == "":
        return None, QualityStatus("lpips", ABSENT, None, "eval/lpips absent: no backbones.lpips_backbone (torchvision AlexNet or VGG16 state dict, per lpips_net) given")
    backbone = LPIPSBackbone(net)
    what = TORCHVISION_NAMES[net]
    raw = _read_state_dict(str(backbone_path), what, "lpips_backbone")
    resolved = str(Path(backbone_path).expanduser().resolve())
    _load_checked(backbone, _vgg_state_dict(raw), resolved, what, "lpips_backbone")
    for p in backbone.parameters():
        p.requires_grad_(False)
    lin_file = str(Path(linear_path).expanduser()) if linear_path else str(lpips_package_weights(net))
    module = LPIPSMetric(backbone.eval(), load_lpips_weights(lin_file, LPIPS_CHANNELS[net])).eval()
    return module, QualityStatus("lpips", PRETRAINED, resolved, f"LPIPS-{what}: backbone {resolved}, linear layers {lin_file}")
