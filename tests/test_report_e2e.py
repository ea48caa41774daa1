"""Report end to end: a temp MLflow store filled by hand with the documented schema (3 variants x 3
seeds of 50 steps, sample grids, one diverged and one failed run) -> Markdown + PDF."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

STEPS = 50
SEEDS = (0, 1, 2)
VARIANTS = {  # name -> (config changes, factor on the G losses)
    "baseline": ({}, 1.0),
    "gp10": ({"gp_weight": 10.0}, 0.8),
    "ttur": ({"lr_G": 1e-4, "lr_D": 4e-4}, 1.0),
}
G_TERMS = {"loss/G_adv": 0.5, "loss/G_rec": 0.3, "loss/G_tsf": 2.0, "loss/G_style": 0.05, "loss/G_face": 1.5,
           "loss/G_mask": 0.4, "loss/G_mask_smooth": 0.02}


def _curves(seed: int, factor: float, steps: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = np.arange(1, steps + 1)
    decay = 1.0 + np.exp(-t / 12.0)
    out = {}
    for key, level in G_TERMS.items():
        out[key] = level * factor * decay * (1 + 0.03 * rng.standard_normal(steps))
    out["loss/G_total"] = sum(out[k] * w for k, w in zip(G_TERMS, (1, 10, 10, 5, 5, 1, 1)))
    d_wave = 0.1 * np.sin(t / 2.0 + seed)
    out["loss/D_real"] = 0.5 + d_wave + 0.02 * rng.standard_normal(steps)
    out["loss/D_fake"] = 0.5 - d_wave + 0.02 * rng.standard_normal(steps)
    out["loss/D_gp"] = np.zeros(steps)
    out["loss/D_total"] = out["loss/D_real"] + out["loss/D_fake"]
    out["D/real_mean"] = 0.4 + 0.1 * np.tanh(t / 20)
    out["D/fake_mean"] = -0.4 + 0.1 * np.tanh(t / 20)
    out["lr/G"] = np.full(steps, 2e-4) * np.linspace(1, 0.1, steps)
    out["lr/D"] = np.full(steps, 2e-4) * np.linspace(1, 0.1, steps)
    return out


def _sample_png(path: Path, shade: int) -> Path:
    from PIL import Image

    grid = np.zeros((2 * 32, 5 * 32, 3), np.uint8)
    for col in range(5):
        grid[:, col * 32:(col + 1) * 32] = (shade, 40 * col, 255 - shade)
    Image.fromarray(grid).save(path)
    return path


def fill_store(root: Path) -> tuple[str, str]:
    """A study 'ablation' in sqlite:///root/mlruns.db; returns (tracking uri, parent run id)."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from lwgan.profiles import resolve_config

    uri = f"sqlite:///{root / 'mlruns.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("lwgan-study", artifact_location=(root / "artifacts").as_uri())
    study_yaml = root / "study.yaml"
    study_yaml.write_text("name: ablation\nvariants:\n  gp10: {gp_weight: 10}\n  ttur: {lr_G: 1.0e-4, lr_D: 4.0e-4}\n")
    parent = client.create_run(exp, run_name="ablation", tags={
        "lwgan.role": "study", "lwgan.study": "ablation", "lwgan.profile": "tiny", "lwgan.git_commit": "abc1234",
        "lwgan.versions": json.dumps({"torch": "2.13.0", "mlflow": "3.17.2"}), "lwgan.dataset_kind": "synthetic",
        "lwgan.body_model_kind": "generated", "lwgan.study_file": str(study_yaml),
    })
    pid = parent.info.run_id
    client.log_artifact(pid, str(study_yaml))
    trials = [(v, s, "completed") for v in VARIANTS for s in SEEDS] + [("ttur", 3, "diverged"), ("gp10", 3, "failed")]
    for i, (variant, seed, status) in enumerate(trials):
        changes, factor = VARIANTS[variant]
        cfg = resolve_config("tiny", {**changes, "seed": seed, "max_steps": STEPS})
        tags = {
            "mlflow.parentRunId": pid, "lwgan.role": "trial", "lwgan.trial_id": f"t{i:03d}", "lwgan.variant": variant,
            "lwgan.seed": str(seed), "lwgan.status": status,
            "lwgan.backbone_status": json.dumps({"vgg19": "stand-in", "sphereface20": "stand-in"}),
            "lwgan.body_model": "generated", "lwgan.dataset": "synthetic:/cache/synth", "lwgan.device": "cpu",
            "lwgan.precision": "bf16 (CPU with avx512_bf16)",
        }
        steps = STEPS
        if status == "diverged":
            tags.update({"lwgan.diverged_step": "30", "lwgan.error": "diverged at step 30: loss/G_total = nan"})
            steps = 30
        if status == "failed":
            tags["lwgan.error"] = "RuntimeError: out of memory while allocating the generator"
            steps = 5
        run = client.create_run(exp, run_name=f"{variant}-s{seed}", tags=tags)
        rid = run.info.run_id
        params = {k: str(v) for k, v in cfg.to_flat().items()}
        params.update(variant=variant, seed=str(seed))
        from mlflow.entities import Param

        client.log_batch(rid, params=[Param(k, v) for k, v in params.items()])
        rng = np.random.default_rng(100 * i + seed)
        curves = _curves(seed, factor, steps, rng)
        if status == "diverged":
            curves["loss/G_total"][-1] = math.nan
        metrics = [Metric(k, float(v), 0, step + 1) for k, vals in curves.items() for step, v in enumerate(vals)]
        metrics += [Metric("eval/ssim", 0.6 + 0.01 * seed + (0.05 if variant == "gp10" else 0), 0, s) for s in (25, 50) if s <= steps]
        metrics += [Metric("eval/psnr", 18.0 + 0.2 * seed, 0, s) for s in (25, 50) if s <= steps]
        for start in range(0, len(metrics), 900):
            client.log_batch(rid, metrics=metrics[start:start + 900])
        if status != "failed":
            (root / f"run{i}").mkdir()
            client.log_artifact(rid, str(_sample_png(root / f"run{i}" / "final.png", 60 * list(VARIANTS).index(variant))), "samples")
        client.set_terminated(rid, "FINISHED" if status == "completed" else "FAILED")
    client.set_terminated(pid, "FINISHED")
    return uri, pid


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    uri, parent_id = fill_store(root)
    from lwgan.report.builder import build_report

    out = root / "report"
    written = build_report("ablation", out, tracking_uri=uri)
    return {"root": root, "uri": uri, "parent": parent_id, "out": out, "written": written}


def _section(md: str, title: str) -> str:
    start = md.index(f"## {title}")
    nxt = md.find("\n## ", start + 1)
    return md[start: nxt if nxt > 0 else len(md)]


def test_report_files_and_relative_links(study):
    out = study["out"]
    assert study["written"] == [out / "report.md", out / "report.pdf"]
    md = (out / "report.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", md)
    assert len(links) >= 8
    for link in links:
        assert not link.startswith("/") and (out / link).is_file(), link
    assert {"figures/curves_G.png", "figures/curves_D.png", "figures/d_outputs.png", "figures/learning_rates.png",
            "figures/stability.png", "figures/d_gap.png", "figures/samples_1.png"} <= set(links)
    assert {"samples/baseline_seed0.png", "samples/gp10_seed0.png", "samples/ttur_seed0.png"} <= set(links)
    for name in ("runs.csv", "final_values.csv", "comparison.csv", "stability.csv"):
        assert (out / "data" / name).is_file()
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings == ["## Design", "## Run accounting", "## Results: deltas against the baseline", "## Training curves",
                        "## Stability", "## Samples", "## Findings"]


def test_report_tables_show_planted_effects(study):
    md = (study["out"] / "report.md").read_text()
    table1 = md[md.index("*Table 1 layout"): md.index("*Other generator loss terms")]
    rows = {line.split("|")[1].strip(): line for line in table1.splitlines() if line.startswith("| ")}
    assert list(rows) == ["Exp", "---", "baseline", "gp10", "ttur"]
    gp = [c.strip() for c in rows["gp10"].split("|")[1:-1]]
    assert gp[:6] == ["gp10", "\u2013", "10", "(2e-4, 2e-4, 2e-6)", "\u2013", "\u2013"]
    assert all(c.startswith("**-") and c.endswith("\u2020") for c in gp[6:9])  # 20% lower, 3 seeds: marked
    face = float(re.match(r"\*\*(-?[\d.]+)%", gp[6]).group(1))
    assert -24 < face < -16
    ttur = [c.strip() for c in rows["ttur"].split("|")[1:-1]]
    assert ttur[3] == "(1e-4, 4e-4, 2e-6)" and not any("\u2020" in c for c in ttur[6:9])
    assert "| baseline | \u2013 | \u2013 | (2e-4, 2e-4, 2e-6) | reference | \u2013 |" in md


def test_report_accounts_for_failures_and_stand_ins(study):
    md = (study["out"] / "report.md").read_text()
    acc = _section(md, "Run accounting")
    assert "| gp10 | 4 | 3 | 0 | 1 (seed 3) | 0 | 0 |" in acc
    assert "| ttur | 4 | 3 | 1 (seed 3 @ step 30) | 0 | 0 | 0 |" in acc
    assert "RuntimeError: out of memory while allocating the generator" in acc
    assert "excluded from every statistic" in acc
    design = _section(md, "Design")
    assert "**VGG19: untrained stand-in \u2014 perceptual losses are not comparable with the paper.**" in design
    assert "abc1234" in design and "torch 2.13.0" in design and "Profile: tiny" in design
    assert "Precision: bf16 (CPU with avx512_bf16)" in design
    assert "gp_weight: 0 \u2192 10" in design
    findings = _section(md, "Findings")
    assert "**gp10** differs from the baseline" in findings and "No metric of ttur differs" in findings
    assert "Final window: the value of a metric is its mean over the last 20%" in md


def test_report_pdf_pages_render(study, tmp_path):
    from lwgan.report.pdf import page_count

    pdf = study["out"] / "report.pdf"
    assert pdf.read_bytes().startswith(b"%PDF") and page_count(pdf) >= 5
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    from PIL import Image

    for page in (1, 2):
        subprocess.run(["pdftoppm", "-r", "40", "-png", "-f", str(page), "-l", str(page), str(pdf), str(tmp_path / f"p{page}")],
                       check=True, capture_output=True)
        png = next(tmp_path.glob(f"p{page}*.png"))
        pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
        assert pixels.shape[0] > pixels.shape[1] > 300  # A4 portrait
        assert (pixels < 128).mean() > 0.01  # text and table rules, not a blank page


def test_study_can_be_named_by_yaml_or_parent_run_id(study, tmp_path):
    from lwgan.report.collect import find_parent_run, make_client

    client = make_client(study["uri"])
    yaml_path = tmp_path / "ablation.yaml"
    yaml_path.write_text("name: ablation\nseeds: 3\n")
    for ref in (str(yaml_path), "ablation", study["parent"]):
        assert find_parent_run(client, ref).info.run_id == study["parent"]
    # A newer parent run of the same study wins (a rerun without --resume).
    newer = client.create_run("1", run_name="ablation", tags={"lwgan.role": "study", "lwgan.study": "ablation"})
    try:
        assert find_parent_run(client, "ablation").info.run_id == newer.info.run_id
    finally:
        client.delete_run(newer.info.run_id)


def test_unknown_study_and_bad_inputs_are_user_errors(study, tmp_path):
    from lwgan.errors import UserError
    from lwgan.report.builder import build_report

    with pytest.raises(UserError, match=r"no study named 'nope'.*studies in this store: ablation"):
        build_report("nope", tmp_path, tracking_uri=study["uri"])
    with pytest.raises(UserError, match="study file not found: .*missing.yaml"):
        build_report(str(tmp_path / "missing.yaml"), tmp_path, tracking_uri=study["uri"])
    (tmp_path / "noname.yaml").write_text("seeds: 2\n")
    with pytest.raises(UserError, match="has no 'name:' key"):
        build_report(str(tmp_path / "noname.yaml"), tmp_path, tracking_uri=study["uri"])
    with pytest.raises(UserError, match=r"no MLflow store at sqlite:///.*nowhere.db \(looking for study 'ablation'\)"):
        build_report("ablation", tmp_path, tracking_uri=f"sqlite:///{tmp_path / 'nowhere.db'}")
    assert not (tmp_path / "nowhere.db").exists()
    with pytest.raises(UserError, match="unknown report format 'html'.*md, pdf"):
        build_report("ablation", tmp_path, formats="md,html", tracking_uri=study["uri"])
    from mlflow.tracking import MlflowClient

    child = MlflowClient(study["uri"]).search_runs(["1"], "tags.`lwgan.role` = 'trial'", max_results=1)[0]
    with pytest.raises(UserError, match="is not a study parent run"):
        build_report(child.info.run_id, tmp_path, tracking_uri=study["uri"])


def test_cli_report_uses_the_environment_store(study, tmp_path, monkeypatch, capsys):
    from lwgan.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", study["uri"])
    assert main(["report", "ablation", "--out", str(tmp_path / "cli"), "--format", "md"]) == 0
    assert "wrote" in capsys.readouterr().out and (tmp_path / "cli" / "report.md").is_file()
    assert main(["report", "missing-study", "--out", str(tmp_path / "x")]) == 2
    assert "no study named 'missing-study'" in capsys.readouterr().err


def test_tracking_uri_precedence(monkeypatch, tmp_path):
    from lwgan.report.collect import resolve_tracking_uri

    assert resolve_tracking_uri("sqlite:////x/y.db") == "sqlite:////x/y.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////env/store.db")
    assert resolve_tracking_uri(None) == "sqlite:////env/store.db"  # lwgan.tracking reads the env first


def test_report_package_never_imports_ray():
    import sys

    code = (
        "import sys, lwgan.report.builder, lwgan.report.collect, lwgan.report.sections, lwgan.report.pdf, "
        "lwgan.report.markdown, lwgan.report.commands\n"
        "from lwgan.report.collect import resolve_tracking_uri\nresolve_tracking_uri()\n"
        "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'ray imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
