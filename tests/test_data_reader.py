"""The iPER reader, pair sampling and dataset checker on small hand-written iPER folders."""

from __future__ import annotations

import argparse
import pickle
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lwgan.data.check import check_dataset, frame_header_problem
from lwgan.data.commands import command_check
from lwgan.data.iper import IPERDataset, read_image
from lwgan.data.layout import (
    SmplSequence,
    frame_name,
    list_frames,
    load_pose_shape,
    video_images_dir,
    video_pkl_path,
    write_pose_shape,
    write_video_list,
)
from lwgan.data.pairs import epoch_length, sample_pair
from lwgan.errors import DataError

TRAIN = {"001/1/1": 23, "001/1/2": 12, "002/1/1": 31}
VAL = {"003/1/1": 20}


def _write_video(root: Path, video: str, frames: int, size: int = 40) -> None:
    rng = np.random.default_rng(zlib.crc32(video.encode()))
    img_dir = video_images_dir(root, video)
    img_dir.mkdir(parents=True)
    for i in range(frames):
        img = np.zeros((size, size, 3), np.uint8)
        img[..., 0] = 8 * i  # blue channel (BGR on disk) holds 8 x the frame index
        img[..., 1] = 200
        img[..., 2] = 10
        assert cv2.imwrite(str(img_dir / frame_name(i, frames)), img)
    cams = np.tile([[0.9, 0.0, 0.1]], (frames, 1)) + np.arange(frames)[:, None] * [0.001, 0, 0]
    pose = rng.normal(0, 0.1, (frames, 72))
    pose[:, 0] = np.arange(frames)  # global_orient x holds the frame index
    shape = rng.normal(0, 1, (frames, 10))
    write_pose_shape(video_pkl_path(root, video), SmplSequence(cams, pose, shape))


def make_iper(root: Path, train=TRAIN, val=VAL) -> Path:
    for video, n in {**train, **val}.items():
        _write_video(root, video, n)
    write_video_list(root / "train.txt", list(train))
    write_video_list(root / "val.txt", list(val))
    return root


@pytest.fixture()
def iper(tmp_path: Path) -> Path:
    return make_iper(tmp_path / "iper")


# -- layout ---------------------------------------------------------------------


def test_pose_shape_round_trip(tmp_path):
    seq = SmplSequence(np.ones((4, 3)), np.zeros((4, 72)), np.full((4, 10), 0.5))
    write_pose_shape(tmp_path / "p.pkl", seq)
    with open(tmp_path / "p.pkl", "rb") as fh:
        raw = pickle.load(fh)
    assert sorted(raw) == ["cams", "pose", "shape"]
    assert all(v.dtype == np.float32 for v in raw.values())
    back = load_pose_shape(tmp_path / "p.pkl", expected_frames=4)
    assert back.packed().shape == (4, 85)
    np.testing.assert_array_equal(back.packed()[:, :3], 1.0)
    np.testing.assert_array_equal(back.packed()[:, 75:], 0.5)


def test_pose_shape_accepts_extra_keys_and_python2_pickles(tmp_path):
    data = {"cams": np.ones((2, 3)), "pose": np.zeros((2, 72)), "shape": np.zeros((2, 10)), "vertices": np.zeros((2, 5, 3))}
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps(data, protocol=2))
    assert len(load_pose_shape(path)) == 2


def test_frames_sort_numerically(tmp_path):
    for name in ["10.jpg", "9.jpg", "100.jpg", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_frames(tmp_path)] == ["9.jpg", "10.jpg", "100.jpg"]
    assert frame_name(7, 24) == "007.jpg" and frame_name(7, 2000) == "0007.jpg"


# -- pairs ----------------------------------------------------------------------


def test_epoch_length_is_reference_formula():
    assert epoch_length([23, 12, 31]) == 2 + 1 + 3
    assert epoch_length([9, 9]) == 2  # short videos count once (deviation; none in iPER)


def test_pair_sampling_rules_and_reproducibility():
    lengths = [23, 12, 31, 8]
    sources, targets = set(), set()
    for i in range(2000):
        p = sample_pair(lengths, i, seed=3)
        assert p.video == i % 4
        assert 0 <= p.source < min(15, lengths[p.video])
        assert 0 <= p.target < lengths[p.video]
        assert p == sample_pair(lengths, i, seed=3)
        if p.video == 2:
            sources.add(p.source)
            targets.add(p.target)
    assert sources == set(range(15))  # whole first-15 range is used
    assert targets == set(range(31))  # reference drawn from the whole video
    differ = sum(sample_pair(lengths, i, 3) != sample_pair(lengths, i, 4) for i in range(100))
    assert differ > 80


def test_distinct_pairs_never_repeat_the_source():
    for i in range(500):
        p = sample_pair([2, 17], i, seed=0, distinct=True)
        assert p.source != p.target


# -- dataset --------------------------------------------------------------------


def test_dataset_items(iper):
    ds = IPERDataset(iper, "train", image_size=32, seed=0)
    assert len(ds) == epoch_length(TRAIN.values()) == 6
    assert ds.video_names == list(TRAIN)
    item = ds[4]
    assert item["src_img"].shape == (3, 32, 32) and item["src_img"].dtype == torch.float32
    assert item["src_smpl"].shape == (85,) and item["tgt_smpl"].dtype == torch.float32
    for key in ("src_img", "tgt_img"):
        assert item[key].min() >= -1.0 and item[key].max() <= 1.0
    video, src = item["src_key"].rsplit("/", 1)
    video_t, tgt = item["tgt_key"].rsplit("/", 1)
    assert video == video_t == ds.video_names[4 % 3]
    assert int(src) < 15
    # Frame index is encoded in the blue channel (RGB channel 2) and in pose[0] (smpl index 3).
    for img, smpl, frame in ((item["src_img"], item["src_smpl"], int(src)), (item["tgt_img"], item["tgt_smpl"], int(tgt))):
        assert abs((img[2].mean().item() + 1) * 127.5 - 8 * frame) < 3.0
        assert (img[1].mean().item() + 1) * 127.5 == pytest.approx(200, abs=1.5)  # G stays G: BGR -> RGB
        assert smpl[3].item() == frame
    again = IPERDataset(iper, "train", image_size=32, seed=0)[4]
    assert torch.equal(again["tgt_img"], item["tgt_img"]) and again["tgt_key"] == item["tgt_key"]
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_dataset_seed_changes_pairs_and_fixed_pairs_are_stable(iper):
    keys0 = [IPERDataset(iper, "train", 16, seed=0)[i]["tgt_key"] for i in range(6)]
    keys1 = [IPERDataset(iper, "train", 16, seed=1)[i]["tgt_key"] for i in range(6)]
    assert keys0 != keys1
    val = IPERDataset(iper, "val", 16)
    a, b = val.fixed_pairs(5, seed=0), val.fixed_pairs(5, seed=0)
    assert [x["src_key"] + x["tgt_key"] for x in a] == [x["src_key"] + x["tgt_key"] for x in b]
    assert all(x["src_key"] != x["tgt_key"] for x in a)
    assert all(x["src_key"].startswith("003/1/1/") for x in a)


def test_dataloader_collates(iper):
    loader = torch.utils.data.DataLoader(IPERDataset(iper, "train", 16), batch_size=4, shuffle=True)
    batch = next(iter(loader))
    assert batch["src_img"].shape == (4, 3, 16, 16) and batch["tgt_smpl"].shape == (4, 85)
    assert len(batch["src_key"]) == 4


def test_read_image_resizes_and_scales(tmp_path):
    img = np.full((50, 70, 3), 255, np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    out = read_image(tmp_path / "a.png", 24)
    assert out.shape == (3, 24, 24) and out.dtype == np.float32
    np.testing.assert_allclose(out, 1.0)


def test_missing_frame_names_the_file(iper):
    (video_images_dir(iper, "002/1/1") / "005.jpg").unlink()
    with pytest.raises(DataError, match=r"002/1/1/pose_shape.pkl.*31 frames.*30 frames"):
        IPERDataset(iper, "train", 16)


def test_corrupt_frame_names_the_file(iper):
    bad = video_images_dir(iper, "001/1/2") / "000.jpg"
    bad.write_bytes(b"not a jpeg")
    ds = IPERDataset(iper, "train", 16)  # images are read lazily
    with pytest.raises(DataError, match=str(bad)):
        ds.item(1, 0, 3)


def test_corrupt_pkl_names_the_file(iper):
    pkl = video_pkl_path(iper, "001/1/1")
    pkl.write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match=rf"{pkl}: cannot unpickle"):
        IPERDataset(iper, "train", 16)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"cams": np.ones((23, 3)), "pose": np.zeros((23, 72))}, r"missing key\(s\) \['shape'\]"),
        ({"cams": np.ones((23, 3)), "pose": np.zeros((23, 69)), "shape": np.zeros((23, 10))}, r"'pose' has shape \(23, 69\)"),
        ({"cams": np.ones((23, 3)), "pose": np.zeros((22, 72)), "shape": np.zeros((23, 10))}, "frame counts differ"),
        ([1, 2, 3], "expected a dict"),
    ],
)
def test_bad_pkl_contents_name_file_and_key(iper, data, message):
    pkl = video_pkl_path(iper, "001/1/1")
    pkl.write_bytes(pickle.dumps(data))
    with pytest.raises(DataError, match=message) as info:
        IPERDataset(iper, "train", 16)
    assert str(pkl) in str(info.value)


def test_missing_split_and_empty_split(iper):
    (iper / "val.txt").unlink()
    with pytest.raises(DataError, match="val.txt: split file not found"):
        IPERDataset(iper, "val", 16)
    with pytest.raises(DataError, match="unknown split 'test'"):
        IPERDataset(iper, "test", 16)


# -- checker and CLI --------------------------------------------------------------


def test_check_clean_dataset(iper, capsys):
    report = check_dataset(iper)
    assert report.ok, report.problems
    assert report.subjects == ["001", "002", "003"]
    assert len(report.videos) == 4 and report.num_frames == sum(TRAIN.values()) + sum(VAL.values())
    assert report.frame_sizes == {(40, 40): 4}
    text = report.format()
    assert "no problems found" in text and "6 pairs per epoch" in text
    assert command_check(argparse.Namespace(dir=str(iper))) == 0
    assert "3 subjects" in capsys.readouterr().out


def test_check_reports_every_problem(iper, capsys):
    truncated = video_images_dir(iper, "001/1/1") / "003.jpg"
    truncated.write_bytes(truncated.read_bytes()[:-40])
    (video_images_dir(iper, "002/1/1") / "000.jpg").unlink()  # frame-count mismatch
    with open(video_pkl_path(iper, "003/1/1"), "wb") as fh:
        pickle.dump({"cams": np.ones((20, 3)), "pose": np.zeros((20, 72))}, fh)
    with open(iper / "val.txt", "a") as fh:
        fh.write("001/1/2\n")  # overlaps train
    report = check_dataset(iper)
    text = "\n".join(report.problems)
    assert len(report.problems) == 4, text
    assert f"{truncated}: truncated JPEG" in text
    assert "002/1/1/pose_shape.pkl: has 31 frames" in text
    assert "003/1/1/pose_shape.pkl: missing key(s) ['shape']" in text
    assert "001/1/2 is also in train.txt" in text
    assert command_check(argparse.Namespace(dir=str(iper))) == 1
    assert "4 problem(s)" in capsys.readouterr().out


def test_check_missing_folder(tmp_path):
    report = check_dataset(tmp_path / "nope")
    assert not report.ok and "dataset folder not found" in report.problems[0]


def test_frame_header_problem(tmp_path):
    ok = tmp_path / "ok.png"
    cv2.imwrite(str(ok), np.zeros((4, 4, 3), np.uint8))
    assert frame_header_problem(ok) is None
    (tmp_path / "e.jpg").write_bytes(b"")
    assert frame_header_problem(tmp_path / "e.jpg") == "empty file"
    (tmp_path / "t.png").write_bytes(ok.read_bytes()[:-12])
    assert "truncated PNG" in frame_header_problem(tmp_path / "t.png")
