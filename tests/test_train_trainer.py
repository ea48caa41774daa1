"""The Trainer end to end on the tiny profile: outputs, determinism, resume, divergence, callbacks, D gating, LR decay."""

import json

import numpy as np
import pytest
import torch
import yaml

from lwgan.profiles import resolve_config
from lwgan.train.callbacks import Callback
from lwgan.train.checkpoint import load_checkpoint
from lwgan.train.metrics_log import read_metrics
from lwgan.train.samples import FINAL_OUTPUTS, OUTPUT_IMAGES
from lwgan.train.trainer import Trainer, checkpoint_path

LOSS_KEYS = ("loss/G_adv", "loss/G_rec", "loss/G_tsf", "loss/G_style", "loss/G_face", "loss/G_mask",
             "loss/G_mask_smooth", "loss/G_total", "loss/D_real", "loss/D_fake", "loss/D_gp", "loss/D_total")
STEP_KEYS = LOSS_KEYS + ("D/real_mean", "D/fake_mean", "lr/G", "lr/D", "grad_norm/G", "grad_norm/D", "perf/it_per_s", "epoch")
EVAL_KEYS = ("eval/ssim", "eval/psnr", "eval/ssim_rec", "eval/psnr_rec")


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    """One synthetic dataset and generated body for the whole module, outside the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LWGAN_CACHE", str(tmp_path_factory.mktemp("lwgan-cache")))
        yield


def tiny(**overrides):
    flat = {"max_steps": 4, "device": "cpu", "num_threads": 1, "eval_every": 2, "sample_every": 2, "checkpoint_every": 2}
    flat.update(overrides)
    return resolve_config("tiny", flat)


def losses_by_step(out_dir):
    return {r["step"]: {k: r[k] for k in LOSS_KEYS if k in r} for r in read_metrics(out_dir / "metrics.jsonl") if r["step"] > 0}


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_start(self, info):
        self.events.append(("start", info["seed"]))

    def on_metrics(self, step, metrics):
        self.events.append(("metrics", step))

    def on_sample(self, step, path):
        self.events.append(("sample", path.name))

    def on_checkpoint(self, step, path):
        self.events.append(("checkpoint", step))

    def on_end(self, result):
        self.events.append(("end", result.status))


def test_fit_writes_every_output(tmp_path):
    rec = Recorder()
    trainer = Trainer(tiny(), tmp_path, callbacks=[rec], progress=False, profile="tiny")
    result = trainer.fit()
    assert (result.status, result.step, result.error) == ("completed", 4, None)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    assert set(EVAL_KEYS) <= set(rows[0]) and set(EVAL_KEYS) <= set(rows[2]) and "eval/ssim" not in rows[1]
    for row in rows[1:]:
        assert set(STEP_KEYS) <= set(row), set(STEP_KEYS) - set(row)
        assert all(torch.isfinite(torch.tensor(float(row[k]))) for k in LOSS_KEYS)
    assert set(result.metrics) >= set(STEP_KEYS) | set(EVAL_KEYS)
    assert -1 <= result.metrics["eval/ssim"] <= 1 and result.metrics["eval/psnr"] > 0

    info = json.loads((tmp_path / "run_info.json").read_text())
    assert info["profile"] == "tiny" and info["seed"] == 0 and info["device"] == "cpu"
    assert info["dataset"]["kind"] == "synthetic" and info["body_model"]["kind"] == "generated"
    assert {b["name"]: b["status"] for b in info["backbones"]} == {
        "vgg19": "stand-in", "sphereface20": "stand-in", "lpips": "absent", "inception_v3": "absent"}
    # without their weights the literature metrics are absent (never a stand-in number), and run_info says why
    assert set(info["quality_metrics"]) == {"eval/lpips", "eval/fid", "eval/kid"}
    assert all("absent" in note for note in info["quality_metrics"].values())
    assert not {"eval/lpips", "eval/fid", "eval/kid"} & {k for row in rows for k in row}
    assert info["parameters"]["G"] > info["parameters"]["D"] > 0
    assert "torch" in info["versions"] and info["config"]["image_size"] == 32
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == tiny().to_flat()

    names = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert names == ["final.png", "final_outputs.npz", "step_000000.png", "step_000002.png", "step_000004.png"]
    with np.load(tmp_path / FINAL_OUTPUTS) as outputs:
        assert int(outputs["step"]) == 4
        for name in OUTPUT_IMAGES:  # the 2 fixed val pairs of the tiny profile at 32 px
            assert outputs[name].shape == (2, 32, 32, 3) and outputs[name].dtype == np.uint8
        # per-pair scores of the last outputs average to the logged final eval metrics
        assert float(outputs["ssim"].mean()) == pytest.approx(rows[-1]["eval/ssim"], abs=1e-5)
        assert float(outputs["psnr_rec"].mean()) == pytest.approx(rows[-1]["eval/psnr_rec"], abs=1e-4)
        # the last step's outputs are reused as the final ones: the same as G gives now
        trainer.write_outputs(tmp_path / "again.npz", 4)
        with np.load(tmp_path / "again.npz") as again:
            assert all(np.array_equal(outputs[name], again[name]) for name in OUTPUT_IMAGES)
    ck = load_checkpoint(checkpoint_path(tmp_path))
    assert ck["step"] == 4 and ck["sampler"]["samples_drawn"] == 4 * 2
    assert set(ck) >= {"G", "D", "opt_G", "opt_D", "rng", "epoch", "config"}

    kinds = [e[0] for e in rec.events]
    assert kinds[0] == "start" and kinds[-1] == "end" and rec.events[-1] == ("end", "completed")
    assert [e[1] for e in rec.events if e[0] == "metrics"] == [0, 1, 2, 3, 4]
    assert [e[1] for e in rec.events if e[0] == "checkpoint"] == [2, 4]
    assert ("sample", "final.png") in rec.events


def test_same_seed_same_losses_other_seed_differs(tmp_path):
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        Trainer(tiny(max_steps=2, seed=seed), tmp_path / name, progress=False).fit()
        runs[name] = losses_by_step(tmp_path / name)
    assert runs["a"] == runs["b"]
    assert runs["a"][1]["loss/G_total"] != runs["c"][1]["loss/G_total"]


def test_resume_continues_the_same_run(tmp_path):
    full = Trainer(tiny(), tmp_path / "full", progress=False).fit()
    Trainer(tiny(max_steps=2), tmp_path / "split", progress=False).fit()
    resumed = Trainer(tiny(), tmp_path / "split", progress=False).fit()
    assert resumed.step == full.step == 4
    a, b = losses_by_step(tmp_path / "full"), losses_by_step(tmp_path / "split")
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]  # no step duplicated or lost
    for step in a:
        for key, value in a[step].items():
            assert b[step][key] == pytest.approx(value, rel=1e-6, abs=1e-6), (step, key)
    ca, cb = load_checkpoint(checkpoint_path(tmp_path / "full")), load_checkpoint(checkpoint_path(tmp_path / "split"))
    for part in ("G", "D"):
        for name, tensor in ca[part].items():
            assert torch.equal(tensor, cb[part][name]), (part, name)
    info = json.loads((tmp_path / "split" / "run_info.json").read_text())
    assert info["resumed_from_step"] == 2


def test_resume_refuses_a_changed_method(tmp_path):
    Trainer(tiny(max_steps=2), tmp_path, progress=False).fit()
    with pytest.raises(Exception, match=r"lr_G: 0.0002 -> 0.001"):
        Trainer(tiny(lr_G=1e-3), tmp_path, progress=False).fit()


def test_divergence_ends_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    Trainer(tiny(max_steps=2), tmp_path, progress=False).fit()
    good = load_checkpoint(checkpoint_path(tmp_path))
    rec = Recorder()
    result = Trainer(tiny(divergence_threshold=1e-3, checkpoint_every=1), tmp_path, callbacks=[rec], progress=False).fit()
    assert result.status == "diverged" and result.step == 3
    assert "diverged at step 3: loss/" in result.error
    kept = load_checkpoint(checkpoint_path(tmp_path))
    assert kept["step"] == 2
    assert all(torch.equal(t, kept["G"][k]) for k, t in good["G"].items())
    assert rec.events[-1] == ("end", "diverged") and ("checkpoint", 3) not in rec.events
    assert read_metrics(tmp_path / "metrics.jsonl")[-1]["step"] == 3


def test_d_every_gates_the_discriminator_and_lr_decays_per_epoch(tmp_path):
    # tiny: 2 iterations per epoch, 1 constant epoch then 2 decay epochs.
    Trainer(tiny(max_steps=6, d_every=2, lr_final=0.0, eval_every=100, sample_every=100, checkpoint_every=100), tmp_path, progress=False).fit()
    rows = {r["step"]: r for r in read_metrics(tmp_path / "metrics.jsonl")}
    assert [s for s in range(1, 7) if "loss/D_total" in rows[s]] == [1, 3, 5]
    assert [rows[s]["lr/G"] for s in range(1, 7)] == pytest.approx([2e-4, 2e-4, 2e-4, 2e-4, 1e-4, 1e-4])
    assert [rows[s]["epoch"] for s in range(1, 7)] == [0, 0, 1, 1, 2, 2]


def test_train_command_end_to_end(tmp_path, capsys):
    import argparse

    from lwgan.train.commands import command_train

    out = tmp_path / "run"
    args = argparse.Namespace(config=None, profile="tiny", steps=2, sets=["num_threads=1", "device=cpu"],
                              out=str(out), resume=False, help_keys=False)
    assert command_train(args) == 0
    printed = capsys.readouterr().out
    assert ("\ntrain | profile tiny | data synthetic | body generated | backbones vgg19 stand-in, sphereface20 stand-in, "
            "lpips absent, inception_v3 absent | device cpu | steps 2\n") in "\n" + printed
    assert "status completed | steps 2" in printed and f"out: {out}" in printed and "eval: ssim" in printed
    args.steps, args.resume = 3, True
    assert command_train(args) == 0
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [0, 1, 2, 3]


@pytest.mark.slow
def test_small_profile_learns(tmp_path):
    """The baseline on the small profile (300 steps on synthetic data) improves self-imitation SSIM."""
    result = Trainer(resolve_config("small", {"device": "cpu"}), tmp_path, progress=False, profile="small").fit()
    assert result.status == "completed" and result.step == 300
    rows = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "eval/ssim" in r]
    first, last = rows[0], rows[-1]
    assert first["step"] == 0 and last["step"] == 300
    # Measured (seed 0, 2 cores): ssim_rec 0.001 -> 0.140, ssim 0.000 -> 0.062, psnr_rec 12.4 -> 14.3 dB.
    assert last["eval/ssim_rec"] > first["eval/ssim_rec"] + 0.08
    assert last["eval/ssim"] > first["eval/ssim"] + 0.03
    assert last["eval/psnr_rec"] > first["eval/psnr_rec"] + 1.0
    assert last["eval/psnr"] > first["eval/psnr"]
    assert (tmp_path / "samples" / "final.png").is_file()


def test_crash_then_resume_drops_metrics_past_the_checkpoint(tmp_path):
    class CrashAt3(Callback):
        def on_metrics(self, step, metrics):
            if step == 3:
                raise RuntimeError("worker lost")

    with pytest.raises(RuntimeError, match="worker lost"):
        Trainer(tiny(), tmp_path, callbacks=[CrashAt3()], progress=False).fit()
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [0, 1, 2, 3]
    assert load_checkpoint(checkpoint_path(tmp_path))["step"] == 2
    result = Trainer(tiny(), tmp_path, progress=False).fit()
    assert result.status == "completed" and result.step == 4
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [0, 1, 2, 3, 4]
