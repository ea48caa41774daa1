"""The claims: list of a study file: what it accepts, the errors it gives (file, key path, allowed values,
exit code 2), the shipped studies' claims, seed_offset, and run's warning below 3 seeds."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest
import yaml

from lwgan import vocab
from lwgan.cli import main
from lwgan.study.claims import claim_metrics
from lwgan.study.commands import command_run
from lwgan.study.spec import StudyError, load_study, parse_study, resolve_study

STUDIES = Path(__file__).resolve().parents[1] / "lwgan" / "studies"
BASE = {"name": "s", "variants": {"E2": {"lr_G": 4e-4}, "E3": {"spectral_norm": True}}}


def claim(**form):
    kind = "delta" if "paper" in form else "compare"
    return {"id": "c1", "statement": "E3 is better", "section": "3.6", kind: form}


def parse(*claims):
    return parse_study({**BASE, "claims": list(claims)}, "f.yaml")


def test_delta_and_compare_claims_parse():
    spec = parse(claim(variant="E2", metric=vocab.G_FACE, paper="-2.03%"),
                 {**claim(variant="E3", against="E2", metric=vocab.STABILITY_SWING_G, direction="lower"), "id": "c2"},
                 {**claim(variant="E3", metric=vocab.EVAL_SSIM, paper=0.02), "id": "c3"})
    d, c, a = spec.claims
    assert (d.kind, d.variant, d.against, d.metric, d.paper, d.relative, d.direction) == (
        vocab.ClaimKind.DELTA, "E2", vocab.BASELINE, vocab.G_FACE, -2.03, True, "lower")
    assert (c.kind, c.variant, c.against, c.direction, c.paper) == (vocab.ClaimKind.COMPARE, "E3", "E2", "lower", None)
    assert (a.paper, a.relative, a.direction, a.paper_text()) == (0.02, False, "higher", "+0.02")


@pytest.mark.parametrize("claims, key, allowed", [
    ([claim(variant="E9", metric=vocab.G_FACE, paper="-1%")], "claims[0].delta.variant", "E2 | E3"),
    ([claim(variant="E2", metric="loss/G_fcae", paper="-1%")], "claims[0].delta.metric", vocab.G_FACE),
    ([claim(variant="E2", metric=vocab.G_FACE, paper="-1 percent")], "claims[0].delta.paper", "-12.80%"),
    ([claim(variant="E2", metric=vocab.G_FACE, paper="0%")], "claims[0].delta.paper", "nonzero"),
    ([claim(variant="E2", against="E2", metric=vocab.G_FACE, direction="lower")], "claims[0].compare.against", "another variant"),
    ([claim(variant="E2", against="baseline", metric=vocab.G_FACE, direction="better")], "claims[0].compare.direction", "lower | higher"),
    ([claim(variant="E2", against="baseline", metric=vocab.G_FACE)], "claims[0].compare.direction", "variant, against"),
    ([{**claim(variant="E2", metric=vocab.G_FACE, paper="-1%"), "colour": 1}], "claims[0].colour", "id, statement"),
    ([{"id": "x", "statement": "s", "section": "3"}], "claims[0]", "delta | compare"),
    ([claim(variant="E2", metric=vocab.G_FACE, paper="-1%")] * 2, "claims[1].id", "unique"),
    ([{**claim(variant="E2", metric=vocab.G_FACE, paper="-1%"), "statement": ""}], "claims[0].statement", "a string"),
    ({"id": "x"}, "claims", "a list"),
])
def test_bad_claims_name_the_key_path(claims, key, allowed):
    with pytest.raises(StudyError) as err:
        parse_study({**BASE, "claims": claims}, "f.yaml")
    assert err.value.key == key and allowed in err.value.allowed and str(err.value).startswith("f.yaml: " + key)


def test_a_bad_claim_stops_validate_with_exit_code_2(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**BASE, "claims": [claim(variant="E2", metric="eval/fid_typo", paper="-1%")]}))
    assert main(["validate", str(path)]) == 2
    assert "claims[0].delta.metric: unknown metric 'eval/fid_typo'" in capsys.readouterr().err


def test_shipped_studies_carry_the_papers_claims():
    spec = load_study(STUDIES / "ensembles.yaml")
    table1 = [c for c in spec.claims if c.id.startswith("T1.")]
    assert len(table1) == 12 and spec.seeds == (0, 1, 2)
    by_id = {c.id: c for c in spec.claims}
    assert (by_id["T1.E1.rec"].paper, by_id["T1.E3.rec"].paper, by_id["T1.E4.face"].paper) == (-16.54, 32.28, -3.37)
    assert {c.id.split(".")[0] for c in spec.claims} >= {"H_E1", "H_E2", "H_E3", "H_E4"}
    h3 = by_id["H_E3.swing"]
    assert (h3.variant, h3.against, h3.metric, h3.direction) == ("E3", "E2", vocab.STABILITY_SWING_G, "lower")
    for name in ("label_smoothing", "gradient_penalty", "spectral_norm", "ttur", "loss_weights"):
        assert load_study(STUDIES / f"{name}.yaml").claims, name
    assert set(c.metric for c in spec.claims) <= set(claim_metrics())


def test_seed_offset_runs_a_copy_on_other_seeds():
    spec = parse_study({**BASE, "variants": {**BASE["variants"], "copy": {"seed_offset": 100}}, "seeds": 2}, "f.yaml")
    trials = {t.trial_id: t for t in resolve_study(spec, "tiny").trials}
    assert {"copy-s100", "copy-s101", "baseline-s0", "baseline-s1"} <= set(trials)
    assert trials["copy-s100"].overrides == {} and trials["copy-s100"].config["seed"] == 100
    with pytest.raises(StudyError, match="seed_offset"):
        parse_study({**BASE, "variants": {"copy": {"seed_offset": -1}}}, "f.yaml")


def test_run_warns_before_starting_with_fewer_than_three_seeds(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**BASE, "claims": [claim(variant="E2", metric=vocab.G_FACE, paper="-1%")]}))
    args = argparse.Namespace(study=str(path), profile="tiny", seeds=2, steps=None, sets=None, dry_run=True, resume=False, storage=str(tmp_path))
    out = io.StringIO()
    assert command_run(args, stream=out) == 0
    assert "warning: 2 seeds per variant: no significance test will be possible" in out.getvalue()
    assert "none of its 1 claims can get a verdict" in out.getvalue()
    assert "1 claims (1 delta): the report tests each and gives a verdict" in out.getvalue()
    args.seeds = 3
    out = io.StringIO()
    command_run(args, stream=out)
    assert "warning" not in out.getvalue()


def test_a_search_takes_no_claims():
    with pytest.raises(StudyError) as err:
        parse_study({"name": "s", "search": {"lr_G": {"type": "log_uniform", "low": 1e-5, "high": 1e-3}},
                     "claims": [claim(variant="E2", metric=vocab.G_FACE, paper="-1%")]}, "f.yaml")
    assert err.value.key == "claims"
