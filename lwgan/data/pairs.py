"""Training-pair sampling as the reference does it (svip-lab/impersonator data/imper_dataset.py, ImPerDataset).

Pure functions of (video lengths, seed, index): the same index always gives the same pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

# Reference ``opt.intervals``: an epoch holds (frames // 10) pairs per video.
EPOCH_INTERVAL = 10


@dataclass(frozen=True)
class Pair:
    video: int  # index into the split's video list
    source: int  # frame index of the source image
    target: int  # frame index of the reference (target) image


def epoch_length(video_lengths: Sequence[int], interval: int = EPOCH_INTERVAL) -> int:
    """Reference epoch size in pairs: sum over videos of frames // interval.

    A video shorter than ``interval`` counts as one pair instead of none (deliberate
    deviation: iPER has no such videos, and tiny synthetic sets stay usable).
    """
    return int(sum(max(1, int(n) // interval) for n in video_lengths if int(n) > 0))


# Independent random streams for training pairs and the fixed eval/sample pairs.
TRAIN_STREAM = 0
FIXED_STREAM = 1


def pair_rng(seed: int, index: int, stream: int = TRAIN_STREAM) -> np.random.Generator:
    """A generator that depends only on (seed, stream, index): workers and resumes agree."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(stream), int(index)])


def sample_pair(
    video_lengths: Sequence[int],
    index: int,
    seed: int,
    source_frames: int = 15,
    stream: int = TRAIN_STREAM,
    distinct: bool = False,
) -> Pair:
    """The pair at ``index``.

    Video: ``index % num_videos``, as the reference; with a shuffled loader every video
    is drawn equally often per epoch (uniform over videos, not over frames).
    Source: uniform over the first ``source_frames`` frames (reference: ``randint(0, 15)``);
    for videos shorter than that, over the whole video (the reference would index past
    the end there). Target: uniform over the whole video; it may equal the source, as in
    the reference, unless ``distinct`` (used for eval/sample pairs, where a target equal
    to the source would only test reconstruction) and the video has more than one frame.
    """
    if not video_lengths:
        raise ValueError("no videos to sample pairs from")
    if index < 0:
        raise IndexError(f"pair index {index} is negative")
    video = int(index) % len(video_lengths)
    length = int(video_lengths[video])
    rng = pair_rng(seed, index, stream)
    source = int(rng.integers(0, min(source_frames, length)))
    if distinct and length > 1:
        target = int(rng.integers(0, length - 1))
        target += int(target >= source)  # uniform over the frames other than the source
    else:
        target = int(rng.integers(0, length))
    return Pair(video=video, source=source, target=target)
