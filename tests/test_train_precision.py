"""precision: auto | bf16 | fp32 — detection, resolution, the layout rule, and the parts kept in fp32 under bf16 autocast."""

import json

import pytest
import torch
from torch import nn

from lwgan.config import ConfigError, TrainConfig
from lwgan.models import losses
from lwgan.profiles import resolve_config
from lwgan.quality import LPIPSMetric
from lwgan.train.precision import Precision, bf16_flags_in, cpuinfo_flags, resolve_precision, use_channels_last
from lwgan.train.trainer import Trainer

CPUINFO_ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu vme sse sse2 avx2 avx512f avx512bw avx512_bf16 avx512vl
bugs\t\t: sysret_ss_attrs

processor\t: 1
flags\t\t: fpu vme sse sse2 avx2 avx512f avx512bw avx512_bf16 avx512vl
"""
CPUINFO_SPR = "flags\t\t: fpu sse avx512f amx_bf16 amx_tile amx_int8 avx512_bf16\n"
CPUINFO_OLD = "flags\t\t: fpu sse sse2 avx avx2 fma\nmodel name\t: avx512_bf16 lookalike in a name\n"


def test_cpuinfo_flags_reads_only_the_flags_lines():
    assert "avx512_bf16" in cpuinfo_flags(CPUINFO_ZEN4)
    assert "AuthenticAMD" not in cpuinfo_flags(CPUINFO_ZEN4)
    assert "avx512_bf16" not in cpuinfo_flags(CPUINFO_OLD)  # a model name is not a flag


@pytest.mark.parametrize("text, units", [(CPUINFO_ZEN4, ("avx512_bf16",)), (CPUINFO_SPR, ("amx_bf16", "avx512_bf16")), (CPUINFO_OLD, ())])
def test_bf16_units_from_cpuinfo(text, units):
    assert bf16_flags_in(cpuinfo_flags(text)) == units


def test_auto_resolves_by_cpu_units_and_explicit_values_are_kept():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu, cpu_units=("avx512_bf16",)).name == "bf16"
    assert "avx512_bf16" in resolve_precision("auto", cpu, cpu_units=("avx512_bf16",)).reason
    assert resolve_precision("auto", cpu, cpu_units=()).name == "fp32"
    assert resolve_precision("fp32", cpu, cpu_units=("amx_bf16",)).name == "fp32"
    assert resolve_precision("bf16", cpu, cpu_units=()).name == "bf16"


def test_invalid_precision_names_key_and_allowed_values():
    with pytest.raises(ConfigError, match=r"precision: invalid value 'fp16' \(allowed: auto \| bf16 \| fp32\)"):
        TrainConfig.from_flat({"precision": "fp16"})
    with pytest.raises(ConfigError, match="precision"):
        resolve_precision("half", torch.device("cpu"))


def test_channels_last_is_off_unless_asked_for():
    bf16, fp32 = Precision("bf16", "cpu", ""), Precision("fp32", "cpu", "")
    assert use_channels_last(None, bf16) is False  # NHWC measured no faster on the CPU, even with bf16
    assert use_channels_last(None, fp32) is False  # and slower with fp32
    assert use_channels_last(None, Precision("bf16", "cuda", "")) is False  # slower than NCHW on an H100 (BENCHMARKS.md)
    assert use_channels_last(True, fp32) is True and use_channels_last(False, bf16) is False


def test_autocast_context_runs_convolutions_in_the_chosen_dtype():
    conv, x = nn.Conv2d(3, 4, 3), torch.randn(1, 3, 8, 8)
    with Precision("bf16", "cpu", "").autocast():
        assert conv(x).dtype == torch.bfloat16
    with Precision("fp32", "cpu", "").autocast():
        assert conv(x).dtype == torch.float32
    assert Precision("bf16", "cpu", "").backbone_dtype == torch.bfloat16


def test_gradient_penalty_is_fp32_under_bf16_autocast():
    """D(x) = sum of a 1x1 conv: grad_x is the conv weight at every pixel, so ||grad|| = sqrt(H*W*sum(w^2))
    exactly (hand computation). The weights are chosen so that bf16 rounding would move the penalty by ~1e-3."""
    conv = nn.Conv2d(3, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.1001, 0.0503, 0.0717]).view(1, 3, 1, 1))
    h = w = 4

    def disc(x, cond):
        return conv(x).sum(dim=(1, 2, 3))

    real, fake, cond = torch.randn(2, 3, h, w), torch.randn(2, 3, h, w), torch.zeros(2, 3, h, w)
    norm = (h * w * conv.weight.detach().double().pow(2).sum()).sqrt()
    expected = float((norm - 1) ** 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gp = losses.gradient_penalty(disc, real.bfloat16(), fake.bfloat16(), cond)
    assert gp.dtype == torch.float32
    assert gp.item() == pytest.approx(expected, rel=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what a bf16 penalty would give: measurably off
        x = real.bfloat16().requires_grad_(True)
        (g,) = torch.autograd.grad(conv(x).sum(), x)
    assert abs(float((g.float().flatten(1).norm(dim=1) - 1).pow(2).mean()) - expected) > 1e-4


def test_mask_bce_is_fp32_under_autocast():
    m = torch.rand(2, 1, 8, 8).bfloat16()
    t = (torch.rand(2, 1, 8, 8) > 0.5).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = losses.mask_loss(m, t)
    ref = nn.functional.binary_cross_entropy(m.double(), t.double())
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(ref.item(), rel=1e-6)


def test_lpips_with_a_bf16_backbone_returns_fp32_close_to_fp32():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())

    class Feats(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            return [self.net(x)]

    weights = [torch.rand(1, 8, 1, 1)]
    x, y = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    ref = LPIPSMetric(Feats(), weights)(x, y)
    low = LPIPSMetric(Feats().to(torch.bfloat16), weights)(x, y)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, ref, rtol=3e-2, atol=1e-3)


@pytest.fixture(scope="module")
def _cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LWGAN_CACHE", str(tmp_path_factory.mktemp("lwgan-cache")))
        yield


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_trainer_records_precision_and_keeps_backbones_in_its_dtype(tmp_path, _cache, precision):
    cfg = resolve_config("tiny", {"max_steps": 2, "device": "cpu", "num_threads": 1, "precision": precision})
    trainer = Trainer(cfg, tmp_path, progress=False)
    result = trainer.fit()
    assert result.status == "completed"
    info = json.loads((tmp_path / "run_info.json").read_text())
    assert info["precision"] == precision and info["channels_last"] is False  # auto on a CPU: NCHW
    assert info["config"]["precision"] == precision  # the flat config is what MLflow logs as params
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    assert {p.dtype for p in trainer.vgg.parameters()} == {dtype} == {p.dtype for p in trainer.face.parameters()}
    assert {p.dtype for p in trainer.G.parameters()} == {torch.float32}  # trained weights stay fp32 masters
    assert all(torch.isfinite(torch.tensor(v)) for k, v in result.metrics.items() if k.startswith("loss/"))
