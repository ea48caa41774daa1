"""CUDA graphs of the step's network calls (lwgan.train.graphs): the setting, the call sites' record /
replay / fallback logic and the trainer with graphs, on the CPU through a stand-in for
torch.cuda.make_graphed_callables that has its side effects (warm-up calls, outputs that the next
replay overwrites); on a CUDA device, the real capture against eager training."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from lwgan.config import ConfigError
from lwgan.models.generator import GeneratorOutput
from lwgan.models.layers import apply_spectral_norm
from lwgan.profiles import resolve_config
from lwgan.train.graphs import CallSite, CallSites, resolve_cuda_graphs
from lwgan.train.metrics_log import read_metrics
from lwgan.train.trainer import Trainer

LOSS_KEYS = ("loss/G_adv", "loss/G_rec", "loss/G_tsf", "loss/G_face", "loss/G_mask", "loss/G_mask_smooth",
             "loss/G_total", "loss/D_real", "loss/D_fake", "loss/D_total", "grad_norm/G", "grad_norm/D")


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LWGAN_CACHE", str(tmp_path_factory.mktemp("lwgan-cache")))
        yield


class _StaticOutputs(nn.Module):
    """What a replay returns: the same output tensors every call, overwritten by the next call."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module
        self.static: list[torch.Tensor] | None = None

    def forward(self, *args):
        out = self.module(*args)
        if torch.is_grad_enabled():  # autograd outputs: returned as made (the aliasing is tested without grad)
            return out
        leaves = list(out) if isinstance(out, (list, tuple)) else [out]
        if self.static is None:
            self.static = [t.clone() for t in leaves]
        else:
            for s, t in zip(self.static, leaves):
                s.copy_(t)
        return type(out)(self.static) if isinstance(out, (list, tuple)) else self.static[0]


def stand_in_graphs(calls: list[str] | None = None):
    """A make_graphed_callables for the CPU: three warm-up calls and a recording call, each with a
    backward to every input and parameter that needs a gradient (as torch's), then a callable whose
    no-grad outputs are static tensors."""

    def make(module: nn.Module, sample: tuple[torch.Tensor, ...]) -> nn.Module:
        for _ in range(4):
            outs = tree_leaves(module(*sample))
            need = [o for o in outs if o.requires_grad]
            inputs = [t for t in (*sample, *module.parameters()) if t.requires_grad]
            if need and inputs:
                torch.autograd.grad(need, inputs, [torch.ones_like(o) for o in need], allow_unused=True)
        if calls is not None:
            calls.append(type(module.net).__name__)
        return _StaticOutputs(module)

    return make


# -- the setting -----------------------------------------------------------------------

def test_setting_resolves_per_device():
    assert resolve_cuda_graphs("auto", torch.device("cpu")) == (False, "auto: no CUDA graphs on device type 'cpu'")
    assert resolve_cuda_graphs("auto", torch.device("cuda")) == (True, "auto: CUDA device")
    assert resolve_cuda_graphs("on", torch.device("cuda", 1))[0] is True
    assert resolve_cuda_graphs("off", torch.device("cuda"))[0] is False
    with pytest.raises(ConfigError) as err:
        resolve_cuda_graphs("on", torch.device("cpu"))
    assert "cuda_graphs" in str(err.value) and "auto | off" in str(err.value) and "'cpu'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        resolve_cuda_graphs("yes", torch.device("cpu"))
    assert "auto | on | off" in str(err.value)


def test_config_key_is_checked_where_set():
    with pytest.raises(ConfigError) as err:
        resolve_config("tiny", {"cuda_graphs": "always"})
    assert "cuda_graphs" in str(err.value) and "auto | on | off" in str(err.value)
    assert resolve_config("tiny", {"cuda_graphs": "off"}).run.cuda_graphs == "off"


# -- one call site ------------------------------------------------------------------------

class TwoOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x, y):
        return GeneratorOutput(*(self.conv(x + y)[:, i : i + 1] for i in range(4)), x, y, x * y)


def test_site_records_replays_and_falls_back():
    torch.manual_seed(0)
    net = TwoOut()
    site = CallSite("g", net)
    x, y = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    first = site(x, y)  # eager, recorded
    assert isinstance(first, GeneratorOutput) and site.eager_calls == 1 and not site.captured
    assert site.capture(stand_in_graphs()) and site.captured
    again = site(x, y)
    assert site.replays == 1 and isinstance(again, GeneratorOutput)
    for a, b in zip(tree_leaves(first.__dict__), tree_leaves(again.__dict__)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    site(torch.randn(3, 3, 8, 8), torch.randn(3, 3, 8, 8))  # another batch size
    with torch.no_grad():
        site(x, y)  # another grad mode
    net.eval()
    site(x, y)  # eval mode
    net.train()
    site(x.requires_grad_(), y)  # an input that needs a gradient now
    assert site.replays == 1 and site.eager_calls == 5
    assert site.conv is net.conv  # other attributes are the net's


def test_site_never_called_is_not_captured():
    site = CallSite("d", nn.Conv2d(3, 1, 3))
    assert site.capture(stand_in_graphs()) is False and not site.captured


def test_cloned_outputs_survive_the_next_replay():
    net = nn.Conv2d(3, 2, 3, padding=1)
    sites = {clone: CallSite("t", net, clone_outputs=clone) for clone in (False, True)}
    a, b = torch.randn(1, 3, 6, 6), torch.randn(1, 3, 6, 6)
    with torch.no_grad():
        for site in sites.values():
            site(a)
            site.capture(stand_in_graphs())
            first = site(a)
            kept = first.clone()
            site(b)
            assert site.replays == 2
            assert torch.equal(first, kept) == site.clone_outputs  # without a copy the next replay overwrote it


def test_capture_restores_buffers_and_rng():
    torch.manual_seed(0)
    D = apply_spectral_norm(nn.Sequential(nn.Conv2d(3, 4, 3), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3)))
    sites = CallSites(nn.Identity(), D, None, None)
    x = torch.randn(2, 3, 9, 9)
    sites.calls.d_real(x)
    before = [b.clone() for b in D.buffers()]
    rng = torch.get_rng_state()
    assert sites.pending
    assert sites.capture(stand_in_graphs()) == ["d_real"]
    assert not sites.pending and sites.capture_seconds is not None
    assert all(torch.equal(a, b) for a, b in zip(before, D.buffers()))
    assert torch.equal(rng, torch.get_rng_state())


# -- the trainer with graphs -------------------------------------------------------------------

def _losses(out_dir):
    return [{k: r[k] for k in LOSS_KEYS if k in r} for r in read_metrics(out_dir / "metrics.jsonl") if r["step"] > 0]


def _tiny(**overrides):
    flat = {"max_steps": 4, "device": "cpu", "num_threads": 1, "eval_every": 2, "sample_every": 4, "checkpoint_every": 4,
            "spectral_norm": True, "spectral_norm_G": True, "target_cache_mb": 0, "precision": "fp32"}
    flat.update(overrides)
    return resolve_config("tiny", flat)


def test_trainer_with_graphs_trains_as_without(tmp_path):
    """Every site captured after step 1 and replayed after; losses, grad norms and weights equal the
    run without graphs bit for bit (spectral norm on in G and D: the capture's warm-up calls would move
    the power iterations on if the buffers were not restored)."""
    plain = Trainer(_tiny(), tmp_path / "plain", progress=False)
    plain.fit()
    captured: list[str] = []
    graphed = Trainer(_tiny(), tmp_path / "graphed", progress=False, graph_maker=stand_in_graphs(captured))
    graphed.fit()
    assert graphed.info["cuda_graphs"] is True and plain.info["cuda_graphs"] is False
    summary = graphed.graphs.summary()
    assert sorted(summary["captured"]) == sorted(["generator", "d_for_g", "d_real", "d_fake", "vgg_fake", "face_fake", "vgg_target", "face_target"])
    assert summary["replays"]["generator"] == 3 and summary["replays"]["d_for_g"] == 3
    assert summary["replays"]["vgg_target"] == 3 * 2  # tiny batch 2, one target frame a call
    assert _losses(plain.out_dir) == _losses(graphed.out_dir)
    for a, b in zip([*plain.G.state_dict().values(), *plain.D.state_dict().values()],
                    [*graphed.G.state_dict().values(), *graphed.D.state_dict().values()]):
        assert torch.equal(a, b)


def test_resumed_run_with_graphs_recaptures_and_continues_the_same_run(tmp_path):
    """Killed after step 3 and resumed, with graphs: the resumed process records and captures again;
    its first step has no D phase (d_every 2), so the D phase's sites are captured a step later.
    Losses and weights equal the uninterrupted run without graphs."""
    plain = Trainer(_tiny(max_steps=6, d_every=2, checkpoint_every=3), tmp_path / "plain", progress=False)
    plain.fit()
    Trainer(_tiny(max_steps=3, d_every=2, checkpoint_every=3), tmp_path / "split", progress=False,
            graph_maker=stand_in_graphs()).fit()
    resumed = Trainer(_tiny(max_steps=6, d_every=2, checkpoint_every=3), tmp_path / "split", progress=False,
                      graph_maker=stand_in_graphs())
    resumed.fit()
    summary = resumed.graphs.summary()
    assert summary["eager_calls"]["generator"] == 1 and summary["replays"]["generator"] == 2  # steps 4-6
    assert summary["eager_calls"]["d_real"] == 1 and summary["replays"]["d_real"] == 0  # D phase at step 5 only
    assert "d_real" in summary["captured"]
    assert _losses(plain.out_dir) == _losses(resumed.out_dir)
    for a, b in zip([*plain.G.state_dict().values(), *plain.D.state_dict().values()],
                    [*resumed.G.state_dict().values(), *resumed.D.state_dict().values()]):
        assert torch.equal(a, b)


def test_trainer_with_graphs_at_bf16(tmp_path):
    """At bf16 a graphed site casts D's weights itself (autocast's cast cache is off with graphs), so
    the gradients of D's two D-phase calls add in fp32 rather than once in bf16: the same losses at
    step 1, and grad norms within bf16's rounding."""
    runs = []
    for maker in (None, stand_in_graphs()):
        trainer = Trainer(_tiny(precision="bf16", max_steps=2), tmp_path / str(len(runs)), progress=False, graph_maker=maker)
        trainer.fit()
        runs.append(_losses(trainer.out_dir))
    plain, graphed = runs
    assert {k: v for k, v in plain[0].items() if not k.startswith("grad_norm")} == \
        {k: v for k, v in graphed[0].items() if not k.startswith("grad_norm")}
    for step in range(2):
        for key in ("grad_norm/G", "grad_norm/D"):
            assert math.isclose(plain[step][key], graphed[step][key], rel_tol=1e-2)


def test_trainer_with_graphs_needs_the_cloned_target_features(tmp_path, monkeypatch):
    """The per-frame target features are kept across calls of their site: without copies of the
    replayed outputs every frame of a batch would get the last frame's features."""
    plain = Trainer(_tiny(max_steps=3), tmp_path / "plain", progress=False)
    plain.fit()
    original = CallSite.__init__

    def no_clone(self, name, net, clone_outputs=False):
        original(self, name, net, clone_outputs=False)

    monkeypatch.setattr(CallSite, "__init__", no_clone)
    broken = Trainer(_tiny(max_steps=3), tmp_path / "broken", progress=False, graph_maker=stand_in_graphs())
    broken.fit()
    got, want = _losses(broken.out_dir), _losses(plain.out_dir)
    assert got[0] == want[0]  # step 1 is eager
    assert got[1]["loss/G_tsf"] != want[1]["loss/G_tsf"]


def test_a_failed_capture_leaves_its_site_eager(tmp_path):
    """A site whose capture raises runs eagerly for the rest of the run (warned, recorded in
    run_info); the others replay, and the run trains as without graphs."""
    plain = Trainer(_tiny(max_steps=3), tmp_path / "plain", progress=False)
    plain.fit()
    make = stand_in_graphs()

    def failing(module, sample):
        if isinstance(module.net, nn.Module) and module.net is failing.D and sample[0].requires_grad:
            raise RuntimeError("operation not permitted when stream is capturing\nmore")
        return make(module, sample)

    trainer = Trainer(_tiny(max_steps=3), tmp_path / "graphed", progress=False, graph_maker=failing)
    trainer.prepare()
    failing.D = trainer.D
    with pytest.warns(UserWarning, match="capture of d_for_g failed"):
        trainer.fit()
    summary = json.loads((trainer.out_dir / "run_info.json").read_text())["cuda_graph_sites"]
    assert summary["capture_failures"] == {"d_for_g": "RuntimeError: operation not permitted when stream is capturing"}
    assert "d_for_g" not in summary["captured"] and "generator" in summary["captured"]
    assert summary["eager_calls"]["d_for_g"] == 3 and summary["replays"]["d_real"] == 2
    assert _losses(trainer.out_dir) == _losses(plain.out_dir)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_cuda_graphs_train_as_eager_on_cuda(tmp_path, precision):
    """The real capture: every site captured and replayed, and the first replayed step (step 2) gives
    the losses of the run without graphs. Later steps are not compared: on CUDA two eager runs already
    drift apart (atomics in grid_sample's backward), as benchmarks/graphs_agreement.py measures."""
    runs = {}
    for graphs in ("off", "on"):
        cfg = _tiny(device="cuda", precision=precision, cuda_graphs=graphs, max_steps=3, spectral_norm=False, spectral_norm_G=False)
        trainer = Trainer(cfg, tmp_path / graphs, progress=False)
        trainer.fit()
        runs[graphs] = (_losses(trainer.out_dir), trainer)
    on = runs["on"][1]
    assert on.info["cuda_graphs"] is True and on.graphs.summary()["capture_failures"] == {}
    assert sorted(on.graphs.captured) == sorted(["generator", "d_for_g", "d_real", "d_fake", "vgg_fake", "face_fake", "vgg_target", "face_target"])
    assert on.graphs.summary()["replays"]["generator"] == 2
    tolerance = 2e-2 if precision == "bf16" else 1e-3
    for a, b in zip(runs["off"][0][:2], runs["on"][0][:2]):
        for key in a:
            assert math.isclose(a[key], b[key], rel_tol=tolerance, abs_tol=1e-4), (key, a[key], b[key])
