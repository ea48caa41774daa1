"""Research workflow on one tiny real study store (written by lwgan.tracking's StudyTracker into SQLite, read
back through MLflow): the shipped studies and `init`, `ls`, `show`, `compare`, the notebook API and the
CLI's conventions (version, help with defaults and examples, choices, exit codes)."""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from lwgan import api
from lwgan.cli import _build_parser, main
from lwgan.errors import UserError
from lwgan.tracking import StudyTracker, study_run_tags
from lwgan.tracking_commands import ui_command
from lwgan.vocab import Tag

STEPS = 10
SEEDS = (0, 1, 2)
# Per (run, variant): the level of loss/G_total; per (run, variant, seed): a fixed offset, so paired
# differences vary between seeds (a t-test needs a spread).
LEVEL = {("A", "baseline"): 1.0, ("A", "GP2"): 1.1, ("B", "baseline"): 0.8, ("B", "GP2"): 1.4}
OFFSET = {("A", 0): 0.00, ("A", 1): 0.02, ("A", 2): 0.05, ("B", 0): 0.01, ("B", 1): 0.00, ("B", 2): 0.06}
VERDICTS = [{"id": "gp2-total", "verdict": "confirmed", "detail": "L_total GP2 vs baseline +40% [+30, +50]"}]


def loss(run: str, variant: str, seed: int, step: int) -> float:
    return LEVEL[(run, variant)] + OFFSET[(run, seed)] + 0.5 / step + (0.03 if variant == "GP2" else 0.0) * seed


def ssim(run: str, variant: str, seed: int) -> float:
    return 0.3 + 0.01 * seed + (0.05 if variant == "GP2" else 0.0) + (0.1 if run == "B" else 0.0)


@dataclass(frozen=True)
class Store:
    uri: str
    root: Path
    run_a: str
    run_b: str


def _write_run(tracker: StudyTracker, run: str, profile: str, failed: set[tuple[str, int]]) -> str:
    tags = study_run_tags("/s/tiny-ab.yaml", profile, {"data_root": None, "body_model": None}, {"torch": "2.13.0"}, f"commit{run}")
    study_yaml = "name: tiny-ab\nvariants:\n  GP2: {gp_weight: 2}\nobjective: {metric: eval/ssim, mode: max}\n"
    parent = tracker.start_study("tiny-ab", tags, study_yaml)
    counts = {"completed": 0, "diverged": 0, "failed": 0, "pruned": 0}
    for variant in ("baseline", "GP2"):
        for seed in SEEDS:
            trial = f"{variant}-s{seed}"
            child = tracker.start_trial(parent, trial, variant, seed, {"gp_weight": 2.0 if variant == "GP2" else 0.0})
            if (variant, seed) in failed:
                tracker.log_metrics(child, [(s, {"loss/G_total": loss(run, variant, seed, s)}) for s in (1, 2)])
                tracker.end_trial(child, "failed", None, 2, "RuntimeError: out of memory")
                counts["failed"] += 1
                continue
            history = [(s, {"loss/G_total": loss(run, variant, seed, s), "lr/G": 2e-4}) for s in range(1, STEPS + 1)]
            history += [(s, {"eval/ssim": ssim(run, variant, seed) - (0.1 if s < STEPS else 0)}) for s in (5, STEPS)]
            tracker.log_metrics(child, history)
            tracker.end_trial(child, "completed", None, STEPS)
            counts["completed"] += 1
    tracker.end_study(parent, counts, True)
    return parent


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    """Two parent runs of study 'tiny-ab' (baseline + GP2 x 3 seeds): A on tiny, B on small with GP2-s2 failed,
    B carrying verdicts and a logged report."""
    root = tmp_path_factory.mktemp("workflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracker = StudyTracker(uri, "lwgan-study")
    run_a = _write_run(tracker, "A", "tiny", set())
    run_b = _write_run(tracker, "B", "small", {("GP2", 2)})
    # The verdicts as lwgan.report.verdicts.publish records them: a tag per claim, a summary tag, claims.json.
    for v in VERDICTS:
        tracker.client.set_tag(run_b, Tag.claim(v["id"]), f"{v['verdict']}: {v['detail']}")
    tracker.client.set_tag(run_b, Tag.CLAIMS_SUMMARY, "1 confirmed of 1")
    tracker.client.log_dict(run_b, json.loads(pd.DataFrame(VERDICTS).to_json(orient="split", index=False)), "claims.json")
    report = root / "report"
    report.mkdir()
    (report / "report.md").write_text("# tiny-ab\n")
    tracker.log_folder(run_b, report, "report")
    return Store(uri, root, run_a, run_b)


@pytest.fixture
def env(store, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    monkeypatch.setenv("LWGAN_HOME", str(tmp_path))
    return store


def final_mean(run: str, variant: str, seed: int) -> float:
    """The report's final value by hand: the mean over the last 20% of 10 logged points (steps 9 and 10)."""
    return (loss(run, variant, seed, 9) + loss(run, variant, seed, 10)) / 2


# ----------------------------------------------------------------------------------
# Shipped studies
# ----------------------------------------------------------------------------------


def test_shipped_studies_load_by_name_and_init_copies_them(tmp_path, capsys):
    from lwgan.study.library import embedded_dir, embedded_studies
    from lwgan.study.spec import load_study

    names = set(embedded_studies())
    assert {"ensembles", "ttur", "gradient_penalty", "spectral_norm", "label_smoothing", "loss_weights", "search"} <= names
    assert embedded_dir() == Path(__file__).resolve().parents[1] / "lwgan" / "studies"
    assert load_study("ttur").name == "ttur" and load_study(None).name == "ensembles"
    with pytest.raises(UserError, match=r"nope: study file not found .*ensembles \| gradient_penalty"):
        load_study("nope")

    assert main(["init", str(tmp_path / "mine")]) == 0
    written = capsys.readouterr().out.split()
    assert sorted(Path(p).name for p in written) == sorted(f"{n}.yaml" for n in names)
    copy = tmp_path / "mine" / "ttur.yaml"
    assert copy.read_text() == (embedded_dir() / "ttur.yaml").read_text()
    copy.write_text("edited")
    assert main(["init", str(tmp_path / "mine")]) == 2  # never overwrites an edit silently
    assert "already holds" in capsys.readouterr().err and copy.read_text() == "edited"
    assert main(["init", str(tmp_path / "mine"), "--force"]) == 0 and copy.read_text() != "edited"


# ----------------------------------------------------------------------------------
# ls / show
# ----------------------------------------------------------------------------------


def test_ls_lists_every_parent_run_with_counts(env, capsys):
    frame = api.studies()
    assert list(frame["run_id"]) == [env.run_b, env.run_a]  # newest first
    b = frame.set_index("run_id").loc[env.run_b]
    assert (b["study"], b["profile"], b["git_commit"], b["status"]) == ("tiny-ab", "small", "commitB", "completed")
    assert (b["completed"], b["failed"], b["diverged"], b["trials"]) == (5, 1, 0, 6)
    assert b["report"].endswith("report/report.md") and Path(b["report"]).is_file()
    assert frame.set_index("run_id").loc[env.run_a, "report"] == ""

    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tiny-ab (2 runs)") and env.run_a in out and "5 completed, 1 failed" in out
    assert main(["ls", "tiny-ab", "--format", "csv"]) == 0
    csv = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert list(csv["run_id"]) == [env.run_b, env.run_a] and list(csv["failed"]) == [1, 0]
    assert main(["ls", "other"]) == 0 and "no studies" in capsys.readouterr().err


def test_show_trials_best_and_verdicts(env, capsys):
    detail = api.show(env.run_b)
    assert detail.run_id == env.run_b and detail.objective_metric == "eval/ssim" and detail.objective_mode == "max"
    t = detail.trials.set_index("trial_id")
    assert list(detail.trials["variant"][:3]) == ["baseline"] * 3  # baseline first
    assert t.loc["GP2-s2", "status"] == "failed" and t.loc["GP2-s2", "error"] == "RuntimeError: out of memory"
    assert t.loc["GP2-s1", "objective"] == pytest.approx(ssim("B", "GP2", 1))
    # Best by hand: the highest final eval/ssim among completed trials (GP2-s2 failed).
    assert detail.best["trial_id"] == "GP2-s1" and detail.best["objective"] == pytest.approx(ssim("B", "GP2", 1))
    assert detail.verdicts.to_dict("records") == VERDICTS
    assert api.verdicts(env.run_a) is None
    # Without the table artifact the tags alone give id, verdict and detail.
    from mlflow.tracking import MlflowClient

    from lwgan.catalog.store import read_verdicts

    client = MlflowClient(env.uri)
    client.set_tag(env.run_a, Tag.claim("c1"), "inconclusive: L_rec E1 vs baseline +2% (range -1 to +5)")
    try:
        assert read_verdicts(client, client.get_run(env.run_a)).to_dict("records") == [
            {"id": "c1", "verdict": "inconclusive", "detail": "L_rec E1 vs baseline +2% (range -1 to +5)"}]
    finally:
        client.delete_tag(env.run_a, Tag.claim("c1"))

    assert main(["show", env.run_b]) == 0
    out = capsys.readouterr().out
    assert "best (completed trials only): GP2-s1 (GP2, seed 1)" in out and "out of memory" in out
    assert "verdicts (1 confirmed of 1):\n  gp2-total: confirmed: L_total GP2 vs baseline +40%" in out
    assert main(["show", "tiny-ab"]) == 0  # a study name: its latest run (B)
    assert env.run_b in capsys.readouterr().out
    assert main(["show", "f" * 32]) == 2 and "no study named" in capsys.readouterr().err


# ----------------------------------------------------------------------------------
# compare
# ----------------------------------------------------------------------------------


def test_compare_matches_a_hand_computed_paired_t_test(env, tmp_path, capsys):
    table = api.compare(env.run_a, env.run_b, metrics=["loss/G_total"])
    base = table[(table["variant"] == "baseline")].iloc[0]
    a = np.array([final_mean("A", "baseline", s) for s in SEEDS])
    b = np.array([final_mean("B", "baseline", s) for s in SEEDS])
    d = a - b
    half = sps.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert base["test"] == "paired t" and base["n_a"] == 3 and base["n_b"] == 3
    assert base["diff"] == pytest.approx(d.mean()) and base["mean_b"] == pytest.approx(b.mean())
    assert (base["diff_lo"], base["diff_hi"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert base["p"] == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert base["pct"] == pytest.approx(100 * d.mean() / abs(b.mean()))
    # GP2: B's seed 2 failed, so 2 shared seeds: a difference, but no test below 3 seeds.
    gp2 = table[(table["variant"] == "GP2")].iloc[0]
    assert (gp2["n_a"], gp2["n_b"], gp2["test"]) == (3, 2, "none") and math.isnan(gp2["p"])
    assert gp2["mean_b"] == pytest.approx(np.mean([final_mean("B", "GP2", s) for s in (0, 1)]))

    assert main(["compare", env.run_a, env.run_b, "--out", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# A: tiny-ab @ tiny") and "| baseline | `loss/G_total` | 3/3 |" in out and "| GP2 | `eval/ssim`" in out
    csv = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    # lr/G is logged too, but by default compare takes the losses and eval metrics only.
    assert set(csv["key"]) == {"loss/G_total", "eval/ssim"} and (tmp_path / "cmp" / "compare.md").read_text() == out
    assert main(["compare", env.run_a, env.run_a]) == 2 and "same parent run" in capsys.readouterr().err
    assert main(["compare", env.run_a, env.run_b, "--metric", "loss/nope"]) == 2
    assert "unknown metric loss/nope" in capsys.readouterr().err


# ----------------------------------------------------------------------------------
# Notebook API
# ----------------------------------------------------------------------------------


def test_notebook_api_frames(env):
    runs = api.runs("tiny-ab")  # latest run: B
    assert len(runs) == 6 and set(runs["status"]) == {"completed", "failed"} and "param.gp_weight" in runs
    older = api.runs(env.run_a)
    assert set(older["status"]) == {"completed"}
    metrics = api.metrics(env.run_a)
    one = metrics[(metrics["variant"] == "GP2") & (metrics["seed"] == 1) & (metrics["key"] == "loss/G_total")]
    assert list(one["step"]) == list(range(1, STEPS + 1)) and one["value"].iloc[-1] == pytest.approx(loss("A", "GP2", 1, STEPS))
    finals = api.final_values(env.run_a)
    got = finals[(finals["variant"] == "baseline") & (finals["seed"] == 2) & (finals["key"] == "loss/G_total")]["value"]
    assert got.iloc[0] == pytest.approx(final_mean("A", "baseline", 2))
    # Only completed trials enter final values.
    assert len(api.final_values(env.run_b).query("key == 'loss/G_total'")) == 5


# ----------------------------------------------------------------------------------
# CLI conventions
# ----------------------------------------------------------------------------------


def _sub(name: str) -> argparse.ArgumentParser:
    parser = _build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def test_cli_version_help_defaults_examples_and_choices(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"lwgan-study {version('lwgan-study')}"
    assert main([]) == 2 and "COMMAND" in capsys.readouterr().out  # no command: the help
    for name in ("run", "validate", "report", "ui", "init", "ls", "show", "compare", "confirm", "train", "data", "body"):
        text = _sub(name).format_help()
        assert "example" in text and f"lwgan-study {name}" in text, name
    run_help = _sub("run").format_help()
    assert "exit codes:" in run_help and "1    run: a trial failed" in run_help
    assert "(default: 5000)" in _sub("ui").format_help() and "(default: 127.0.0.1)" in _sub("ui").format_help()
    with pytest.raises(SystemExit):
        main(["run", "--profile", "huge", "--dry-run"])
    assert "invalid choice: 'huge' (choose from 'small', 'tiny', 'paper')" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["ls", "--format", "xml"])
    assert main(["report", "x", "--format", "docx"]) == 2 and "allowed: md" in capsys.readouterr().err
    assert ui_command("sqlite:////x.db", 5001, "0.0.0.0")[6:8] == ["--host", "0.0.0.0"]


def test_run_exit_codes():
    from lwgan.study.commands import exit_code
    from lwgan.study.runner import StudyOutcome

    def outcome(finished=True, report_error=None, **counts):
        return StudyOutcome(Path("."), "r", {"completed": 1, "diverged": 0, "failed": 0, "pruned": 0, **counts}, None, finished,
                            report_error=report_error)

    assert exit_code(outcome(diverged=1, pruned=2)) == 0  # a diverged or pruned trial is a result
    assert exit_code(outcome(failed=1)) == 1
    assert exit_code(outcome(report_error="the report failed")) == 1
    assert exit_code(outcome(finished=False, failed=1)) == 130
    # The summary (stdout) says why the code is 1.
    from lwgan.study.commands import summary_text
    from lwgan.study.spec import load_study

    text = summary_text(load_study("ttur"), outcome(failed=1, report_error="the report failed (KeyError: x)"),
                        argparse.Namespace(study="ttur"))
    assert "report: not written (the report failed (KeyError: x)); exit code 1" in text
    assert "1 failed trial(s): exit code 1 (`lwgan-study show r` lists their errors)" in text


# ----------------------------------------------------------------------------------
# MLflow's own tags on the parent run
# ----------------------------------------------------------------------------------

REPORT_MD = """# Study report: tiny-ab

## Results: deltas against the baseline

*Table 1 layout: stabilisers, TTUR and loss weights per variant.*

| Exp | SN | ΔL_rec |
| --- | --- | --- |
| baseline | – | 1.2 ± 0.1 |
| GP2 | – | +4.0% ± 2.0 |

*Other generator loss terms.*

| Exp | ΔL_adv |
| --- | --- |
"""


def test_parent_run_carries_mlflows_own_commit_and_note_tags(env):
    from mlflow.tracking import MlflowClient

    from lwgan.catalog.note import publish_note, table1_markdown

    assert table1_markdown(REPORT_MD) == "\n".join([
        "*Table 1 layout: stabilisers, TTUR and loss weights per variant.*", "",
        "| Exp | SN | ΔL_rec |", "| --- | --- | --- |", "| baseline | – | 1.2 ± 0.1 |", "| GP2 | – | +4.0% ± 2.0 |"])
    assert table1_markdown("# no table here\n") is None
    client = MlflowClient(env.uri)
    tags = client.get_run(env.run_b).data.tags
    assert tags[Tag.MLFLOW_GIT_COMMIT] == "commitB" == tags[Tag.GIT_COMMIT]
    assert Tag.MLFLOW_GIT_COMMIT not in study_run_tags("s.yaml", "tiny", {}, {}, None)  # unknown: not claimed
    report = env.root / "note-report.md"
    report.write_text(REPORT_MD)
    note = publish_note(client, env.run_b, report)
    assert client.get_run(env.run_b).data.tags[Tag.MLFLOW_NOTE] == note
    assert note.startswith("### tiny-ab (profile small, commit commitB)")
    assert "| GP2 | – | +4.0% ± 2.0 |" in note and "ΔL_adv" not in note  # Table 1 only
    assert "**Verdicts** (1 confirmed of 1):\n- `gp2-total`: confirmed: L_total GP2" in note


# ----------------------------------------------------------------------------------
# report --format tex
# ----------------------------------------------------------------------------------


def test_table_latex_is_booktabs_with_escapes_bold_and_marks():
    from lwgan.report.document import Cell, Table
    from lwgan.report.latex import table_latex

    table = Table(["Exp", "SN", "ΔL_rec"], [[Cell("baseline"), Cell("–"), Cell("1.2 ± 0.1")],
                                           [Cell("E1_x"), Cell("✓"), Cell("+37.6% ± 31", bold=True, mark=True)]],
                  caption="*Table 1: η & λ*", notes=["† CI excludes 0"])
    assert table_latex(table, "tab:t1") == "\n".join([
        r"\begin{table}[htbp]", r"\centering", r"\caption{Table 1: $\eta$ \& $\lambda$}", r"\label{tab:t1}",
        r"\begin{tabular}{lll}", r"\toprule", r"Exp & SN & $\Delta$L\_rec \\", r"\midrule",
        r"baseline & -- & 1.2 $\pm$ 0.1 \\", r"E1\_x & \checkmark & \bfseries +37.6\% $\pm$ 31$^\dagger$ \\",
        r"\bottomrule", r"\end{tabular}", r"\par\footnotesize $^\dagger$ CI excludes 0", r"\end{table}", ""])


def test_report_writes_latex_beside_markdown(env, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["report", env.run_a, "--format", "md,tex", "--out", str(out)]) == 0  # an older run, by id
    assert capsys.readouterr().out.split() == ["wrote", str(out / "report.md"), "wrote", str(out / "report.tex")]
    md, tex = (out / "report.md").read_text(), (out / "report.tex").read_text()
    n_tables = sum(1 for line in md.splitlines() if line.startswith("| ---"))
    assert n_tables >= 3 and tex.count(r"\begin{table}") == n_tables
    assert tex.count(r"\toprule") == tex.count(r"\midrule") == tex.count(r"\bottomrule") == n_tables
    # The same rows with the same numbers: per Markdown table row, its first cell starts a LaTeX row that
    # holds every number of the Markdown row.
    import re

    from lwgan.report.latex import escape, latex_text

    number = re.compile(r"\d+(?:\.\d+)?")
    tex_rows = [ln for ln in tex.splitlines() if ln.endswith("\\\\")]
    for line in md.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            first = latex_text(escape(line.strip("|").split("|")[0].strip().strip("*")))
            matches = [r for r in tex_rows if r.startswith(first + " &") and number.findall(r) == number.findall(line)]
            assert matches, line
    assert not (out / "report.pdf").exists()


# ----------------------------------------------------------------------------------
# train --track
# ----------------------------------------------------------------------------------


@pytest.mark.slow  # two real tiny trainings (about 20 s of CPU)
def test_train_track_records_one_run_and_resume_continues_it(tmp_path, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    from lwgan.tracked_train import RUN_FILE

    uri = f"sqlite:///{tmp_path / 'track.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("LWGAN_HOME", str(tmp_path))
    out = tmp_path / "runs" / "t1"
    assert main(["train", "--profile", "tiny", "--steps", "2", "--out", str(out), "--track", "--set", "lr_G=1e-4"]) == 0
    run_id = json.loads((out / RUN_FILE).read_text())["run_id"]
    assert f"MLflow: run {run_id}" in capsys.readouterr().out
    assert main(["train", "--profile", "tiny", "--steps", "3", "--out", str(out), "--track", "--resume"]) == 0
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("lwgan-study").experiment_id])
    assert run.info.run_id == run_id and run.info.run_name == "t1" and run.info.status == "FINISHED"
    tags, params = run.data.tags, run.data.params
    assert (tags[Tag.ROLE], tags[Tag.STATUS], tags[Tag.PROFILE]) == ("train", "completed", "tiny")
    assert Tag.PARENT_RUN_ID not in tags and tags[Tag.DEVICE] == "cpu"
    assert params["lr_G"] == "0.0001" and params["image_size"] == "32"
    assert [m.step for m in client.get_metric_history(run_id, "loss/G_total")] == [1, 2, 3]  # one run, resumed
    assert {"config.yaml", "run_info.json"} <= {a.path for a in client.list_artifacts(run_id)}
    assert api.studies(uri).empty  # a training run is not a study


# ----------------------------------------------------------------------------------
# run --resume RUN_ID
# ----------------------------------------------------------------------------------


def test_resume_by_run_id_finds_that_runs_folder_study_and_profile(tmp_path, monkeypatch, capsys):
    from lwgan.study.commands import find_run_dir
    from lwgan.study.library import embedded_study
    from lwgan.study.state import STATE_FILE, StudyState

    monkeypatch.setenv("LWGAN_HOME", str(tmp_path))
    study = tmp_path / "ttur.yaml"
    study.write_text(embedded_study("ttur").read_text())
    storage = tmp_path / "runs"
    older, newer = "a" * 32, "b" * 32
    for stamp, run_id, profile in (("20260101-000000", older, "tiny"), ("20260102-000000", newer, "small")):
        (storage / "ttur" / f"run-{stamp}").mkdir(parents=True)
        StudyState(storage / "ttur" / f"run-{stamp}" / STATE_FILE, "ttur", str(study), profile, "ablation", run_id).save()
    assert find_run_dir(storage, older) == storage / "ttur" / "run-20260101-000000"
    assert find_run_dir(storage, older, "ttur") == find_run_dir(storage, older) and find_run_dir(storage, "c" * 32) is None

    # No study given: the older run's study file and profile (tiny), not the latest run's (small).
    assert main(["run", "--resume", older, "--storage", str(storage), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert plan.startswith("study ttur (ablation) | profile tiny") and f"file {study}" in plan
    assert main(["run", "--resume", "c" * 32, "--storage", str(storage), "--dry-run"]) == 2
    assert f"--resume {'c' * 32}: no run folder under {storage}" in capsys.readouterr().err
    # A study path after --resume is the study, as before (`run --resume studies/x.yaml`).
    assert main(["run", "--resume", str(study), "--storage", str(storage), "--dry-run"]) == 0
    assert "profile small" in capsys.readouterr().out  # the latest run's profile


# ----------------------------------------------------------------------------------
# confirm: a search's top configurations against the baseline, with seeds
# ----------------------------------------------------------------------------------

SEARCH_YAML = """name: tiny-search
seeds: 1
default_profile: tiny
base: {lambda_rec: 12}
search:
  lr_G: {type: log_uniform, low: 5.0e-5, high: 1.0e-3}
  gp_weight: {type: uniform, low: 0.0, high: 10.0}
budget: {max_trials: 6, max_steps: 8}
objective: {metric: eval/ssim, mode: max}
"""
# trial id, lr_G, gp_weight, status, final eval/ssim
SEARCH_TRIALS = [("trial-000", 2e-4, 0.0, "completed", 0.30), ("trial-001", 4e-4, 0.0, "completed", 0.50),
                 ("trial-002", 1e-4, 5.0, "completed", 0.40), ("trial-003", 4e-4, 0.0, "completed", 0.45),
                 ("trial-004", 9e-4, 9.0, "pruned", 0.90), ("trial-005", 3e-4, 2.0, "completed", 0.35)]


@pytest.fixture
def search_run(tmp_path, monkeypatch) -> str:
    """A search study 'tiny-search' in its own store (the env points at it); returns its parent run id."""
    uri = f"sqlite:///{tmp_path / 'search.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("LWGAN_HOME", str(tmp_path))
    tracker = StudyTracker(uri, "lwgan-study")
    parent = tracker.start_study("tiny-search", study_run_tags("s.yaml", "tiny", {}, {}, "c0"), SEARCH_YAML)
    for trial, lr, gp, status, value in SEARCH_TRIALS:
        child = tracker.start_trial(parent, trial, "search", 0, {"lr_G": lr, "gp_weight": gp, "spectral_norm": False})
        step = 4 if status == "pruned" else 8  # ASHA stopped the pruned trial at its first rung
        tracker.log_metrics(child, [(s, {"eval/ssim": value - 0.01 * (step - s)}) for s in range(1, step + 1)])
        tracker.end_trial(child, status, None, step)
    tracker.end_study(parent, {"completed": 5, "pruned": 1}, True)
    return parent


def test_confirm_writes_and_plans_the_top_configurations(search_run, tmp_path, monkeypatch, capsys, store):
    import yaml

    from lwgan.study.spec import load_study

    parent = search_run

    out = tmp_path / "confirm.yaml"
    assert main(["confirm", parent, "--top", "2", "--seeds", "3", "--out", str(out), "--dry-run"]) == 0
    captured = capsys.readouterr()
    # By hand: the best completed trials are 001 (0.50) and 003 (0.45, the same configuration: skipped), then
    # 002 (0.40); the pruned 004 does not count. Each changes only what differs from trial-000.
    data = yaml.safe_load(out.read_text())
    assert data["variants"] == {"T001": {"lr_G": 4e-4}, "T002": {"lr_G": 1e-4, "gp_weight": 5.0}}
    assert (data["name"], data["seeds"], data["base"], data["default_profile"]) == ("tiny-search-confirm", 3, {"lambda_rec": 12}, "tiny")
    assert data["budget"] == {"max_steps": 8} and "search" not in data
    assert out.read_text().startswith(f"# Written by `lwgan-study confirm {parent}`: the search's top trials trial-001 (0.5), trial-002 (0.4)")
    assert load_study(str(out)).kind == "ablation"
    assert "9 trials = 3 variants x 3 seeds" in captured.out and "dry run: nothing was started" in captured.out
    assert f"wrote {out}: 2 configurations of search run {parent}" in captured.err
    assert main(["confirm", parent, "--out", str(out), "--dry-run"]) == 2 and "already exists" in capsys.readouterr().err
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    assert main(["confirm", store.run_a, "--dry-run", "--out", str(tmp_path / "x.yaml")]) == 2
    assert "is not a search" in capsys.readouterr().err


def test_search_gets_its_own_report(search_run, tmp_path, capsys):
    import optuna

    out = tmp_path / "srep"
    assert main(["report", search_run, "--format", "md,tex", "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert md.startswith("# Search report: tiny-search")
    # Best trials by hand: the baseline first, then 001 (0.5), 003 (0.45), 002 (0.4), 005 (0.35); not the pruned 004.
    rows = [ln for ln in md.splitlines() if ln.startswith("| trial-")]
    assert [r.split("|")[1].strip() for r in rows[:5]] == ["trial-000 (baseline)", "trial-001", "trial-003", "trial-002", "trial-005"]
    assert "| trial-001 | **0.5** | +0.2 | lr_G = 0.0004 |" in md and "gp_weight = 5" in rows[3]
    assert "| pruned | 1 | step 4: 1 |" in md and "| completed | 5 | – |" in md
    imp = {ln.split("|")[1].strip(): float(ln.split("|")[2]) for ln in md.splitlines()
           if ln.startswith("| lr_G") or ln.startswith("| gp_weight")}
    assert set(imp) == {"lr_G", "gp_weight"} and sum(imp.values()) == pytest.approx(1.0, abs=2e-3)
    # The same importances as Optuna computes on the completed trials directly.
    study = optuna.create_study(direction="maximize")
    dists = {"lr_G": optuna.distributions.FloatDistribution(5e-5, 1e-3, log=True),
             "gp_weight": optuna.distributions.FloatDistribution(0.0, 10.0)}
    for _, lr, gp, status, value in SEARCH_TRIALS:
        if status == "completed":
            study.add_trial(optuna.trial.create_trial(params={"lr_G": lr, "gp_weight": gp}, distributions=dists, value=value))
    expected = optuna.importance.get_param_importances(study)
    assert imp == pytest.approx({k: round(v, 3) for k, v in expected.items()}, abs=1e-3)
    # The MLflow note of a search carries its best-trials table.
    from mlflow.tracking import MlflowClient

    from lwgan.catalog.note import publish_note

    note = publish_note(MlflowClient(os.environ["MLFLOW_TRACKING_URI"]), search_run, out / "report.md")
    assert "*Best completed trials by eval/ssim (max); one seed each.*" in note and "| trial-001 | **0.5** |" in note
    for fig in ("search_history.png", "search_parallel.png"):
        assert (out / "figures" / fig).stat().st_size > 5000
    assert len(pd.read_csv(out / "data" / "search_trials.csv")) == 6 and (out / "report.tex").is_file()


def test_artifacts_of_a_new_sqlite_store_sit_beside_it(tmp_path, monkeypatch):
    """Not under whichever folder the first run happened to start in."""
    elsewhere = tmp_path / "somewhere" / "deep"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    tracker = StudyTracker(f"sqlite:///{tmp_path / 'proj' / 'mlflow.db'}", "exp")
    location = tracker.client.get_experiment(tracker.experiment_id).artifact_location
    assert location == (tmp_path / "proj" / "mlruns").resolve().as_uri()
    run = tracker.start_study("s", {}, "name: s\n")
    assert (tmp_path / "proj" / "mlruns").is_dir() and not (elsewhere / "mlruns").exists()
    assert tracker.client.get_run(run).info.artifact_uri.startswith(location)
