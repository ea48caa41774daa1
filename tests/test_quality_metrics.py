"""Quality metrics: LPIPS (AlexNet and VGG16) against the lpips package itself, FID / KID against independent
computations, the Inception and VGG16 files written by the tests, and absence without weights."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from lwgan.errors import DataError, UserError
from lwgan.quality import (
    InceptionFeatures, LPIPSBackbone, build_inception, build_lpips, fid_from_features, kid_from_features,
    lpips_package_weights,
)
from lwgan.quality.fid import _inception_class


def _random_state(net_name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision-layout AlexNet / VGG16 state dict (``features.*`` plus a classifier the loader must
    ignore), random weights scaled so activations stay O(1) through the convs."""
    torch.manual_seed(seed)
    net = LPIPSBackbone(net_name)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.normal_(m.bias, 0.0, 0.01)
    state = dict(net.state_dict())
    state["classifier.0.weight"] = torch.zeros(8, 8)  # torchvision files carry the classifier: ignored
    return state


@pytest.fixture
def backbone_files(tmp_path):
    files = {"alex": tmp_path / "alexnet.pth", "vgg": tmp_path / "vgg16.pth"}
    for net, path in files.items():
        torch.save(_random_state(net), path)
    return files


@pytest.fixture
def lpips_package(monkeypatch, backbone_files):
    """The lpips package's own LPIPS class, its torchvision import answered by a module whose ``alexnet``
    and ``vgg16`` return our layers with the same random weights (torchvision cannot be installed here)."""

    def factory(net_name):
        def build(pretrained=False, **_):
            state = torch.load(backbone_files[net_name], weights_only=True)
            net = LPIPSBackbone(net_name)
            net.load_state_dict({k: v for k, v in state.items() if k.startswith("features.")})
            holder = nn.Module()
            holder.features = net.features
            return holder

        return build

    fake_tv = types.ModuleType("torchvision")
    fake_tv.models = types.SimpleNamespace(vgg16=factory("vgg"), alexnet=factory("alex"))
    monkeypatch.setitem(sys.modules, "torchvision", fake_tv)
    monkeypatch.setitem(sys.modules, "torchvision.models", fake_tv.models)
    for name in [n for n in sys.modules if n == "lpips" or n.startswith("lpips.")]:
        monkeypatch.delitem(sys.modules, name)
    import lpips

    yield lpips
    for name in [n for n in sys.modules if n == "lpips" or n.startswith("lpips.")]:
        sys.modules.pop(name, None)


# -- LPIPS ----------------------------------------------------------------------------


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_the_lpips_package(net, backbone_files, lpips_package):
    ours, status = build_lpips(str(backbone_files[net]), net)
    assert status.status == "pretrained" and status.path == str(backbone_files[net].resolve())
    reference = lpips_package.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=False, verbose=False).eval()
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(3, 3, 64, 64, generator=g)).clamp(-1, 1)
    with torch.no_grad():
        expected = reference(x, y).flatten()
    got = ours(x, y)
    assert got.shape == (3,) and (got > 0).all()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    assert torch.allclose(ours(x, x), torch.zeros(3), atol=1e-7)
    # the linear layers are the package's shipped file, not ones made up here
    shipped = torch.load(lpips_package_weights(net), map_location="cpu", weights_only=True)
    torch.testing.assert_close(ours.lin2, shipped["lin2.model.1.weight"].float())


def test_lpips_is_absent_without_the_backbone_file_and_names_bad_files(tmp_path):
    module, status = build_lpips(None)
    assert module is None and status.status == "absent" and "lpips_backbone" in status.note
    with pytest.raises(UserError, match="lpips_backbone: AlexNet weights file not found: .*nope.pth"):
        build_lpips(str(tmp_path / "nope.pth"))
    with pytest.raises(UserError, match="lpips_net: invalid value 'squeeze' \\(allowed: vgg \\| alex\\)"):
        build_lpips(str(tmp_path / "nope.pth"), "squeeze")
    from lwgan.models.backbones import VGG19Features

    torch.save(VGG19Features().state_dict(), tmp_path / "vgg19.pth")  # the wrong VGG
    with pytest.raises(UserError, match=r"lpips_backbone: VGG16 weights in .*vgg19.pth do not match the VGG16 architecture: missing keys: features.17.weight"):
        build_lpips(str(tmp_path / "vgg19.pth"), "vgg")
    torch.save(_random_state("vgg"), tmp_path / "v.pth")
    torch.save({"lin0.model.1.weight": torch.ones(1, 64, 1, 1)}, tmp_path / "lin.pth")
    with pytest.raises(DataError, match="lin.pth: LPIPS weights lack 'lin1.model.1.weight'"):
        build_lpips(str(tmp_path / "v.pth"), "vgg", str(tmp_path / "lin.pth"))


# -- FID / KID statistics ---------------------------------------------------------------


def _fid_by_eigenvalues(a: np.ndarray, b: np.ndarray) -> float:
    """Independent route: Tr((S1 S2)^1/2) = sum of sqrt of the (real, >= 0) eigenvalues of S1 S2."""
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eig = np.linalg.eigvals(s1 @ s2).real.clip(min=0)
    d = a.mean(0) - b.mean(0)
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(eig).sum())


def test_fid_matches_an_eigenvalue_computation_and_its_invariants():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(0.5, 1.5, size=(250, 6))
    assert fid_from_features(a, b) == pytest.approx(_fid_by_eigenvalues(a, b), rel=1e-8)
    assert abs(fid_from_features(a, a)) < 1e-8
    shift = np.array([1.0, -2.0, 0.0, 0.5, 0.0, 3.0])
    assert fid_from_features(a + shift, a) == pytest.approx(shift @ shift, rel=1e-8)
    # two Gaussians with diagonal covariances: the closed form sum (sqrt s1 - sqrt s2)^2 + |mu1 - mu2|^2
    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    x = rng.normal(size=(200000, 2)) @ np.sqrt(s1)
    y = rng.normal(size=(200000, 2)) @ np.sqrt(s2) + [1.0, 0.0]
    assert fid_from_features(x, y) == pytest.approx(1.0 + (1 - 3) ** 2 + (2 - 1) ** 2, rel=0.02)
    with pytest.raises(ValueError, match="at least 2 samples"):
        fid_from_features(a[:1], b)


def test_fid_with_fewer_samples_than_dimensions_matches_the_eigenvalue_route():
    """The small-side route (nuclear norm, used when N <= D as with 200 pairs of 2048-d features)."""
    rng = np.random.default_rng(2)
    a = rng.normal(size=(12, 40)) @ rng.normal(size=(40, 40)) * 0.3
    b = rng.normal(0.2, 1.0, size=(15, 40))
    assert fid_from_features(a, b) == pytest.approx(_fid_by_eigenvalues(a, b), rel=1e-6)
    assert abs(fid_from_features(a, a)) < 1e-8


def test_kid_is_the_unbiased_polynomial_mmd():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(7, 5)), rng.normal(0.3, 1.0, size=(7, 5))

    def k(a, b):
        return (a @ b / 5 + 1) ** 3

    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    mean, std = kid_from_features(x, y, subsets=3, subset_size=100)  # subset = the whole set (a permutation)
    assert mean == pytest.approx(xx + yy - 2 * xy, rel=1e-10) and std == pytest.approx(0.0, abs=1e-12)
    big_a, big_b = rng.normal(size=(400, 5)), rng.normal(size=(400, 5))
    same, _ = kid_from_features(big_a, big_b, subsets=20, subset_size=100)
    apart, _ = kid_from_features(big_a, big_b + 1.0, subsets=20, subset_size=100)
    assert abs(same) < 0.05 < apart  # unbiased: about 0 for one distribution


# -- Inception ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """torch-fidelity's Inception-v3 with PyTorch's default random init, saved as a state dict (no
    download: its constructor's load is bypassed once to get the architecture's keys)."""
    cls = _inception_class()
    original = nn.Module.load_state_dict
    path = tmp_path_factory.mktemp("inception") / "inception.pth"
    torch.save({}, path)
    nn.Module.load_state_dict = lambda self, state, *a, **k: None
    try:
        torch.manual_seed(0)
        net = cls("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    finally:
        nn.Module.load_state_dict = original
    torch.save(net.state_dict(), path)
    return path


def test_inception_features_from_a_user_file_give_fid_and_kid(inception_file, tmp_path):
    net, status = build_inception(str(inception_file))
    assert isinstance(net, InceptionFeatures) and status.status == "pretrained"
    g = torch.Generator().manual_seed(0)
    real = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    fake = (real + 0.8 * torch.randn(3, 3, 32, 32, generator=g)).clamp(-1, 1)
    seen = []
    net.extractor.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    fr, ff = net(real), net(fake)
    assert fr.shape == (3, 2048) and fr.dtype == torch.float64 and torch.isfinite(fr).all()
    # the extractor sees uint8 images: [-1, 1] -> 0..255
    assert seen[0].dtype == torch.uint8 and torch.equal(seen[0], ((real + 1) * 127.5).round().to(torch.uint8))
    assert abs(fid_from_features(fr.numpy(), fr.numpy())) < 1e-6
    assert fid_from_features(ff.numpy(), fr.numpy()) > 0
    assert "torch_fidelity" not in sys.modules or hasattr(sys.modules["torch_fidelity"], "calculate_metrics")


def test_fid_and_kid_are_absent_without_weights_and_bad_files_are_named(tmp_path):
    net, status = build_inception(None)
    assert net is None and status.status == "absent" and "inception_weights" in status.note
    with pytest.raises(UserError, match="inception_weights: Inception-v3 weights file not found: .*none.pth"):
        build_inception(str(tmp_path / "none.pth"))
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "bad.pth")
    with pytest.raises(UserError, match="inception_weights: .*bad.pth is not torch-fidelity's Inception-v3 state dict"):
        build_inception(str(tmp_path / "bad.pth"))


# -- in a training run --------------------------------------------------------------------


def test_a_run_with_both_weight_files_logs_lpips_every_eval_and_fid_kid_at_the_last_step(tmp_path, monkeypatch, backbone_files, inception_file):
    from lwgan.profiles import resolve_config
    from lwgan.train.metrics_log import read_metrics
    from lwgan.train.trainer import Trainer

    monkeypatch.setenv("LWGAN_CACHE", str(tmp_path / "cache"))
    cfg = resolve_config("tiny", {"max_steps": 2, "device": "cpu", "num_threads": 1, "eval_every": 1, "sample_every": 2,
                                  "checkpoint_every": 2, "lpips_backbone": str(backbone_files["alex"]), "inception_weights": str(inception_file),
                                  "fid_pairs": 3})
    result = Trainer(cfg, tmp_path / "run", progress=False, profile="tiny").fit()
    assert result.status == "completed"
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert all(row["eval/lpips"] > 0 for row in rows)  # steps 0, 1, 2
    assert [("eval/fid" in row, "eval/kid" in row) for row in rows] == [(False, False), (False, False), (True, True)]
    assert rows[-1]["eval/fid"] > 0 and np.isfinite(rows[-1]["eval/kid"])
    import json

    info = json.loads((tmp_path / "run" / "run_info.json").read_text())
    statuses = {b["name"]: b["status"] for b in info["backbones"]}
    assert statuses["lpips"] == statuses["inception_v3"] == "pretrained"
    assert "3 val pairs, last step" in info["quality_metrics"]["eval/fid"]


def test_the_report_says_when_a_quality_metric_is_absent():
    import json

    import pandas as pd

    from lwgan import vocab
    from lwgan.report.sections import backbone_lines

    status = {"vgg19": "pretrained", "sphereface20": "pretrained", "lpips": "absent", "inception_v3": "pretrained"}
    runs = pd.DataFrame({f"tag.{vocab.Tag.BACKBONE_STATUS}": [json.dumps(status)]})
    warnings, lines = backbone_lines(runs)
    assert warnings == []
    assert "LPIPS: absent (no weights given: no LPIPS scores)" in lines
    assert "Inception-v3: pretrained" in lines
