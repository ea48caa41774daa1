"""FID (Heusel et al. 2017) and KID (Binkowski et al. 2018) on Inception-v3 pool features.

The feature network is torch-fidelity's ``FeatureExtractorInceptionV3`` (the TensorFlow FID Inception
ported bit-exactly, 2048-d pool features of uint8 images resized to 299x299 as TF resizes), with its
weights (``weights-inception-2015-12-05-6726825d.pth``) from the user's path only: nothing is
downloaded. torch-fidelity's package ``__init__`` imports torchvision (for extractors this project does
not use), and torchvision cannot be installed beside the CPU torch 2.13 this project pins, so the
Inception module is imported without running that ``__init__`` (``_inception_class``). The statistics
follow torch-fidelity's definitions: FID from float64 means and sample covariances (the trace of the covariance
product's square root by scipy's ``sqrtm``, or exactly from the smaller sample side when there are
fewer samples than feature dimensions); KID as the unbiased MMD^2 with the cubic polynomial kernel ``(x.y / d + 1)^3``, averaged over
random subsets (torch-fidelity: 100 subsets of 1000; here the subset size is capped at the sample count).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
from torch import nn

from lwgan.errors import UserError
from lwgan.quality.status import ABSENT, PRETRAINED, QualityStatus

FEATURE = "2048"  # torch-fidelity's name of the pool3 features FID and KID use
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_SEED = 2020  # fixed: the subsets are the same for every run


def _inception_class():
    """torch-fidelity's FeatureExtractorInceptionV3, imported without running the package ``__init__``
    when that fails for want of torchvision; the temporary package entry is removed again."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        return FeatureExtractorInceptionV3
    except ModuleNotFoundError as err:
        if err.name == "torch_fidelity":
            raise UserError("inception_weights: the 'torch-fidelity' package is not installed: pip install --no-deps torch-fidelity==0.4.0") from None
        if err.name != "torchvision":
            raise
    spec = importlib.util.find_spec("torch_fidelity")
    shim = types.ModuleType("torch_fidelity")
    shim.__path__ = list(spec.submodule_search_locations)  # a bare package: submodules load, __init__ does not run
    previous = sys.modules.get("torch_fidelity")
    sys.modules["torch_fidelity"] = shim
    try:
        module = importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
    finally:
        if previous is None:
            sys.modules.pop("torch_fidelity", None)
        else:
            sys.modules["torch_fidelity"] = previous
    return module.FeatureExtractorInceptionV3


class InceptionFeatures(nn.Module):
    """``forward(images in [-1, 1], (B, 3, H, W))`` -> (B, 2048) float64 pool features (on the CPU)."""

    def __init__(self, extractor: nn.Module):
        super().__init__()
        self.extractor = extractor

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        as_uint8 = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        (features,) = self.extractor(as_uint8)
        return features.double().cpu()


def build_inception(path: str | None) -> tuple[InceptionFeatures | None, QualityStatus]:
    """The FID Inception from the user's torch-fidelity weights file, or (None, absent) without one."""
    if path is None or str(path).strip() == "":
        return None, QualityStatus("inception_v3", ABSENT, None, "eval/fid and eval/kid absent: no backbones.inception_weights given")
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"inception_weights: Inception-v3 weights file not found: {file} (give torch-fidelity's weights-inception-2015-12-05-6726825d.pth, or leave inception_weights empty: FID/KID are then absent)")
    cls = _inception_class()
    try:
        extractor = cls("inception-v3-compat", [FEATURE], feature_extractor_weights_path=str(file))
    except Exception as exc:  # noqa: BLE001 - any load failure is the user's file
        raise UserError(f"inception_weights: {file} is not torch-fidelity's Inception-v3 state dict ({type(exc).__name__}: {str(exc)[:300]})") from None
    resolved = str(file.resolve())
    return InceptionFeatures(extractor.eval()), QualityStatus("inception_v3", PRETRAINED, resolved, f"Inception-v3 (torch-fidelity) from {resolved}")


def _check_features(a: np.ndarray, b: np.ndarray, need: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, D) with one D; got {a.shape} and {b.shape}")
    if min(len(a), len(b)) < need:
        raise ValueError(f"need at least {need} samples per set; got {len(a)} and {len(b)}")
    return a, b


def _trace_sqrt_product(fake: np.ndarray, real: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> float:
    """Tr((S_f S_r)^(1/2)). With fewer samples than dimensions (200 pairs vs 2048 features) S_f S_r has
    rank < D and the D x D ``sqrtm`` is slow and ill-conditioned; the same trace is then exact from the
    small side: with centred data A, B, the non-zero eigenvalues of S_f S_r are the squared singular
    values of A B^T / sqrt((n_f - 1)(n_r - 1)), so the trace is that matrix's nuclear norm."""
    n1, n2, dim = len(fake), len(real), fake.shape[1]
    if min(n1, n2) <= dim:
        a, b = fake - fake.mean(0), real - real.mean(0)
        return float(np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1)))
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():  # singular product: offset the diagonals (as torch-fidelity / pytorch-fid)
        offset = np.eye(dim) * 1e-6
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    return float(np.trace(np.real(covmean)))


def fid_from_features(fake: np.ndarray, real: np.ndarray) -> float:
    """||mu_f - mu_r||^2 + Tr(S_f + S_r - 2 (S_f S_r)^(1/2)) with sample covariances (ddof 1)."""
    fake, real = _check_features(fake, real, 2)
    s1, s2 = np.cov(fake, rowvar=False), np.cov(real, rowvar=False)
    diff = fake.mean(0) - real.mean(0)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * _trace_sqrt_product(fake, real, s1, s2))


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m = len(x)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())


def kid_from_features(fake: np.ndarray, real: np.ndarray, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE, seed: int = KID_SEED) -> tuple[float, float]:
    """(mean, std) over ``subsets`` random subsets (without replacement, of ``min(subset_size, N)``) of
    the unbiased MMD^2 with the kernel ``(x.y / d + 1)^3``."""
    fake, real = _check_features(fake, real, 2)
    m = min(subset_size, len(fake), len(real))
    rng = np.random.RandomState(seed)
    values = []
    for _ in range(subsets):
        f = fake[rng.choice(len(fake), m, replace=False)]
        r = real[rng.choice(len(real), m, replace=False)]
        values.append(_mmd2_unbiased(f, r))
    return float(np.mean(values)), float(np.std(values))
