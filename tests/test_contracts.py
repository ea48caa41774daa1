"""Contracts as code (lwgan/vocab.py): the vocabulary's invariants, no metric name / tag key / status
literal outside it, MLflow params typed by their config fields, and a loss term added in one place
reaching the metrics log, the MLflow run, the report's tables and curves and the study objective."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

from lwgan import vocab
from lwgan.vocab import Direction, Group, Metric, Tag, TrialStatus

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

PACKAGE = Path(__file__).resolve().parents[1] / "lwgan"
# Name prefix -> group where the prefix is not the group's own value (``eval/`` -> Group.EVAL and so on).
PREFIX_GROUP = {"loss/G_": Group.GENERATOR, "loss/D_": Group.DISCRIMINATOR, "D/": Group.D_OUTPUTS}
# Literals that equal a vocabulary word but mean something else there (file, literal, why).
ALLOWED = {
    ("cli.py", "interrupted"),  # the Ctrl-C message of every command, not the study status
}


# ----------------------------------------------------------------------------------
# The vocabulary itself
# ----------------------------------------------------------------------------------


def test_every_metric_is_in_the_group_its_name_says():
    for name, m in vocab.METRICS.items():
        assert m.name == name
        prefix = next((p for p in PREFIX_GROUP if name.startswith(p)), None)
        if prefix:
            expected = PREFIX_GROUP[prefix]
        else:
            expected = Group(name.split("/")[0]) if "/" in name else Group.PROGRESS
        assert m.group == expected, name


def test_objectives_have_a_direction_and_groups_hold_their_totals():
    assert vocab.objective_metrics(), "no metric may be optimised"
    for name in vocab.objective_metrics():
        assert vocab.direction(name) in (Direction.LOWER, Direction.HIGHER), name
    assert vocab.direction(vocab.EVAL_SSIM) == Direction.HIGHER and vocab.direction(vocab.G_TOTAL) == Direction.LOWER
    assert vocab.G_TOTAL in vocab.names(Group.GENERATOR) and vocab.G_TOTAL not in vocab.generator_terms()
    assert vocab.D_TOTAL in vocab.names(Group.DISCRIMINATOR) and vocab.D_TOTAL not in vocab.discriminator_terms()
    with pytest.raises(KeyError, match="lwgan/vocab.py"):
        vocab.metric("loss/G_nope")


def test_statuses_final_states_and_json_round_trip():
    assert [s.value for s in TrialStatus] == ["pending", "running", "completed", "diverged", "failed", "pruned"]
    assert {s for s in TrialStatus if s.final} == {TrialStatus.COMPLETED, TrialStatus.DIVERGED, TrialStatus.FAILED, TrialStatus.PRUNED}
    assert not TrialStatus.PENDING.final and not TrialStatus.RUNNING.final
    assert vocab.StudyStatus.INTERRUPTED == "interrupted" and "interrupted" not in {s.value for s in TrialStatus}
    text = json.dumps({TrialStatus.DIVERGED: TrialStatus.DIVERGED})
    assert text == '{"diverged": "diverged"}' and TrialStatus(json.loads(text)["diverged"]) is TrialStatus.DIVERGED
    assert f"{TrialStatus.FAILED}" == str(TrialStatus.FAILED) == "failed"


def test_tag_keys_are_unique_and_namespaced():
    keys = [v for k, v in vars(Tag).items() if k.isupper()]
    assert len(keys) == len(set(keys))
    assert all(k.startswith(("lwgan.", "mlflow.")) for k in keys)  # ours, or MLflow's own (parent run, git commit, note)
    assert Tag.PARENT_RUN_ID.startswith("mlflow.") and Tag.ROLE.startswith("lwgan.")
    assert Tag.trials_count(TrialStatus.PRUNED) == "lwgan.trials_pruned"


def _vocabulary_words() -> set[str]:
    words = set(vocab.METRICS) - {vocab.EPOCH}  # "epoch" is also a checkpoint field and a progress word
    words |= {v for k, v in vars(Tag).items() if k.isupper()}
    words |= {s.value for s in TrialStatus} | {s.value for s in vocab.StudyStatus}
    words |= {v for k, v in vars(vocab.TuneKey).items() if k.isupper() and v.startswith("lwgan_")}
    return words


def _literals(path: Path, words: set[str]) -> list[tuple[int, str]]:
    """String constants (docstrings excepted) equal to a vocabulary word."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    docstrings = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings and node.value in words]


def test_the_scan_finds_a_planted_literal(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text('"""loss/G_rec in a docstring is prose."""\nx = {"loss/G_rec": 1, "key": "lwgan.status", "s": "pruned"}\n')
    assert sorted(v for _, v in _literals(planted, _vocabulary_words())) == ["loss/G_rec", "lwgan.status", "pruned"]


def test_no_metric_tag_or_status_literal_outside_vocab():
    words = _vocabulary_words()
    found = [
        f"{path.relative_to(PACKAGE)}:{line}: {value!r}"
        for path in sorted(PACKAGE.rglob("*.py")) if path.name != "vocab.py"
        for line, value in _literals(path, words)
        if (str(path.relative_to(PACKAGE)), value) not in ALLOWED
    ]
    assert not found, "read these from lwgan/vocab.py instead:\n" + "\n".join(found)


# ----------------------------------------------------------------------------------
# Typed MLflow params, search objectives
# ----------------------------------------------------------------------------------


def test_report_types_params_through_the_config_fields():
    from lwgan.config import TrainConfig
    from lwgan.report.collect import typed_param

    flat = TrainConfig.from_flat({"d_norm": "none", "spectral_norm": True, "lr_G": 1e-4}).to_flat()
    for key in ("d_norm", "spectral_norm", "lr_G", "lambda_rec", "max_steps"):
        logged = "null" if flat[key] is None else str(flat[key])  # what tracking.start_trial writes
        assert typed_param(key, logged) == flat[key], key
    assert typed_param("d_norm", "none") == "none"  # a string choice, not None (was shown as "–")
    assert typed_param("seed", "3") == 3 and typed_param("variant", "E1") == "E1"


@pytest.mark.parametrize("metric,mode,fragment", [
    (vocab.G_TOTAL, "max", "lower-is-better"),
    (vocab.EVAL_SSIM, "min", "higher-is-better"),
    (vocab.LR_G, "min", vocab.EVAL_SSIM),  # not an objective: the error lists the ones that are
])
def test_objective_mode_must_follow_the_metric_direction(tmp_path, metric, mode, fragment):
    from lwgan.study.spec import StudyError, parse_study

    with pytest.raises(StudyError, match="objective") as err:
        parse_study({"name": "x", "objective": {"metric": metric, "mode": mode}}, "x.yaml")
    assert fragment in str(err.value) and "x.yaml" in str(err.value)
    assert parse_study({"name": "x", "objective": {"metric": vocab.G_TOTAL}}, "x.yaml").objective.mode == "min"


def test_objective_refuses_a_term_vocab_does_not_register():
    import torch

    from lwgan.models.objective import _report

    with pytest.raises(ValueError, match="loss/G_unregistered.*lwgan/vocab.py"):
        _report(Group.GENERATOR, vocab.G_TOTAL, {"loss/G_unregistered": torch.tensor(1.0)}, torch.tensor(1.0))


# ----------------------------------------------------------------------------------
# One new loss term, added once, everywhere
# ----------------------------------------------------------------------------------

DUMMY = "loss/G_dummy"


@pytest.fixture
def dummy_term(monkeypatch, tmp_path):
    """Registers DUMMY in vocab and computes it in the Objective: the two places a new term touches."""
    from lwgan.models.objective import Objective

    monkeypatch.setenv("LWGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(vocab.METRICS, DUMMY, Metric(DUMMY, Group.GENERATOR, Direction.LOWER, label="L_dummy", objective=True))
    original = Objective.generator_terms

    def generator_terms(self, out, src_img, tgt_img, geom, tgt_keys=None):
        terms = original(self, out, src_img, tgt_img, geom, tgt_keys)
        terms[DUMMY] = 0.5 * (out.tsf_image - tgt_img).abs().mean()
        return terms

    monkeypatch.setattr(Objective, "generator_terms", generator_terms)


def test_a_new_loss_term_reaches_log_mlflow_report_and_objective(dummy_term, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from lwgan.profiles import resolve_config
    from lwgan.report import figures
    from lwgan.report.builder import build_report
    from lwgan.study.spec import parse_study
    from lwgan.study.trainable import TrialContext, TuneReporter
    from lwgan.tracking import StudyTracker, study_run_tags
    from lwgan.train.metrics_log import read_metrics
    from lwgan.train.trainer import Trainer

    # 1. a tiny real run logs it, inside the optimised total
    cfg = resolve_config("tiny", {"max_steps": 2, "device": "cpu", "num_threads": 1, "eval_every": 2,
                                  "sample_every": 2, "checkpoint_every": 2})
    result = Trainer(cfg, tmp_path / "run", progress=False).fit()
    assert result.status == TrialStatus.COMPLETED
    rows = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r[vocab.STEP] > 0]
    assert rows and all(DUMMY in r and r[DUMMY] > 0 for r in rows)
    terms = [k for k in vocab.generator_terms()]
    assert DUMMY in terms
    for r in rows:
        assert r[vocab.G_TOTAL] == pytest.approx(sum(r[k] for k in terms), rel=1e-5)

    # 2. the MLflow run holds it (two trials: baseline and a variant, so the report has a delta table)
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    tracker = StudyTracker(uri, "contracts")
    parent = tracker.start_study("dummy", study_run_tags("dummy.yaml", "tiny", cfg.to_flat(), {}, None), "name: dummy\n")
    history = [(r[vocab.STEP], {k: v for k, v in r.items() if k != vocab.STEP}) for r in read_metrics(tmp_path / "run" / "metrics.jsonl")]
    runs = {}
    for variant, seed, scale in ((vocab.BASELINE, 0, 1.0), (vocab.BASELINE, 1, 1.1), ("v", 0, 0.5), ("v", 1, 0.55)):
        rid = tracker.start_trial(parent, f"{variant}-s{seed}", variant, seed, cfg.to_flat())
        tracker.log_metrics(rid, [(s, {k: (v * scale if k == DUMMY else v) for k, v in m.items()}) for s, m in history])
        tracker.end_trial(rid, TrialStatus.COMPLETED, tmp_path / "run", result.step)
        runs[(variant, seed)] = rid
    tracker.end_study(parent, {TrialStatus.COMPLETED: 4}, finished=True)
    logged = MlflowClient(uri).get_metric_history(runs[(vocab.BASELINE, 0)], DUMMY)
    assert [m.value for m in logged] == pytest.approx([r[DUMMY] for r in rows])

    # 3. the report's tables and curves show it
    plotted = []
    real_curves = figures.curves_figure

    def spy(metrics, keys, *args, **kwargs):
        plotted.append(tuple(keys))
        return real_curves(metrics, keys, *args, **kwargs)

    saved = []

    def save_figure(fig, path):  # drawing is the report's own business (its tests); here: which figures, which keys
        import matplotlib.pyplot as plt

        plt.close(fig)
        saved.append(Path(path).name)
        return path

    monkeypatch.setattr(figures, "curves_figure", spy)
    monkeypatch.setattr(figures, "save_figure", save_figure)
    (md_path,) = build_report("dummy", tmp_path / "report", formats="md", tracking_uri=uri)
    md = md_path.read_text(encoding="utf-8")
    assert "\u0394L_dummy" in md  # its delta column (other generator terms)
    assert any(DUMMY in keys and vocab.G_TOTAL in keys for keys in plotted) and "curves_G.png" in saved

    # 4. a study may optimise it (direction lower -> mode min), and a trial reports it as the objective
    spec = parse_study({"name": "dummy", "objective": {"metric": DUMMY}}, "dummy.yaml")
    assert (spec.objective.metric, spec.objective.mode) == (DUMMY, "min")
    reported = []
    monkeypatch.setattr("ray.tune.report", lambda result, checkpoint=None: reported.append(result))
    context = TrialContext(str(tmp_path), cfg.to_flat(), {}, spec.objective.metric, spec.objective.mode)
    reporter = TuneReporter(context, "t0", tmp_path / "run")
    for step, metrics in history:
        reporter.on_metrics(step, metrics)
    reporter.on_end(result)
    assert reported[-1][vocab.TuneKey.OBJECTIVE] == pytest.approx(rows[-1][DUMMY])
    assert reported[-1][vocab.TuneKey.STATUS] == TrialStatus.COMPLETED


# ----------------------------------------------------------------------------------
# One trial outcome, both stores
# ----------------------------------------------------------------------------------


def test_trial_outcome_is_written_once_to_mlflow_and_the_state_file(tmp_path):
    from mlflow.tracking import MlflowClient

    from lwgan.study.outcome import TrialOutcome, record_outcome
    from lwgan.study.state import StudyState, TrialRecord
    from lwgan.tracking import StudyTracker

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    tracker = StudyTracker(uri, "outcomes")
    parent = tracker.start_study("s", {}, "name: s\n")
    state = StudyState(tmp_path / "study_state.json", "s", "s.yaml", "tiny", "ablation", parent)
    for trial_id, variant, seed in (("baseline-s0", vocab.BASELINE, 0), ("E1-s0", "E1", 0), ("E1-s1", "E1", 1)):
        state.add(TrialRecord(trial_id, variant, seed))
        state.update(trial_id, state=TrialStatus.RUNNING, step=4,
                     mlflow_run_id=tracker.start_trial(parent, trial_id, variant, seed, {"gp_weight": 0.0}))
    record_outcome(state, tracker, "baseline-s0", TrialOutcome(TrialStatus.COMPLETED, 4, objective=0.5))
    record_outcome(state, tracker, "E1-s0", TrialOutcome(TrialStatus.COMPLETED, objective=0.7))
    record_outcome(state, tracker, "E1-s1", TrialOutcome(TrialStatus.DIVERGED, 3, "diverged at step 3", objective=0.9))

    again = StudyState.load(state.path)  # what --resume reads back
    assert {t: r.state for t, r in again.trials.items()} == {"baseline-s0": "completed", "E1-s0": "completed", "E1-s1": "diverged"}
    assert again.trials["E1-s0"].step == 4 and again.trials["E1-s1"].objective is None  # no objective unless completed
    assert again.best("max") == ("E1-s0", 0.7) and again.best("min") == ("baseline-s0", 0.5)
    assert not again.unfinished()
    client = MlflowClient(uri)
    diverged = client.get_run(again.trials["E1-s1"].mlflow_run_id)
    assert diverged.data.tags[Tag.STATUS] == TrialStatus.DIVERGED and diverged.data.tags[Tag.DIVERGED_STEP] == "3"
    assert diverged.data.tags[Tag.ERROR] == "diverged at step 3" and diverged.info.status == "FINISHED"
    with pytest.raises(ValueError, match="final state"):
        TrialOutcome(TrialStatus.RUNNING)


CORE = ("train", "models", "render", "body", "data")  # the training core: a Ray trial and `train` run the same code


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_training_core_imports_neither_ray_nor_mlflow():
    offenders = {str(p.relative_to(PACKAGE)): sorted(_imported_roots(p) & {"ray", "mlflow"})
                 for sub in CORE for p in (PACKAGE / sub).rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}
    # the scan sees imports inside functions too (the tracked training run's lazy mlflow import lives outside the core)
    assert "mlflow" in _imported_roots(PACKAGE / "tracked_train.py")
