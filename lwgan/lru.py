"""One least-recently-used map under a byte budget, for the in-memory caches of frame data
(lwgan.render.cache: correspondences; lwgan.models.target_features: target features)."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, Generic, Iterable, TypeVar

if TYPE_CHECKING:
    import torch

V = TypeVar("V")


def tensor_bytes(tensors: Iterable["torch.Tensor"]) -> int:
    """What ``tensors`` weigh in memory (their elements, not their storages): a cache entry's size."""
    return sum(t.numel() * t.element_size() for t in tensors)


class ByteLRU(Generic[V]):
    """``key -> value`` where each value weighs ``nbytes(value)``. ``put`` evicts the least recently
    used entries until the total is within ``max_bytes``, never the entry just put (so a value larger
    than the whole budget is kept alone). ``get`` does not count as a use; ``touch`` does."""

    def __init__(self, max_bytes: int, nbytes: Callable[[V], int]):
        self.max_bytes = int(max_bytes)
        self._weigh = nbytes
        self._entries: OrderedDict[str, V] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> V | None:
        return self._entries.get(key)

    def touch(self, key: str) -> None:
        self._entries.move_to_end(key)

    def put(self, key: str, value: V) -> None:
        if key in self._entries:
            self._bytes -= self._weigh(self._entries.pop(key))
        self._entries[key] = value
        self._bytes += self._weigh(value)
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, old = self._entries.popitem(last=False)
            self._bytes -= self._weigh(old)
