"""A folder of whole-file entries, one per key, as the shared per-frame disk caches keep them (target
features: lwgan.models.feature_store; correspondences: lwgan.render.cache).

Each entry is a ``torch.save``d dict holding its own key, written whole (lwgan.fsutil.atomic_write: a
temporary file, then a rename), so runs writing the same key at once, or a run killed mid-write,
never leave a torn entry. A read returns the entry only when it loads (with ``weights_only``) and
holds the key asked for; anything else (absent, partial, foreign, another key whose name collides)
is a miss. Writing stops once the folder holds ``max_bytes`` (what it held when first measured + what
this process wrote). What an entry must match besides its key (the SMPL values of a frame, the image
and head box of a target) is for the caller to compare.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from lwgan.fsutil import atomic_write, folder_bytes

ENTRY_SUFFIX = ".pt"


class EntryFolder:
    """Entries of ``folder``, named by the sha1 of their key (``name_chars`` hex digits)."""

    def __init__(self, folder: str | Path, max_bytes: int, name_chars: int = 24):
        self.folder = Path(folder)
        self.max_bytes = int(max_bytes)
        self.name_chars = int(name_chars)
        self._bytes: int | None = None  # measured on first need
        self.writes = 0

    def path(self, key: str) -> Path:
        return self.folder / (hashlib.sha1(key.encode()).hexdigest()[: self.name_chars] + ENTRY_SUFFIX)

    @property
    def bytes(self) -> int:
        """What the folder holds by this process's count: its files when first asked, plus what it wrote since."""
        if self._bytes is None:
            self._bytes = folder_bytes(self.folder)
        return self._bytes

    def load(self, key: str) -> dict[str, Any] | None:
        """The entry written for ``key``, or None (see the module doc)."""
        try:
            entry = torch.load(self.path(key), map_location="cpu", weights_only=True)
        except Exception:  # absent, written by a run killed mid-way, or not an entry at all
            return None
        return entry if isinstance(entry, dict) and entry.get("key") == key else None

    def save(self, key: str, payload: dict[str, Any], size: int) -> bool:
        """Write ``payload`` (tensors of ``size`` bytes) as the entry of ``key`` unless the folder is full;
        True when written. Tensors should be copies: ``torch.save`` writes a view's whole storage."""
        if self.bytes + size > self.max_bytes:
            return False
        with atomic_write(self.path(key)) as tmp:
            torch.save({"key": key, **payload}, tmp)
        self._bytes = self.bytes + size
        self.writes += 1
        return True


__all__ = ["EntryFolder"]
