"""Trainer building blocks: LR schedule, divergence guard, checkpoints, metrics log, SSIM/PSNR, grids, progress."""

import io
import json
import math
import random

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lwgan.errors import LossDivergedError
from lwgan.train.callbacks import Callback, CallbackList, TrainResult
from lwgan.train.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from lwgan.train.guard import check_losses
from lwgan.train.image_metrics import lpips_distance, psnr, ssim
from lwgan.train.metrics_log import MetricsWriter, read_metrics
from lwgan.train.progress import Progress, format_eta, format_line
from lwgan.train.samples import grid_image, save_grid, stack_vertically
from lwgan.train.schedule import iters_per_epoch, lr_at, total_steps


# --- schedule -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "epoch, expected",
    [(0, 2e-4), (5, 2e-4), (6, 2e-4 - 1 * (2e-4 - 2e-6) / 25), (17, 2e-4 - 12 * (2e-4 - 2e-6) / 25),
     (29, 2e-4 - 24 * (2e-4 - 2e-6) / 25), (30, 2e-6), (100, 2e-6)],
)
def test_lr_schedule_reference_script(epoch, expected):
    assert lr_at(epoch, 2e-4, 2e-6, 5, 25) == pytest.approx(expected, rel=1e-12)


def test_lr_schedule_is_linear_and_monotone():
    lrs = [lr_at(e, 1e-3, 1e-5, 2, 15) for e in range(25)]
    assert lrs[:3] == [1e-3] * 3
    steps = np.diff(lrs[2:18])
    assert np.allclose(steps, -(1e-3 - 1e-5) / 15)
    assert lrs[17:] == [1e-5] * 8
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_lr_schedule_edge_cases():
    assert lr_at(0, 1e-3, 0.0, 0, 1) == 1e-3 and lr_at(1, 1e-3, 0.0, 0, 1) == 0.0
    assert lr_at(3, 1e-3, 1e-5, 3, 0) == 1e-3 and lr_at(4, 1e-3, 1e-5, 3, 0) == 1e-5
    with pytest.raises(ValueError):
        lr_at(-1, 1e-3, 1e-5, 3, 2)


def test_epoch_length_and_run_length():
    assert iters_per_epoch(10, 999, 4) == 10
    assert iters_per_epoch(None, 83, 8) == 10
    assert iters_per_epoch(None, 3, 8) == 1
    assert total_steps(None, 30, 10) == 300 and total_steps(7, 30, 10) == 7


# --- guard ----------------------------------------------------------------------------
def test_guard_names_the_metric_and_step():
    check_losses(3, {"loss/G_total": 1.0, "D/real_mean": float("nan")}, 1e6)  # only loss/* is guarded
    with pytest.raises(LossDivergedError) as err:
        check_losses(7, {"loss/G_total": 1.0, "loss/D_real": float("inf")}, 1e6)
    assert (err.value.step, err.value.metric) == (7, "loss/D_real")
    with pytest.raises(LossDivergedError, match="loss/G_rec"):
        check_losses(1, {"loss/G_rec": -2e6}, 1e6)


# --- callbacks ------------------------------------------------------------------------
def test_callback_list_calls_only_present_hooks():
    seen = []

    class Partial:
        def on_metrics(self, step, metrics):
            seen.append((step, metrics["loss/G_total"]))

    class Full(Callback):
        def on_end(self, result):
            seen.append(result.status)

    cbs = CallbackList([Partial(), Full()])
    cbs.on_start({})
    cbs.on_metrics(4, {"loss/G_total": 2.5})
    cbs.on_end(TrainResult("completed", 4))
    assert seen == [(4, 2.5), "completed"]


# --- checkpoints ----------------------------------------------------------------------
def test_checkpoint_round_trip_with_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    torch.manual_seed(5), np.random.seed(6), random.seed(7)
    rng = capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    path = save_checkpoint(tmp_path / "ck" / "last.pt", {"G": model.state_dict(), "opt": opt.state_dict(), "step": 12, "rng": rng})
    assert not list((tmp_path / "ck").glob(".*tmp*"))
    loaded = load_checkpoint(path)
    assert loaded["step"] == 12
    assert torch.equal(loaded["G"]["weight"], model.weight)
    opt2 = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=1e-3)
    opt2.load_state_dict(loaded["opt"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    restore_rng_state(loaded["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_checkpoint_failed_write_keeps_previous(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pt", {"step": 1})

    def boom(obj, f):
        open(f, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(path, {"step": 2})
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


# --- metrics.jsonl --------------------------------------------------------------------
def test_metrics_writer_appends_and_truncates_for_resume(tmp_path):
    w = MetricsWriter(tmp_path / "metrics.jsonl")
    for s in range(1, 6):
        w.write(s, {"loss/G_total": torch.tensor(float(s)), "lr/G": 1e-3})
    w.close()
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 6, "loss/G_')  # a line cut by a crash
    assert MetricsWriter(tmp_path / "metrics.jsonl").truncate_after(3) == 3
    w = MetricsWriter(tmp_path / "metrics.jsonl")
    w.write(4, {"loss/G_total": float("nan")})
    w.close()
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[0] == {"step": 1, "loss/G_total": 1.0, "lr/G": 1e-3}
    assert math.isnan(rows[3]["loss/G_total"])


# --- image metrics --------------------------------------------------------------------
def test_ssim_matches_skimage_on_random_images():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 40, 48, generator=gen) * 2 - 1
    y = (x + 0.3 * torch.randn(3, 3, 40, 48, generator=gen)).clamp(-1, 1)
    ours = ssim(x, y, data_range=2.0)
    for i in range(3):
        ref = structural_similarity(
            x[i].permute(1, 2, 0).numpy(), y[i].permute(1, 2, 0).numpy(), data_range=2.0, channel_axis=2,
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        )
        assert ours[i].item() == pytest.approx(ref, abs=1e-5)
    assert torch.allclose(ssim(x, x), torch.ones(3))
    assert (ours < 0.9).all()


def test_psnr_matches_skimage_and_identity_is_infinite():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 16, 16, generator=gen) * 2 - 1
    y = (x + 0.1 * torch.randn(2, 3, 16, 16, generator=gen)).clamp(-1, 1)
    ref = peak_signal_noise_ratio(x[0].numpy(), y[0].numpy(), data_range=2.0)
    assert psnr(x, y)[0].item() == pytest.approx(ref, rel=1e-5)
    assert torch.isinf(psnr(x, x)).all()


def test_ssim_rejects_small_or_mismatched_images():
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="one shape"):
        ssim(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 17))


def test_lpips_distance_is_zero_for_equal_features_and_weighted():
    f = [torch.randn(2, 4, 5, 5), torch.randn(2, 8, 3, 3)]
    g = [t + 0.5 * torch.randn_like(t) for t in f]
    w = [torch.ones(1, 4, 1, 1), torch.ones(1, 8, 1, 1)]
    assert torch.allclose(lpips_distance(f, f, w), torch.zeros(2))
    d = lpips_distance(f, g, w)
    assert (d > 0).all()
    assert torch.allclose(lpips_distance(f, g, [2 * t for t in w]), 2 * d)


# --- sample grids and progress --------------------------------------------------------
def test_grid_layout_and_pixels(tmp_path):
    cols = [torch.full((2, 3, 16, 20), v) for v in (-1.0, -0.5, 0.0, 0.5, 1.0)]
    path = save_grid(tmp_path / "s" / "g.png", cols, min_tile=20)
    im = np.asarray(Image.open(path))
    assert im.shape == (14 + 2 * 16 + 2, 5 * 20 + 4 * 2, 3)
    assert (im[14:30, 0:20] == 0).all() and (im[14:30, 88:108] == 255).all()
    assert (im[14:30, 44:64] == 128).all()
    assert (im[:14] < 128).any()  # header text is drawn
    stacked = stack_vertically([path, path], tmp_path / "both.png")
    assert np.asarray(Image.open(stacked)).shape[0] == 2 * im.shape[0] + 6
    with pytest.raises(ValueError):
        grid_image(cols[:2])
    big = np.asarray(grid_image(cols, min_tile=50))  # 20 px tiles enlarged 3x, nearest neighbour
    assert big.shape == (14 + 2 * 48 + 2, 5 * 60 + 4 * 2, 3)
    assert (big[14:62, 0:60] == 0).all() and (big[14:62, 248:308] == 255).all()


def test_progress_line_and_non_tty_cadence():
    line = format_line(10, 100, 1, {"loss/G_total": 3.14159, "loss/D_total": 0.5}, 2.0)
    assert line.startswith("step 10/100 | epoch 1 | G 3.142 | D 0.5")
    assert line.endswith("2.00 it/s | ETA 00:45")
    assert format_eta(3725) == "1:02:05"
    buf = io.StringIO()
    p = Progress(total=10, stream=buf, every=4)
    for s in range(1, 11):
        p.update(s, 0, {"loss/G_total": 1.0}, 1.0)
    assert [ln.split(" |")[0] for ln in buf.getvalue().splitlines()] == ["step 4/10", "step 8/10", "step 10/10"]
    silent = io.StringIO()
    Progress(total=10, enabled=False, stream=silent).update(1, 0, {}, 1.0)
    assert silent.getvalue() == ""


# --- pair stream ----------------------------------------------------------------------
class _StubDataset:
    video_lengths = (20, 30, 12)
    source_frames = 15

    def __len__(self):
        return 6

    def item(self, video, source, target):
        return {"video": video, "source": source, "target": target}


def test_pair_stream_is_a_pure_function_of_seed_and_sample():
    from lwgan.train.pair_stream import PairStream, batches

    a, b, c = PairStream(_StubDataset(), 3), PairStream(_StubDataset(), 3), PairStream(_StubDataset(), 4)
    first = [a[n] for n in range(18)]
    assert first == [b[n] for n in range(18)]
    assert first != [c[n] for n in range(18)]
    for p in range(3):  # each pass visits every item index of that pass exactly once
        assert sorted(a.global_index(n) for n in range(6 * p, 6 * p + 6)) == list(range(6 * p, 6 * p + 6))
    assert first[:6] != first[6:12]  # a new pass draws new pairs
    assert all(s["source"] < 15 and s["target"] < _StubDataset.video_lengths[s["video"]] for s in first)
    resumed = [x for batch in batches(a, 4, 8, 8) for x in zip(batch["video"].tolist(), batch["source"].tolist())]
    assert resumed == [(s["video"], s["source"]) for s in first[8:16]]


def test_lpips_weights_loading_checks_keys_and_shapes(tmp_path):
    from lwgan.errors import DataError
    from lwgan.train.image_metrics import load_lpips_weights

    good = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((4, 8))}
    torch.save(good, tmp_path / "vgg.pth")
    loaded = load_lpips_weights(str(tmp_path / "vgg.pth"), (4, 8))
    assert [tuple(w.shape) for w in loaded] == [(1, 4, 1, 1), (1, 8, 1, 1)]
    with pytest.raises(DataError, match=r"lin1.model.1.weight has shape \(1, 8, 1, 1\), expected \(1, 9, 1, 1\)"):
        load_lpips_weights(str(tmp_path / "vgg.pth"), (4, 9))
    with pytest.raises(DataError, match="lack 'lin2.model.1.weight'"):
        load_lpips_weights(str(tmp_path / "vgg.pth"), (4, 8, 16))
    with pytest.raises(DataError, match="cannot read LPIPS weights"):
        load_lpips_weights(str(tmp_path / "missing.pth"), (4,))


def test_lpips_module_scales_inputs_and_sums_layers():
    from lwgan.quality import LPIPSMetric
    from lwgan.train.image_metrics import LPIPS_SCALE, LPIPS_SHIFT

    seen = []

    class Features(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unit = torch.nn.Parameter(torch.ones(()))

        def forward(self, x):
            seen.append(x)
            return [x * self.unit, x[:, :1]]

    metric = LPIPSMetric(Features(), [torch.ones(1, 3, 1, 1), torch.ones(1, 1, 1, 1)])
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    assert torch.allclose(metric(x, x), torch.zeros(2))
    shift = torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1)
    scale = torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1)
    assert torch.allclose(seen[0], (x - shift) / scale)
    y = torch.rand(2, 3, 8, 8) * 2 - 1
    assert (metric(x, y) > 0).all()


def test_grad_norm_is_the_norm_of_all_gradients_together():
    import torch

    from lwgan.train.trainer import grad_norm_tensor

    def grad_norm(module):
        return float(grad_norm_tensor(module))

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Linear(7, 3), torch.nn.Linear(3, 2))
    assert grad_norm(net) == 0.0  # no gradients yet
    net[2].weight.requires_grad_(False)  # a frozen parameter has no grad and is left out
    net(torch.randn(4, 5)).pow(2).sum().backward()
    expected = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None]).norm()
    assert grad_norm(net) == pytest.approx(float(expected), rel=1e-6)
    half = torch.nn.Linear(5, 7).to(torch.bfloat16)  # bf16 gradients are summed in float32
    half(torch.randn(4, 5, dtype=torch.bfloat16)).float().pow(2).sum().backward()
    expected = torch.cat([p.grad.float().flatten() for p in half.parameters()]).norm()
    assert grad_norm(half) == pytest.approx(float(expected), rel=1e-6)
