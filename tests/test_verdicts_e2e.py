"""Power and false alarms end to end, through the real CLI (``lwgan-study run``, Ray, the Trainer, MLflow,
``lwgan-study report``) on the tiny profile, at the default 3 seeds:

- a **planted effect**: ``broken`` trains the generator at lr_G = 1 (Adam moves every weight by ~1 per
  step: the generator is wrecked within a few steps). The report must rank it worst on quality and mark
  it significant, and the claim that it is worse must be confirmed.
- a **null control**: ``copy`` is the baseline's config run on other seeds (seed_offset 100: identical
  seeds would give identical numbers and prove nothing). Nothing of it may be marked and no claim about
  it may be confirmed or contradicted.

Both arms share one study (one Ray start, one set of baseline runs). Every verdict is then recomputed
from data/claim_values.csv with scipy alone.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from scipy import stats as sps

from lwgan import vocab
from lwgan.cli import main
from lwgan.store import environment

ROOT = Path(__file__).resolve().parents[1]
STEPS = 12

STUDY = {
    "name": "verdicts-e2e",
    "description": "a planted effect (broken generator) and a null control (the baseline on other seeds)",
    "default_profile": "tiny",
    "seeds": 3,
    "base": {"eval_pairs": 8},
    "variants": {
        "broken": {"description": "generator wrecked: lr_G = 1", "lr_G": 1.0},
        "copy": {"description": "the baseline on seeds 100-102", "seed_offset": 100},
    },
    "claims": [
        {"id": "broken.psnr", "statement": "a wrecked generator gives worse transfers", "section": "test",
         "compare": {"variant": "broken", "against": "baseline", "metric": vocab.EVAL_PSNR, "direction": "lower"}},
        {"id": "broken.tsf", "statement": "a wrecked generator raises the perceptual loss", "section": "test",
         "compare": {"variant": "broken", "against": "baseline", "metric": vocab.G_TSF, "direction": "higher"}},
        {"id": "copy.face", "statement": "the copy lowers L_face by 12.80% (Table 1's E1 number)", "section": "test",
         "delta": {"variant": "copy", "metric": vocab.G_FACE, "paper": "-12.80%"}},
        {"id": "copy.ssim", "statement": "the copy transfers better", "section": "test",
         "compare": {"variant": "copy", "against": "baseline", "metric": vocab.EVAL_SSIM, "direction": "higher"}},
        {"id": "copy.total", "statement": "the copy has a lower total generator loss", "section": "test",
         "compare": {"variant": "copy", "against": "baseline", "metric": vocab.G_TOTAL, "direction": "lower"}},
    ],
}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verdicts")
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/ml.db", "LWGAN_EXPERIMENT": "verdicts-e2e", "LWGAN_HOME": str(tmp),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with environment(env):
        path = tmp / "study.yaml"
        path.write_text(yaml.safe_dump(STUDY, sort_keys=False))
        code = main(["run", str(path), "--steps", str(STEPS), "--storage", str(tmp / "runs"), "--no-report", "--max-concurrent", "2"])
        assert code == 0
        out = tmp / "report"
        assert main(["report", str(path), "--out", str(out), "--format", "md"]) == 0
        yield {"out": out, "uri": env["MLFLOW_TRACKING_URI"], "md": (out / "report.md").read_text()}


def _comparison(study) -> pd.DataFrame:
    return pd.read_csv(study["out"] / "data" / "comparison.csv")


@pytest.mark.slow
def test_planted_effect_is_ranked_worst_and_marked(study):
    comp = _comparison(study)
    broken = comp[comp["variant"] == "broken"]
    assert (broken["test"].dropna().replace("none", pd.NA).dropna() == "paired t").all()
    assert broken["marked"].any(), broken[["key", "p", "p_holm"]]
    psnr = comp[comp["key"] == vocab.EVAL_PSNR].set_index("variant")["var_mean"]
    assert psnr.idxmin() == "broken"
    ranking = next(line for line in study["md"].splitlines() if line.startswith("Ranking by PSNR"))
    assert ranking.split(":", 1)[1].split(",")[-1].strip().startswith("broken"), ranking  # worst, in the report's own words
    claims = pd.read_csv(study["out"] / "data" / "claims.csv").set_index("id")
    assert "confirmed" in set(claims.loc[["broken.psnr", "broken.tsf"], "verdict"])


@pytest.mark.slow
def test_null_copy_is_not_marked_and_no_claim_about_it_confirmed(study):
    comp = _comparison(study)
    copy = comp[comp["variant"] == "copy"]
    assert set(copy["test"]) <= {"Welch t", "none"} and (copy["test"] == "Welch t").any()  # other seeds: unpaired
    assert not copy["marked"].any(), copy[["key", "p", "p_holm"]]
    claims = pd.read_csv(study["out"] / "data" / "claims.csv").set_index("id")
    assert (claims.loc[["copy.face", "copy.ssim", "copy.total"], "verdict"] == "inconclusive").all()
    assert claims.loc["copy.face", "seeds_needed"] > 0  # it says how far it was from telling


@pytest.mark.slow
def test_verdicts_recompute_from_the_csvs_with_scipy_and_reach_mlflow(study):
    values = pd.read_csv(study["out"] / "data" / "claim_values.csv")
    claims = pd.read_csv(study["out"] / "data" / "claims.csv")
    ps = []
    for row in claims.to_dict("records"):
        a = values[(values["variant"] == row["variant"]) & (values["key"] == row["metric"])].set_index("seed")["value"]
        b = values[(values["variant"] == row["against"]) & (values["key"] == row["metric"])].set_index("seed")["value"]
        if row["test"] == "paired t":
            seeds = sorted(set(a.index) & set(b.index))
            p = sps.ttest_rel(a[seeds], b[seeds]).pvalue
        else:
            p = sps.ttest_ind(a, b, equal_var=False).pvalue
        assert p == pytest.approx(row["p"], rel=1e-6)
        ps.append(p)
    from statsmodels.stats.multitest import multipletests

    assert multipletests(ps, method="holm")[1] == pytest.approx(claims["p_holm"].to_numpy(), rel=1e-6)
    assert "## Scorecard: the paper's claims" in study["md"]
    assert study["md"].index("## Scorecard") < study["md"].index("## Design")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(study["uri"])
    exp = client.get_experiment_by_name("verdicts-e2e")
    parent = client.search_runs([exp.experiment_id], "tags.`lwgan.role` = 'study'")[0]
    tags = parent.data.tags
    for row in claims.to_dict("records"):
        assert tags[vocab.Tag.claim(row["id"])].startswith(row["verdict"])
    assert tags[vocab.Tag.CLAIMS_SUMMARY].endswith(f"of {len(claims)} claims")
    assert not any(str(ROOT) in line or os.path.expanduser("~") + "/" in line for line in study["md"].splitlines()), "machine paths"
    assert math.isfinite(claims["p"].iloc[0])
