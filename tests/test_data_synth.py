"""The synthetic mini-iPER end to end: written in the iPER layout, read back by the reader, deterministic, cached."""

from __future__ import annotations

import argparse
import json
import pickle
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lwgan.config import DataConfig
from lwgan.data import cache as cache_mod
from lwgan.data.check import check_dataset
from lwgan.data.commands import command_synth
from lwgan.data.contact_sheet import contact_sheet
from lwgan.data.iper import IPERDataset
from lwgan.data.layout import list_frames, load_pose_shape, video_images_dir, video_pkl_path
from lwgan.data.synth import split_videos, synthesize_iper
from lwgan.errors import DataError

SIZE, SUBJECTS, FRAMES = 64, 2, 6


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return synthesize_iper(tmp_path_factory.mktemp("synth") / "a", subjects=SUBJECTS, frames=FRAMES, size=SIZE, seed=7)


def test_layout_and_description(synth):
    assert (synth / "train.txt").read_text().split() == ["001/1/1", "001/1/2"]
    assert (synth / "val.txt").read_text().split() == ["002/1/1", "002/1/2"]
    for video in ["001/1/1", "001/1/2", "002/1/1", "002/1/2"]:
        frames = list_frames(video_images_dir(synth, video))
        assert [f.name for f in frames] == [f"{i:03d}.jpg" for i in range(FRAMES)]
        img = cv2.imread(str(frames[0]))
        assert img.shape == (SIZE, SIZE, 3)
        with open(video_pkl_path(synth, video), "rb") as fh:
            raw = pickle.load(fh)
        assert sorted(raw) == ["cams", "pose", "shape"]
        assert raw["cams"].shape == (FRAMES, 3) and raw["pose"].shape == (FRAMES, 72) and raw["shape"].shape == (FRAMES, 10)
        assert raw["pose"].dtype == np.float32
        assert np.all(raw["cams"][:, 0] > 0)
        assert np.allclose(raw["shape"], raw["shape"][:1])  # one body shape per subject
    info = json.loads((synth / "synth.json").read_text())
    assert info["synthetic"] is True and info["seed"] == 7 and info["image_size"] == SIZE
    assert "SYNTHETIC" in (synth / "README.txt").read_text()


def test_reader_round_trip(synth):
    report = check_dataset(synth, full_decode=True)
    assert report.ok, report.problems
    assert report.subjects == ["001", "002"] and report.num_frames == 4 * FRAMES
    train = IPERDataset(synth, "train", image_size=32)
    val = IPERDataset(synth, "val", image_size=32)
    assert len(train) == 2  # videos under 10 frames count one pair each
    item = val.fixed_pairs(3, seed=0)[0]
    assert item["src_img"].shape == (3, 32, 32) and item["src_smpl"].shape == (85,)
    assert -1.0 <= item["src_img"].min() and item["src_img"].max() <= 1.0
    assert item["src_img"].std() > 0.1


def test_turn_and_action_poses(synth):
    turn = load_pose_shape(video_pkl_path(synth, "001/1/1"))
    action = load_pose_shape(video_pkl_path(synth, "001/1/2"))
    assert np.allclose(turn.pose[:, 3:], turn.pose[:1, 3:], atol=1e-6)  # A-pose held
    assert not np.allclose(turn.pose[:, :3], turn.pose[:1, :3])  # while turning
    assert np.abs(np.diff(action.pose[:, 3:], axis=0)).max() > 0.01  # joints move
    np.testing.assert_allclose(turn.pose[0, :3], [np.pi, 0, 0], atol=1e-5)  # HMR flip, facing the camera


def test_frames_show_the_body_where_the_pkl_says(synth):
    """The silhouette rendered from the pkl's cam/pose/shape has its own colours: the frame changes across it."""
    from lwgan.body import load_body_model, ndc_to_pixels, project
    from lwgan.render import rasterize

    body = load_body_model(None)
    seq = load_pose_shape(video_pkl_path(synth, "002/1/2"))
    frames = list_frames(video_images_dir(synth, "002/1/2"))
    with torch.no_grad():
        verts = body(torch.from_numpy(seq.pose), torch.from_numpy(seq.shape)).vertices
        proj = project(verts, torch.from_numpy(seq.cams))
        verts_px = torch.cat([ndc_to_pixels(proj[..., :2], SIZE), proj[..., 2:]], -1)
        mask = (rasterize(verts_px, body.faces, SIZE).face_index >= 0).numpy()
    for n in range(FRAMES):
        m = mask[n]
        rows = np.nonzero(m.any(1))[0]
        assert 0.1 < m.mean() < 0.6
        assert 0.7 * SIZE < rows[-1] - rows[0] + 1 <= SIZE  # fills the frame's height like iPER
        img = cv2.imread(str(frames[n])).astype(np.float64)
        # The whole body interior differs from a background estimated around it.
        ring = cv2.dilate(m.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~m
        inner = cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert np.abs(img[inner].mean(0) - img[ring].mean(0)).max() > 8 or img[inner].std() > 2 * img[ring].std()


def test_deterministic_by_seed(synth, tmp_path):
    again = synthesize_iper(tmp_path / "b", subjects=SUBJECTS, frames=FRAMES, size=SIZE, seed=7)
    other = synthesize_iper(tmp_path / "c", subjects=1, frames=FRAMES, size=SIZE, seed=8)
    for video in ["001/1/1", "002/1/2"]:
        assert video_pkl_path(synth, video).read_bytes() == video_pkl_path(again, video).read_bytes()
        for a, b in zip(list_frames(video_images_dir(synth, video)), list_frames(video_images_dir(again, video))):
            assert np.array_equal(cv2.imread(str(a)), cv2.imread(str(b)))
    assert video_pkl_path(synth, "001/1/1").read_bytes() != video_pkl_path(other, "001/1/1").read_bytes()
    assert (synth / "synth.json").read_text() == (again / "synth.json").read_text()


def test_refuses_to_overwrite(synth):
    with pytest.raises(DataError, match="already holds a dataset"):
        synthesize_iper(synth, subjects=1, frames=2, size=32)


def test_split_videos():
    assert split_videos(1) == (["001/1/1"], ["001/1/2"])
    train, val = split_videos(3)
    assert train == ["001/1/1", "001/1/2", "002/1/1", "002/1/2"] and val == ["003/1/1", "003/1/2"]


def test_contact_sheet(synth, tmp_path):
    out = contact_sheet(synth, "001", tmp_path / "sheet.png", columns=4)
    sheet = cv2.imread(str(out))
    assert sheet.shape == (2 * SIZE, 4 * SIZE, 3)


def test_command_synth(tmp_path, capsys):
    args = argparse.Namespace(out=str(tmp_path / "d"), subjects=1, frames=2, size=32, seed=0, body_model=None)
    assert command_synth(args) == 0
    out = capsys.readouterr().out
    assert "1 subjects, 2 videos, 4 frames of 32x32 px" in out
    assert check_dataset(tmp_path / "d").ok


def test_ensure_synthetic_dataset_caches_atomically(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LWGAN_CACHE", str(tmp_path / "cache"))
    calls = []
    real = cache_mod.synthesize_iper

    def counting(out, **kwargs):
        calls.append(out)
        return real(out, **kwargs)

    monkeypatch.setattr(cache_mod, "synthesize_iper", counting)
    cfg = DataConfig(synth_subjects=1, synth_frames=2, synth_size=32, synth_seed=3)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache_mod.ensure_synthetic_dataset(cfg))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and results[0] == results[1]  # one writer, the other waited
    path = results[0]
    assert path.parent == tmp_path / "cache" / "synth" and check_dataset(path).ok
    assert not list(path.parent.glob(".tmp-*"))  # written to a temp folder, then renamed
    assert Path(calls[0]).name.startswith(".tmp-")
    assert cache_mod.ensure_synthetic_dataset(cfg) == path and len(calls) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("data: using the synthetic mini-iPER at") and lines[-1].endswith("cached)")
    other = cache_mod.ensure_synthetic_dataset(DataConfig(synth_subjects=1, synth_frames=2, synth_size=32, synth_seed=4))
    assert other != path and len(calls) == 2


def test_failed_generation_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("LWGAN_CACHE", str(tmp_path / "cache"))

    def crash(out, **kwargs):
        Path(out).mkdir(parents=True)
        (Path(out) / "train.txt").write_text("half\n")
        raise RuntimeError("boom")

    monkeypatch.setattr(cache_mod, "synthesize_iper", crash)
    with pytest.raises(RuntimeError, match="boom"):
        cache_mod.ensure_synthetic_dataset(DataConfig(synth_subjects=1, synth_frames=2, synth_size=32))
    assert [p.name for p in (tmp_path / "cache" / "synth").iterdir() if not p.name.endswith(".lock")] == []
