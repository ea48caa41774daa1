"""lwgan.study.packing: the last trials of an ablation share the slots so no core idles at the end;
and through Ray: three one-cpu trials on two cores really run at the same time, pointed at shared
per-frame folders (target features, correspondences) that are gone when the study ends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lwgan.study.commands import command_run
from lwgan.study.packing import pack_trials
from lwgan.study.runner import FRAME_CACHES, SHARED_FRAME_CACHES, fresh_frame_caches
from test_study_runner import STUB, env, load_state, run_args, study_file  # noqa: F401  (env is a fixture)

IDS = [f"t{i:02d}" for i in range(15)]


def test_fifteen_trials_on_two_slots_end_with_three_sharing():
    packing = pack_trials(IDS, 2, 1.0, may_share=True)
    assert packing.shared_tail == ("t12", "t13", "t14")
    assert packing.max_concurrent == 3
    assert [packing.cpu[t] for t in IDS[:12]] == [1.0] * 12
    assert [packing.cpu[t] for t in IDS[12:]] == [0.6666] * 3
    assert sum(packing.cpu[t] for t in packing.shared_tail) <= 2.0  # all three fit Ray's 2 CPUs at once
    assert packing.describe(2) == "the last 3 share the 2 slots"


@pytest.mark.parametrize("n,slots,cpu,tail,share", [
    (16, 2, 1.0, 0, None),    # waves come out even: nothing to share
    (2, 2, 1.0, 0, None),     # one wave
    (1, 2, 1.0, 0, None),     # fewer trials than slots: each has its own core already
    (3, 2, 1.0, 3, 0.6666),   # all three at once on two cores
    (9, 4, 1.0, 5, 0.8),      # 8 cores' worth of waves, the 9th joins the last wave of 4
    (11, 4, 1.0, 7, 0.5714),  # remainder 3: the last 7 share 4 slots
    (7, 4, 0.5, 7, 0.2857),   # half-cpu trials (4 slots on 2 cores): 7 share them
])
def test_the_rule(n, slots, cpu, tail, share):
    ids = IDS[:n] if n <= len(IDS) else [f"x{i}" for i in range(n)]
    packing = pack_trials(ids, slots, cpu, may_share=True)
    assert len(packing.shared_tail) == tail
    assert packing.shared_tail == tuple(ids[len(ids) - tail:]) if tail else packing.shared_tail == ()
    if share is None:
        assert set(packing.cpu.values()) == {cpu} and packing.max_concurrent == slots
    else:
        assert packing.cpu[ids[-1]] == pytest.approx(share, abs=1e-9)
        assert tail * packing.cpu[ids[-1]] <= slots * cpu + 1e-12  # never more than the slots hold
        assert packing.max_concurrent == tail
        assert all(packing.cpu[t] == cpu for t in ids[: n - tail])


def test_no_sharing_when_not_allowed():
    packing = pack_trials(IDS, 2, 1.0, may_share=False)
    assert packing.shared_tail == () and set(packing.cpu.values()) == {1.0} and packing.max_concurrent == 2
    assert packing.describe(2) == ""
    with pytest.raises(ValueError, match="slots must be >= 1"):
        pack_trials(IDS, 0, 1.0, may_share=True)


def test_three_trials_on_two_cores_run_together(env, tmp_path, monkeypatch, capsys):
    """Without packing the third trial starts when one of the first two ends; with it all three overlap."""
    monkeypatch.setattr("lwgan.study.runner.os.cpu_count", lambda: 2)
    monkeypatch.setenv("LWGAN_STUB_STEP_S", "0.25")  # 12 steps: ~3 s a trial, long beside Ray's scheduling
    path = study_file(tmp_path, {"a": {"lr_G": 3e-4}, "b": {"lr_G": 4e-4}})  # + baseline = 3 trials
    storage = tmp_path / "runs"
    assert command_run(run_args(path, storage, max_concurrent=None), trainer=STUB) == 0
    state = load_state(storage, "plumb")
    spans = [(r.started, r.ended) for r in state.trials.values()]
    assert all(r.state == "completed" for r in state.trials.values())
    assert max(s for s, _ in spans) < min(e for _, e in spans), f"not all three ran at once: {spans}"
    assert "3 trials to run, 2 at a time (the last 3 share the 2 slots)" in capsys.readouterr().err
    # The trials were pointed at the shared per-frame folders (target features, correspondences), removed
    # when the study ended.
    shared = state.path.parent / FRAME_CACHES
    for tid in state.trials:
        config = (state.path.parent / "trials" / tid / "config.yaml").read_text().splitlines()
        assert f"target_cache_dir: {(shared / 'target_features').resolve()}" in config
        assert f"correspondence_cache_dir: {(shared / 'correspondences').resolve()}" in config
    assert not shared.exists()


def test_the_shared_tail_reuses_the_actors_of_the_pairs(env, tmp_path, monkeypatch):
    """Five one-cpu trials on two cores: a pair, then the last three together. Every trial asks Ray
    for the same share, so the tail runs in the pair's two actors and one new one (three actors in
    all, not five); the pair still runs as a pair (the second trial of the tail waits for both of its
    trials to end), and the three of the tail all at once."""
    monkeypatch.setattr("lwgan.study.runner.os.cpu_count", lambda: 2)
    monkeypatch.setenv("LWGAN_STUB_STEP_S", "0.25")  # 12 steps: ~3 s a trial
    path = study_file(tmp_path, {f"v{i}": {"lr_G": (i + 3) * 1e-4} for i in range(4)})  # + baseline = 5
    storage = tmp_path / "runs"
    assert command_run(run_args(path, storage, max_concurrent=None), trainer=STUB) == 0
    state = load_state(storage, "plumb")
    assert all(r.state == "completed" for r in state.trials.values())
    order = sorted(state.trials.values(), key=lambda r: r.started)
    pids = [json.loads((state.path.parent / "trials" / r.trial_id / "run_info.json").read_text())["pid"] for r in order]
    assert len(set(pids)) == 3, f"actors per trial (in start order): {pids}"
    assert set(pids[:2]) < set(pids) and len(set(pids[:2])) == 2  # the first pair: two actors
    tail = order[2:]
    assert max(r.started for r in tail) < min(r.ended for r in tail), "the last three did not run at once"

    pair_ends = sorted(r.ended for r in order[:2])
    tail_starts = sorted(r.started for r in tail)
    assert tail_starts[0] >= pair_ends[0] - 0.5 and tail_starts[1] >= pair_ends[1] - 0.5, (pair_ends, tail_starts)


def test_fresh_frame_cache_folders_drop_what_a_killed_driver_left(tmp_path):
    stale = tmp_path / FRAME_CACHES / "target_features" / "vgg-0123" / "entry.pt"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    folders = fresh_frame_caches(tmp_path)
    assert set(folders) == set(SHARED_FRAME_CACHES) == {"target_cache_dir", "correspondence_cache_dir"}
    for key, folder in folders.items():
        assert folder == str((tmp_path / FRAME_CACHES / SHARED_FRAME_CACHES[key]).resolve())
        assert Path(folder).is_dir() and not any(Path(folder).iterdir())


def test_packed_order_admits_by_the_packing_and_keeps_run_order(tmp_path):
    """The searcher alone: a pair, then tail trials as the pair's cpu frees; Tune's ids map back."""
    from ray.tune.search import Searcher

    from lwgan.study.packed_order import PackedOrder

    ids = IDS[:5]
    order = PackedOrder(ids, pack_trials(ids, 2, 1.0, may_share=True))
    assert order.suggest("a") == {"trial_id": "t00"} and order.suggest("b") == {"trial_id": "t01"}
    assert order.suggest("c") is None  # a pair runs: no third trial
    order.on_trial_complete("a")
    assert order.suggest("c") == {"trial_id": "t02"}  # 1 + 2/3 of the 2 slots
    assert order.suggest("d") is None  # 1 + 4/3 does not fit
    order.on_trial_complete("b")
    assert order.suggest("d") == {"trial_id": "t03"} and order.suggest("e") == {"trial_id": "t04"}
    assert order.running == ("t02", "t03", "t04")
    assert order.suggest("f") == Searcher.FINISHED
    order.save(str(tmp_path / "searcher.json"))
    again = PackedOrder(ids, pack_trials(ids, 2, 1.0, may_share=True))
    again.restore(str(tmp_path / "searcher.json"))
    assert again.running == order.running and again.suggest("g") == Searcher.FINISHED
    with pytest.raises(ValueError, match=r"without a cpu share in the packing: \['zz'\]"):
        PackedOrder(["zz"], pack_trials(ids, 2, 1.0, may_share=True))
