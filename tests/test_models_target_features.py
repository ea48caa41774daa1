"""Per-frame target features (lwgan.models.target_features): the cache changes speed, never values."""

import warnings

import pytest
import torch

from lwgan.models import build_sphereface, build_vgg19
from lwgan.models.losses import crop_and_resize
from lwgan.models.target_features import FrameFeatureCache, TargetFeatures

SIZE = 32


@pytest.fixture(scope="module")
def nets():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_vgg19(None)[0], build_sphereface(None, crop=28)[0]


def images(n, seed):
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


BOXES = torch.tensor([[4, 2, 20, 18], [8, 0, 30, 20], [0, 0, 32, 32]])


def test_features_of_a_frame_do_not_depend_on_its_batch_or_the_cache(nets):
    vgg, face = nets
    frames = images(3, 0)
    keys = ["v/0", "v/1", "v/2"]
    cold = TargetFeatures(vgg, face, max_bytes=0)
    warm = TargetFeatures(vgg, face, max_bytes=1 << 30)
    batch = warm.vgg(frames, keys)
    # Frame 1 alone, uncached, equals its row in the cached batch of three (bit for bit).
    alone = cold.vgg(frames[1:2], None)
    for level_batch, level_alone in zip(batch, alone, strict=True):
        assert torch.equal(level_batch[1:2], level_alone)
    # Each level is the network's own output for that frame (computed on its own).
    with torch.no_grad():
        direct = vgg(frames[2:3])
    for level, ref in zip(batch, direct, strict=True):
        assert torch.equal(level[2:3], ref)
    # A second call is served from memory and gives the same tensors.
    again = warm.vgg(frames[[2, 0]], ["v/2", "v/0"])
    assert warm.vgg_cache.hits == 2 and warm.vgg_cache.misses == 3
    for level_again, level_batch in zip(again, batch, strict=True):
        assert torch.equal(level_again, level_batch[[2, 0]])


def test_face_features_are_those_of_the_head_crop(nets):
    vgg, face = nets
    frames = images(3, 1)
    feats = TargetFeatures(vgg, face, max_bytes=1 << 30).face(frames, BOXES, ["a", "b", "c"])
    with torch.no_grad():
        ref = face(crop_and_resize(frames[1:2], BOXES[1:2], face.input_size))
    assert len(feats) == len(ref) == 5  # four stages and the embedding
    for level, expected in zip(feats, ref, strict=True):
        assert level.shape[0] == 3 and torch.equal(level[1:2], expected)


def test_a_key_with_another_image_or_box_is_recomputed(nets):
    vgg, face = nets
    targets = TargetFeatures(vgg, face, max_bytes=1 << 30)
    first = targets.face(images(1, 2), BOXES[:1], ["same"])
    other_image = targets.face(images(1, 3), BOXES[:1], ["same"])
    other_box = targets.face(images(1, 3), BOXES[1:2], ["same"])
    assert targets.face_cache.hits == 0 and targets.face_cache.misses == 3
    assert not torch.equal(first[-1], other_image[-1])
    assert not torch.equal(other_image[-1], other_box[-1])
    with torch.no_grad():
        expected = face(crop_and_resize(images(1, 3), BOXES[1:2], face.input_size))[-1]
    assert torch.equal(other_box[-1], expected)


def test_the_byte_budget_evicts_least_recent_frames_and_recomputes_the_same_values(nets):
    vgg, _ = nets
    one = TargetFeatures(vgg, None, max_bytes=1 << 30)
    one.vgg(images(1, 0), ["x"])
    per_frame = one.vgg_cache.nbytes
    small = TargetFeatures(vgg, None, max_bytes=2 * per_frame)  # room for two frames
    frames = images(3, 0)
    first = small.vgg(frames, ["a", "b", "c"])
    assert len(small.vgg_cache) == 2 and small.vgg_cache.nbytes <= 2 * per_frame
    again = small.vgg(frames[:1], ["a"])  # "a" was the least recent: evicted, computed again
    assert small.vgg_cache.hits == 0 and small.vgg_cache.misses == 4
    assert all(torch.equal(x, y[:1]) for x, y in zip(again, first, strict=True))
    assert small.vgg(frames[2:], ["c"]) is not None and small.vgg_cache.hits == 1


def test_cache_arguments_are_checked(nets):
    vgg, face = nets
    with pytest.raises(ValueError, match="2 keys for 3 images"):
        TargetFeatures(vgg, face, 1 << 20).vgg(images(3, 0), ["a", "b"])
    cache = FrameFeatureCache(max_bytes=10)
    cache.put("big", (torch.zeros(4),), [torch.zeros(100)])  # larger than the whole budget: not kept
    assert len(cache) == 0 and cache.nbytes == 0


def test_training_losses_are_the_same_with_and_without_the_cache(tmp_path, monkeypatch):
    """Four tiny steps with the cache (default) and with target_cache_mb = 0: identical losses and weights."""
    from lwgan.profiles import resolve_config
    from lwgan.train.metrics_log import read_metrics
    from lwgan.train.trainer import Trainer

    monkeypatch.setenv("LWGAN_CACHE", str(tmp_path / "cache"))
    runs = {}
    for name, mb in (("cached", 1024), ("off", 0)):
        cfg = resolve_config("tiny", {"max_steps": 6, "device": "cpu", "num_threads": 1, "eval_every": 3,
                                      "sample_every": 6, "checkpoint_every": 6, "target_cache_mb": mb})
        trainer = Trainer(cfg, tmp_path / name, progress=False)
        trainer.fit()
        runs[name] = (trainer, [r for r in read_metrics(tmp_path / name / "metrics.jsonl") if r["step"] > 0])
    cached, off = runs["cached"], runs["off"]
    assert cached[0].objective.targets.vgg_cache.hits > 0  # frames were drawn again and served from memory
    assert off[0].objective.targets.vgg_cache.hits == 0 and len(off[0].objective.targets.vgg_cache) == 0
    for a, b in zip(cached[1], off[1], strict=True):
        assert {k: v for k, v in a.items() if not k.startswith("perf/")} == {k: v for k, v in b.items() if not k.startswith("perf/")}
    for name, tensor in cached[0].G.state_dict().items():
        assert torch.equal(tensor, off[0].G.state_dict()[name]), name


def test_byte_lru_evicts_least_recently_used_and_keeps_the_newest():
    from lwgan.lru import ByteLRU

    lru = ByteLRU(max_bytes=10, nbytes=len)
    lru.put("a", "xxxx")
    lru.put("b", "yyyy")
    assert lru.get("a") == "xxxx"  # a look is not a use: "a" is still the least recent
    lru.put("c", "zzzz")  # 12 > 10: "a" leaves
    assert lru.get("a") is None and len(lru) == 2 and lru.nbytes == 8
    lru.touch("b")  # now "c" is the least recent
    lru.put("d", "www")  # 11 > 10: "c" leaves
    assert lru.get("c") is None and lru.get("b") == "yyyy" and lru.nbytes == 7
    lru.put("b", "y")  # replacing an entry re-weighs it
    assert lru.nbytes == 4
    lru.put("big", "q" * 25)  # larger than the budget: everything else leaves, the newest stays
    assert len(lru) == 1 and lru.get("big") == "q" * 25 and lru.nbytes == 25
