"""Study files: the seed paper's studies, validation messages (file, key path, allowed values), resolution
into trials, the search space, and the validate / run --dry-run commands."""

import argparse
from pathlib import Path

import optuna
import pytest
import yaml

from lwgan.cli import main
from lwgan.study.commands import command_run, command_validate, plan_text
from lwgan.study.space import DefineByRun, config_values
from lwgan.study.spec import (
    BASELINE,
    StudyError,
    load_study,
    parse_study,
    resolve_study,
    search_baseline_point,
)

STUDIES = Path(__file__).resolve().parents[1] / "studies"


def write(tmp_path, data, name="study.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def args(**kw):
    base = dict(study=None, profile=None, dry_run=True, resume=False, address=None, seeds=None, steps=None,
                max_concurrent=None, no_report=True, storage=None, sets=[])
    base.update(kw)
    return argparse.Namespace(**base)


@pytest.mark.parametrize("name", ["label_smoothing", "gradient_penalty", "spectral_norm", "ttur", "loss_weights", "ensembles", "search"])
def test_every_paper_study_validates_and_cites_its_section(name):
    spec = load_study(STUDIES / f"{name}.yaml")
    assert spec.name == name
    assert "Exploratory Analysis" in spec.description and "section 3." in spec.description
    resolved = resolve_study(spec)
    if spec.kind == "ablation":
        assert resolved.trials[0].variant == BASELINE and resolved.trials[0].overrides == {}
        assert all(t.overrides for t in resolved.trials if t.variant != BASELINE)


def test_single_factor_studies_match_the_paper():
    def overrides(name):
        return {v.name: v.overrides for v in load_study(STUDIES / f"{name}.yaml").variants}

    assert overrides("label_smoothing") == {"LS0.9": {"label_smoothing": 0.9}}
    assert overrides("gradient_penalty") == {"GP10": {"gp_weight": 10}, "GP2": {"gp_weight": 2}}
    assert overrides("spectral_norm") == {"SN": {"spectral_norm": True}}
    assert overrides("ttur") == {"TTUR_D": {"lr_G": 1e-4, "lr_D": 4e-4}, "TTUR_G": {"lr_G": 4e-4, "lr_D": 1e-4}}
    assert overrides("loss_weights") == {"rec15": {"lambda_rec": 15}, "face10": {"lambda_face": 10}}


def test_ensembles_are_table_1_exactly():
    resolved = resolve_study(load_study(None))  # the embedded default study
    assert resolved.spec.name == "ensembles" and resolved.profile == "small" and resolved.seeds == (0, 1, 2)
    cfg = {t.variant: t.config for t in resolved.trials if t.seed == 0}
    base = cfg[BASELINE]
    assert (base["gp_weight"], base["spectral_norm"], base["lr_G"], base["lr_D"], base["lr_final"], base["lambda_rec"]) == (0.0, False, 2e-4, 2e-4, 2e-6, 10.0)
    e1, e2, e3, e4 = (cfg[f"E{i}"] for i in range(1, 5))
    assert (e1["gp_weight"], e1["spectral_norm"], e1["lr_G"], e1["lr_D"], e1["lr_final"], e1["epochs_decay"], e1["lambda_rec"]) == (2.0, False, 1e-4, 3e-4, 2e-6, 25, 10.0)
    for e, sn, rec in ((e2, False, 10.0), (e3, True, 15.0), (e4, False, 15.0)):
        assert (e["gp_weight"], e["spectral_norm"], e["lr_G"], e["lr_D"], e["lr_final"], e["epochs_decay"], e["lambda_rec"]) == (0.0, sn, 4e-4, 1e-4, 1e-5, 15, rec)
    # The small profile changes size and length, never the method; 3 seeds per variant (a paired test needs 3), 5 variants.
    assert base["image_size"] == 64 and len(resolved.trials) == 15
    assert [t.trial_id for t in resolved.trials[:4]] == ["baseline-s0", "baseline-s1", "baseline-s2", "E1-s0"]


def test_cli_overrides_seeds_steps_and_sets():
    resolved = resolve_study(load_study(None), "tiny", seeds=3, steps=7, sets={"lr_D": "5e-4"})
    assert resolved.seeds == (0, 1, 2) and len(resolved.trials) == 15
    assert {t.config["max_steps"] for t in resolved.trials} == {7}
    assert {t.seed for t in resolved.trials if t.variant == "E1"} == {0, 1, 2}
    # --set applies to the baseline; a variant's own value still wins.
    assert resolved.baseline["lr_D"] == 5e-4
    assert {t.variant: t.config["lr_D"] for t in resolved.trials}["E1"] == 3e-4


def test_grid_expands_to_named_variants(tmp_path):
    path = write(tmp_path, {"name": "g", "grid": {"gp_weight": [2, 10], "spectral_norm": [True, False]}, "seeds": [3, 5]})
    resolved = resolve_study(load_study(path), "tiny")
    names = sorted({t.variant for t in resolved.trials})
    assert names == sorted([BASELINE, "gp_weight=2,spectral_norm=true", "gp_weight=2,spectral_norm=false",
                            "gp_weight=10,spectral_norm=true", "gp_weight=10,spectral_norm=false"])
    assert {t.seed for t in resolved.trials} == {3, 5}
    t = next(t for t in resolved.trials if t.trial_id == "gp_weight=10,spectral_norm=true-s5")
    assert t.overrides == {"gp_weight": 10.0, "spectral_norm": True} and t.config["seed"] == 5


@pytest.mark.parametrize(
    "data, key, fragment",
    [
        ({"name": "x", "variants": {"E1": {"lr_g": 1e-4}}}, "variants.E1.lr_g", "did you mean 'lr_G'"),
        ({"name": "x", "variants": {"E1": {"label_smoothing": 0.2}}}, "variants.E1.label_smoothing", "0.5..1.0"),
        ({"name": "x", "variants": {"E1": {"spectral_norm": "maybe"}}}, "variants.E1.spectral_norm", "expected bool"),
        ({"name": "x", "variants": {"baseline": {"lr_G": 1e-4}}}, "variants.baseline", "always part of a study"),
        ({"name": "x", "variants": {"E1": {}}}, "variants.E1", "at least one key"),
        ({"name": "x", "seeds": 0}, "seeds", "an int >= 1"),
        ({"name": "x", "budget": {"max_steps": -3}}, "budget.max_steps", "an integer >= 1"),
        ({"name": "x", "objective": {"metric": "eval/fid"}}, "objective.metric", "eval/ssim"),
        ({"name": "x", "objective": {"mode": "up"}}, "objective.mode", "max | min"),
        ({"name": "x", "profiles": {"huge": {}}}, "profiles.huge", "small"),
        ({"name": "x", "profiles": {"small": {"image_size": 50}}}, "profiles.small.image_size", "multiple of 16"),
        ({"name": "x", "resources": {"cpu": 0}}, "resources.cpu", ">= 1"),
        ({"name": "x", "scheduler": {"type": "pbt"}}, "scheduler.type", "asha"),
        ({"name": "x", "colour": 1}, "colour", "variants"),
        ({"name": "x y"}, "name", "letters, digits"),
        ({"name": "x", "search": {"lr_G": {"type": "normal", "low": 1, "high": 2}}}, "search.lr_G.type", "log_uniform | uniform | int | categorical"),
        ({"name": "x", "search": {"image_size": {"type": "int", "low": 32, "high": 64}}}, "search.image_size", "not a searchable key"),
        ({"name": "x", "search": {"lr_G": {"type": "log_uniform", "low": 1e-3, "high": 1e-2}}}, "search.lr_G", "baseline value 0.0002 is outside"),
        ({"name": "x", "search": {"gp_weight": {"type": "uniform", "low": 0.0, "high": 10, "when": {"use_gp": True}}}}, "search.gp_weight.when.use_gp", "another categorical search parameter"),
        ({"name": "x", "search": {"use_gp": {"type": "categorical", "choices": [False, True]}}}, "search.use_gp", "no parameter's 'when' uses"),
        ({"name": "x", "search": {"lr_G": {"type": "log_uniform", "low": 1e-5, "high": 1e-3}}, "variants": {"a": {"lr_D": 1e-4}}}, "search", "not both"),
        ({"name": "x", "search": {"lr_G": {"type": "log_uniform", "low": 1e-5, "high": 1e-3}}, "seeds": 2}, "seeds", "one-element"),
    ],
)
def test_errors_name_file_key_and_allowed_values(tmp_path, data, key, fragment):
    path = write(tmp_path, data)
    with pytest.raises(StudyError) as err:
        load_study(path)
    text = str(err.value)
    assert str(path) in text and err.value.key == key and fragment in text, text


def test_cli_prints_a_study_error_without_traceback_and_exits_2(tmp_path, capsys):
    path = write(tmp_path, {"name": "x", "variants": {"E1": {"lr_g": 1e-4}}})
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "variants.E1.lr_g" in err and str(path) in err and "Traceback" not in err
    assert main(["run", str(tmp_path / "missing.yaml"), "--dry-run"]) == 2
    assert "study file not found" in capsys.readouterr().err


def test_validate_and_dry_run_print_the_trials(capsys):
    assert command_validate(args(study=str(STUDIES / "ttur.yaml"), profile="tiny")) == 0
    out = capsys.readouterr().out
    assert "TTUR_D-s0" in out and "lr_G=0.0001, lr_D=0.0004" in out and "TTUR_G-s0" in out and "-s1" not in out  # tiny: 1 seed
    assert "dataset: synthetic mini-iPER" in out and "generated SMPL-format body model" in out
    assert command_run(args(study=None, steps=5)) == 0
    out = capsys.readouterr().out
    assert "study ensembles" in out and "E3-s1" in out and "spectral_norm=true" in out and "dry run: nothing was started" in out
    assert [ln.split()[0] for ln in out.splitlines() if ln.startswith(("baseline-", "E"))][:4] == ["baseline-s0", "baseline-s1", "baseline-s2", "E1-s0"]


def test_paper_profile_says_exactly_what_is_missing(capsys, tmp_path):
    assert command_run(args(study=str(STUDIES / "spectral_norm.yaml"), profile="paper")) == 0
    out = capsys.readouterr().out
    assert "missing data_root, body_model, vgg_weights, face_weights" in out and "256 px" in out
    assert main(["run", str(STUDIES / "spectral_norm.yaml"), "--profile", "paper", "--storage", str(tmp_path)]) == 2
    assert "missing data_root" in capsys.readouterr().err
    # With the assets given in the study, the dry run names the real paths and whether they exist.
    data = yaml.safe_load((STUDIES / "spectral_norm.yaml").read_text())
    data["profiles"]["paper"] = {"data_root": str(tmp_path), "body_model": str(tmp_path / "smpl.npz"),
                                 "vgg_weights": str(tmp_path / "vgg.pth"), "face_weights": str(tmp_path / "sf.pth")}
    path = write(tmp_path, data, "paper.yaml")
    resolved = resolve_study(load_study(path), "paper")
    text = plan_text(resolved)
    assert f"iPER-format folder {tmp_path} (found)" in text and "smpl.npz (MISSING)" in text and "cannot run" not in text


def test_search_space_is_conditional_and_starts_at_the_baseline():
    spec = load_study(STUDIES / "search.yaml")
    resolved = resolve_study(spec, "tiny")
    point = search_baseline_point(spec, resolved.baseline)
    assert point["use_gp"] is False and "gp_weight" not in point and point["lr_G"] == 2e-4 and point["lambda_face"] == 5.0
    assert point["use_style"] is False and "lambda_style" not in point  # style is off in the baseline (reference script)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    space = DefineByRun(spec.search)
    study.enqueue_trial(point)
    seen_gp = {True: 0, False: 0}
    for i in range(30):
        trial = study.ask()
        space(trial)
        params = trial.params
        if i == 0:
            assert config_values(params) == {k: v for k, v in point.items() if k not in ("use_gp", "use_style")}
        assert ("gp_weight" in params) == params["use_gp"] and ("lambda_style" in params) == params["use_style"]
        seen_gp[params["use_gp"]] += 1
        if "gp_weight" in params:
            assert 0.5 <= params["gp_weight"] <= 20
        assert 5e-5 <= params["lr_G"] <= 1e-3 and 0.8 <= params["label_smoothing"] <= 1.0
        assert "use_gp" not in config_values(params) and "use_style" not in config_values(params)
        study.tell(trial, 0.0)
    assert seen_gp[True] > 0 and seen_gp[False] > 0
