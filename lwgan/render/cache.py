"""Correspondence cache: a frame's geometry is rasterised once per (frame key, size), kept in memory and optionally on disk.

On disk, a folder can be shared by runs (the trials of a study, lwgan.study.runner): ``shared_folder``
names a sub-folder after what decides the geometry's bits besides the frame's SMPL values (the body
model's buffers, the image size, torch build, CPU instruction set or GPU, threads), and each entry
carries the SMPL values it was made from, compared bit for bit on every lookup. So a frame read from
the folder is the frame this run would have rendered (tests/test_render_geometry.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from lwgan.entry_folder import EntryFolder
from lwgan.fingerprint import compute_environment, module_digest, namespace
from lwgan.lru import ByteLRU, tensor_bytes
from lwgan.render.geometry import FrameGeometry

DEFAULT_MAX_BYTES = 2 << 30  # in-memory budget (least recently used frames leave first), and the disk folder's


def shared_folder(root: str | os.PathLike, body_model: torch.nn.Module, image_size: int, device: torch.device) -> Path:
    """The sub-folder of ``root`` for frames of ``body_model`` at ``image_size`` rendered here and now
    (geometry is always made outside autocast: GeometryBuilder.render turns it off)."""
    ident = {"body": module_digest(body_model), "size": int(image_size), **compute_environment(device), "autocast": "off"}
    return Path(root).expanduser() / f"correspondences-{namespace(ident)}"


class CorrespondenceCache:
    """Maps ``(key "<video>/<frame>", size)`` to a one-frame :class:`FrameGeometry` (on the CPU).

    An entry remembers the 85 SMPL values it was made from: a lookup with other values is a miss (and
    the entry is replaced), so a stale disk folder can never feed wrong geometry.
    """

    def __init__(self, folder: str | os.PathLike | None = None, max_bytes: int = DEFAULT_MAX_BYTES, max_disk_bytes: int = DEFAULT_MAX_BYTES):
        self.folder = Path(folder).expanduser() if folder is not None else None
        # Writing stops once the folder holds max_disk_bytes (what it held when first written to + what this run wrote).
        self.max_disk_bytes = int(max_disk_bytes)
        self._disk: EntryFolder | None = None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._disk = EntryFolder(self.folder, self.max_disk_bytes, name_chars=20)
        self.max_bytes = int(max_bytes)
        # entry -> (the 85 SMPL values it was made from, its geometry); the SMPL values are not weighed
        self._memory: ByteLRU[tuple[torch.Tensor, FrameGeometry]] = ByteLRU(self.max_bytes, lambda item: tensor_bytes(item[1].tensors()))
        self.hits = 0
        self.misses = 0

    @staticmethod
    def entry_key(key: str, size: int) -> str:
        return f"{key}@{int(size)}"

    def __len__(self) -> int:
        return len(self._memory)

    def get(self, key: str, size: int, smpl: torch.Tensor) -> FrameGeometry | None:
        entry = self.entry_key(key, size)
        smpl = smpl.detach().float().cpu()
        found = self._memory.get(entry)
        if found is None and self._disk is not None:
            found = self._load(entry)
            if found is not None:
                self._remember(entry, *found)
        if found is not None and torch.equal(found[0], smpl):
            self._memory.touch(entry)
            self.hits += 1
            return found[1]
        self.misses += 1
        return None

    def put(self, key: str, size: int, smpl: torch.Tensor, frame: FrameGeometry) -> None:
        entry = self.entry_key(key, size)
        smpl = smpl.detach().float().cpu().clone()
        frame = frame.to("cpu")
        self._remember(entry, smpl, frame)
        if self._disk is not None:
            self._save(entry, smpl, frame)

    def _remember(self, entry: str, smpl: torch.Tensor, frame: FrameGeometry) -> None:
        self._memory.put(entry, (smpl, frame))

    def _load(self, entry: str) -> tuple[torch.Tensor, FrameGeometry] | None:
        data = self._disk.load(entry)  # a partial or foreign file is a miss; it is rewritten on the next put
        if data is None:
            return None
        return data["smpl"], FrameGeometry(*data["frame"])

    def _save(self, entry: str, smpl: torch.Tensor, frame: FrameGeometry) -> None:
        # Copies, not views: torch.save writes a view's whole storage (the batch it was selected from).
        tensors = [t.clone() for t in frame.tensors()]
        self._disk.save(entry, {"smpl": smpl, "frame": tensors}, tensor_bytes([smpl, *tensors]))

