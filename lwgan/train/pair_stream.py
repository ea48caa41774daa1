"""The training-pair stream: an endless, resumable sequence of pairs with the reference's sampling.

The reference shuffles a dataset of ``len`` items every epoch and draws a fresh random pair per
item. Here sample ``n`` belongs to pass ``n // len``; within a pass a seeded permutation orders the
items, and the pair is drawn from (seed, global index) with ``lwgan.data.pairs.sample_pair``. So the
stream is a pure function of (seed, n): resuming needs only the number of samples drawn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lwgan.data.pairs import TRAIN_STREAM, sample_pair

PERMUTATION_STREAM = 7  # distinct from the data module's pair streams


class PairStream(Dataset):
    """Map-style view of the stream: ``stream[n]`` is training sample ``n`` (any n >= 0)."""

    def __init__(self, dataset, seed: int):
        self.dataset = dataset
        self.seed = int(seed)
        self.pass_length = len(dataset)

    def global_index(self, n: int) -> int:
        pass_no, within = divmod(int(n), self.pass_length)
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, PERMUTATION_STREAM, pass_no])
        return pass_no * self.pass_length + int(rng.permutation(self.pass_length)[within])

    def __len__(self) -> int:  # DataLoader only asks the sampler; this is one pass
        return self.pass_length

    def __getitem__(self, n: int) -> dict[str, Any]:
        ds = self.dataset
        pair = sample_pair(ds.video_lengths, self.global_index(n), self.seed, ds.source_frames, stream=TRAIN_STREAM)
        return ds.item(pair.video, pair.source, pair.target)


def batches(stream: PairStream, batch_size: int, first_sample: int, num_samples: int, num_workers: int = 0) -> DataLoader:
    """Batches of samples ``first_sample .. first_sample + num_samples - 1`` in order."""
    return DataLoader(
        stream,
        batch_size=batch_size,
        sampler=range(first_sample, first_sample + num_samples),
        num_workers=num_workers,
        # An explicit generator keeps the DataLoader from drawing its base seed from the global
        # torch RNG, which would shift a resumed run's random stream against an uninterrupted one.
        generator=torch.Generator().manual_seed(first_sample),
        persistent_workers=False,
        drop_last=False,
    )


def stack_items(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate a list of dataset items (fixed eval pairs) like the DataLoader does."""
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        out[key] = torch.stack(values) if torch.is_tensor(values[0]) else list(values)
    return out
