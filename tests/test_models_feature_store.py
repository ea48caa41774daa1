"""Target features shared on disk between runs (lwgan.models.feature_store): a read is what the run
would have computed, bit for bit; anything that could change the bits leads to another folder or a miss."""

import torch

from lwgan.models import build_vgg19
from lwgan.fingerprint import compute_environment, module_digest
from lwgan.models.feature_store import DiskFeatureStore
from lwgan.models.target_features import TargetFeatures
from test_models_target_features import BOXES, images, nets  # noqa: F401  (nets is a fixture)

CPU = torch.device("cpu")


class Counting(torch.nn.Module):
    """A net that counts its forwards (how many frames were computed rather than read)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, 0
        self.input_size = getattr(net, "input_size", None)

    def forward(self, x):
        self.calls += x.shape[0]
        return self.net(x)


def test_a_second_run_reads_every_frame_and_gets_the_same_bits(nets, tmp_path):
    vgg, face = nets
    frames, keys = images(3, 0), ["v/0", "v/1", "v/2"]
    first = TargetFeatures(Counting(vgg), Counting(face), max_bytes=1 << 30, shared_dir=tmp_path)
    want_vgg, want_face = first.vgg(frames, keys), first.face(frames, BOXES, keys)
    assert first.vgg_net.calls == 3 and first.face_net.calls == 3 and first.store("vgg").writes == 3

    second = TargetFeatures(Counting(vgg), Counting(face), max_bytes=1 << 30, shared_dir=tmp_path)
    got_vgg, got_face = second.vgg(frames, keys), second.face(frames, BOXES, keys)
    assert second.vgg_net.calls == 0 and second.face_net.calls == 0  # all read from disk
    assert second.store("vgg").hits == 3 and second.store("face").hits == 3
    for got, want in zip([*got_vgg, *got_face], [*want_vgg, *want_face], strict=True):
        assert got.dtype == want.dtype and torch.equal(got, want)
    # ... and what a run without the store computes.
    plain = TargetFeatures(vgg, face, max_bytes=0)
    for got, want in zip(got_vgg, plain.vgg(frames, None), strict=True):
        assert torch.equal(got, want)
    # Read once from disk, then from memory.
    second.vgg(frames[:1], keys[:1])
    assert second.store("vgg").hits == 3 and second.vgg_cache.hits == 1


def test_another_image_or_box_under_the_same_key_is_recomputed(nets, tmp_path):
    vgg, face = nets
    keys = ["v/0", "v/1", "v/2"]
    TargetFeatures(Counting(vgg), Counting(face), 1 << 30, tmp_path).face(images(3, 0), BOXES, keys)
    other = TargetFeatures(Counting(vgg), Counting(face), 1 << 30, tmp_path)
    moved = BOXES.clone()
    moved[1, 0] += 1
    feats = other.face(images(3, 0), moved, keys)
    assert other.face_net.calls == 1 and other.store("face").hits == 2  # only the frame whose box moved
    with torch.no_grad():
        fresh = TargetFeatures(face=face, vgg=vgg, max_bytes=0).face(images(3, 0), moved, None)
    for a, b in zip(feats, fresh, strict=True):
        assert torch.equal(a, b)
    other.vgg(images(3, 5), keys)  # other images: all three computed
    assert other.vgg_net.calls == 3 and other.store("vgg").hits == 0


def test_the_folder_names_weights_precision_and_threads(nets, tmp_path):
    vgg, _ = nets
    store = DiskFeatureStore(tmp_path, "vgg", module_digest(vgg), 1 << 30)
    base = store.folder(CPU)
    assert store.folder(CPU) == base  # stable
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert store.folder(CPU) != base
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        assert store.folder(CPU) != base
    finally:
        torch.set_num_threads(threads)
    changed = build_vgg19(None)[0]
    with torch.no_grad():
        changed.features[0].bias[0] += 1e-3
    assert module_digest(changed) != module_digest(vgg)
    assert DiskFeatureStore(tmp_path, "vgg", module_digest(changed), 1 << 30).folder(CPU) != base
    env = compute_environment(CPU)
    assert env["threads"] == str(threads) and env["autocast"] == "off" and env["torch"] == torch.__version__


def test_a_torn_or_foreign_entry_is_a_miss_and_the_budget_stops_writes(nets, tmp_path):
    vgg, _ = nets
    frame = images(1, 3)
    store = DiskFeatureStore(tmp_path, "vgg", module_digest(vgg), 1 << 30)
    feats = [torch.ones(2, 3), torch.zeros(4)]
    assert store.put("k", (frame,), feats, CPU)
    entry = next(store.folder(CPU).glob("*.pt"))
    assert [torch.equal(a, b) for a, b in zip(store.get("k", (frame,), CPU), feats)] == [True, True]
    assert store.get("k", (frame + 1,), CPU) is None  # another image under the key
    assert store.get("other", (frame,), CPU) is None  # nothing there
    entry.write_bytes(entry.read_bytes()[:40])  # a run killed mid-write (only a rename could do this)
    assert store.get("k", (frame,), CPU) is None
    assert [p.name for p in store.folder(CPU).iterdir()] == [entry.name]  # no temporary file left behind

    small = DiskFeatureStore(tmp_path / "small", "vgg", "w", max_bytes=2 * frame.numel() * 4)
    assert small.put("a", (frame,), [frame], CPU)  # exactly the budget
    assert not small.put("b", (frame,), [frame], CPU)  # the folder is full
    assert small.writes == 1 and small.get("b", (frame,), CPU) is None


def test_no_store_without_a_folder_or_with_the_cache_off(nets, tmp_path):
    vgg, face = nets
    assert TargetFeatures(vgg, face, 1 << 30).store("vgg") is None
    off = TargetFeatures(vgg, face, 0, tmp_path)
    off.vgg(images(1, 0), ["a"])
    assert off.store("vgg") is None and not any(tmp_path.iterdir())


def test_training_is_the_same_with_warm_shared_folders(tmp_path, monkeypatch):
    """Two tiny runs share folders of target features and correspondences (the second reads what the
    first wrote); a third has none: the three give identical losses and weights."""
    from lwgan.profiles import resolve_config
    from lwgan.train.metrics_log import read_metrics
    from lwgan.train.trainer import Trainer

    monkeypatch.setenv("LWGAN_CACHE", str(tmp_path / "cache"))
    shared = tmp_path / "shared"
    runs = {}
    for name, folder in (("writes", shared), ("reads", shared), ("none", None)):
        cfg = resolve_config("tiny", {"max_steps": 4, "device": "cpu", "num_threads": 1, "eval_every": 4,
                                      "sample_every": 4, "checkpoint_every": 4,
                                      "target_cache_dir": str(folder / "targets") if folder else None,
                                      "correspondence_cache_dir": str(folder / "corr") if folder else None})
        trainer = Trainer(cfg, tmp_path / name, progress=False)
        trainer.fit()
        runs[name] = (trainer, [r for r in read_metrics(tmp_path / name / "metrics.jsonl") if r["step"] > 0])
    reads = runs["reads"][0].objective.targets
    assert runs["writes"][0].objective.targets.store("vgg").writes > 0
    assert reads.store("vgg").hits > 0 and reads.store("vgg").writes == 0 and reads.store("face").hits > 0
    # Every frame the reader drew had been rendered by the writer: none rendered again.
    written, read = runs["writes"][0].geometry.cache, runs["reads"][0].geometry.cache
    assert written.misses > 0 and read.hits > 0 and read.misses == 0
    assert runs["none"][0].geometry.cache.folder is None
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]  # noqa: E731
    assert strip(runs["reads"][1]) == strip(runs["none"][1]) == strip(runs["writes"][1])
    for name, tensor in runs["none"][0].G.state_dict().items():
        assert torch.equal(tensor, runs["reads"][0].G.state_dict()[name]), name
