"""Target features on disk, shared by the runs of one study (lwgan.models.target_features keeps them
in memory for one run; this lets the next run read what an earlier one computed).

The trials of a study train on the same frames with the same frozen backbones, so each computed the
same target features again (on the small profile ~4.6 s of a ~125 s trial). A frame's features are
a pure function of the backbone's weights, the frame's image and head box, and how the forward runs
(precision, device, torch build, CPU instruction set, thread count): the folder of an entry names
all of those but the image and box, which the entry carries and a lookup compares bit for bit (as
the memory cache does). So a feature read from the store is the one this run would have computed,
to the last bit, and a run gives the same numbers with the store or without it
(tests/test_models_feature_store.py).

Entries are kept by lwgan.entry_folder (written whole, so runs that write the same frame at once, or
a run killed mid-write, never leave a torn entry; an unreadable entry counts as a miss; writing
stops once the folder holds ``max_bytes``). The study runner gives each invocation a
fresh folder and removes it at the end (lwgan.study.runner): entries never outlive the code that
made them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from lwgan.entry_folder import EntryFolder
from lwgan.fingerprint import compute_environment, namespace, same_tensors
from lwgan.lru import tensor_bytes

Features = list[torch.Tensor]


class DiskFeatureStore:
    """Feature levels per frame key under ``root``/<namespace of the net and environment>/, for as long
    as that folder holds less than ``max_bytes``. ``net_digest`` names the frozen net's weights."""

    def __init__(self, root: str | Path, net_name: str, net_digest: str, max_bytes: int):
        self.root = Path(root)
        self.net_name, self.net_digest = net_name, net_digest
        self.max_bytes = int(max_bytes)
        self._folders: dict[Path, EntryFolder] = {}  # one per namespace this run has used
        self.hits = 0
        self.misses = 0

    @property
    def writes(self) -> int:
        return sum(f.writes for f in self._folders.values())

    def folder(self, device: torch.device) -> Path:
        """The namespace for the forward as it would run now (the autocast and threads in effect)."""
        ident = {"net": self.net_name, "weights": self.net_digest, **compute_environment(device)}
        return self.root / f"{self.net_name}-{namespace(ident)}"

    def _entries(self, device: torch.device) -> EntryFolder:
        folder = self.folder(device)
        if folder not in self._folders:
            self._folders[folder] = EntryFolder(folder, self.max_bytes)
        return self._folders[folder]

    def get(self, key: str, fingerprint: Sequence[torch.Tensor], device: torch.device) -> Features | None:
        entry = self._entries(device).load(key)
        if entry is None or not same_tensors(entry["fingerprint"], fingerprint):
            self.misses += 1
            return None
        self.hits += 1
        return [f.to(device) for f in entry["features"]]

    def put(self, key: str, fingerprint: Sequence[torch.Tensor], features: Sequence[torch.Tensor], device: torch.device) -> bool:
        """Write the entry unless the folder is full; True when written."""
        size = tensor_bytes([*fingerprint, *features])
        # Copies, not views: torch.save writes a view's whole storage (the batch it was sliced from).
        payload = {"fingerprint": [t.detach().to("cpu", copy=True) for t in fingerprint],
                   "features": [t.detach().to("cpu", copy=True) for t in features]}
        return self._entries(device).save(key, payload, size)


__all__ = ["DiskFeatureStore"]
