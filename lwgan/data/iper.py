"""The iPER-format dataset: source/reference pairs of frames from one video with their SMPL parameters.

SMPL pkls are read (and checked against the frame folders) once at construction;
images are read lazily per item: cv2, BGR -> RGB, resized to ``image_size``, scaled to [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from lwgan.data.layout import (
    SmplSequence,
    list_frames,
    load_pose_shape,
    read_video_list,
    split_file,
    video_images_dir,
    video_pkl_path,
)
from lwgan.data.pairs import FIXED_STREAM, TRAIN_STREAM, epoch_length, sample_pair
from lwgan.errors import DataError


@dataclass(frozen=True)
class VideoRecord:
    name: str  # "001/1/1"
    frames: tuple[Path, ...]  # frame files in frame order
    smpls: np.ndarray  # (N, 85) float32, cam | pose | shape

    def __len__(self) -> int:
        return len(self.frames)


def load_video(root: Path, name: str) -> VideoRecord:
    """Frame list and SMPL parameters of one video, checked to agree in length."""
    frames = list_frames(video_images_dir(root, name))
    seq: SmplSequence = load_pose_shape(video_pkl_path(root, name), expected_frames=len(frames))
    return VideoRecord(name=name, frames=tuple(frames), smpls=seq.packed())


def read_image(path: Path, image_size: int) -> np.ndarray:
    """(3, S, S) float32 RGB in [-1, 1], as the reference's cv2 read + resize + scale.

    IMREAD_COLOR instead of the reference's IMREAD_UNCHANGED, so grey or RGBA frames
    become 3-channel instead of failing later.
    """
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"{path}: cannot read frame (missing or not a decodable image)")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.shape[0] != image_size or img.shape[1] != image_size:
        img = cv2.resize(img, (image_size, image_size), interpolation=cv2.INTER_LINEAR)
    out = img.astype(np.float32).transpose(2, 0, 1) / 127.5 - 1.0
    return np.ascontiguousarray(out)


def frame_key(video: str, frame: int) -> str:
    """``"<video>/<frame index>"``, the key the correspondence cache uses."""
    return f"{video}/{frame}"


class IPERDataset(Dataset):
    """Pairs (source, reference) of one split of an iPER-format folder.

    ``len`` is the reference epoch size (sum over videos of frames // 10, at least 1 per video) and
    item ``i`` is a pure function of ``(seed, i)``.
    """

    def __init__(self, root: str | Path, split: str, image_size: int, source_frames: int = 15, seed: int = 0):
        self.root = Path(root).expanduser().resolve()
        self.split = split
        self.image_size = int(image_size)
        self.source_frames = int(source_frames)
        self.seed = int(seed)
        if self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        if self.source_frames < 1:
            raise ValueError(f"source_frames must be >= 1, got {source_frames}")
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset folder not found")
        list_path = split_file(self.root, split)
        names = read_video_list(list_path)
        if not names:
            raise DataError(f"{list_path}: lists no videos")
        self.videos: tuple[VideoRecord, ...] = tuple(load_video(self.root, name) for name in names)
        self.video_lengths: tuple[int, ...] = tuple(len(v) for v in self.videos)
        self._length = epoch_length(self.video_lengths)

    @property
    def video_names(self) -> list[str]:
        return [v.name for v in self.videos]

    @property
    def num_frames(self) -> int:
        return int(sum(self.video_lengths))

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self._length:
            raise IndexError(f"pair index {index} out of range 0..{self._length - 1}")
        pair = sample_pair(self.video_lengths, index, self.seed, self.source_frames, stream=TRAIN_STREAM)
        return self.item(pair.video, pair.source, pair.target)

    def item(self, video: int, source: int, target: int) -> dict[str, Any]:
        """The sample for explicit frame indices of video number ``video``."""
        record = self.videos[video]
        return {
            "src_img": torch.from_numpy(read_image(record.frames[source], self.image_size)),
            "tgt_img": torch.from_numpy(read_image(record.frames[target], self.image_size)),
            "src_smpl": torch.from_numpy(record.smpls[source].copy()),
            "tgt_smpl": torch.from_numpy(record.smpls[target].copy()),
            "src_key": frame_key(record.name, source),
            "tgt_key": frame_key(record.name, target),
        }

    def fixed_pairs(self, n: int, seed: int = 0) -> list[dict[str, Any]]:
        """``n`` pairs that depend only on (the split's videos, n, seed): eval and sample grids.

        They cycle through the videos, come from a random stream separate from training
        pairs, and never use the source frame as target (when the video has 2+ frames).
        """
        pairs = [
            sample_pair(self.video_lengths, i, seed, self.source_frames, stream=FIXED_STREAM, distinct=True)
            for i in range(int(n))
        ]
        return [self.item(p.video, p.source, p.target) for p in pairs]
