"""The target images' features under the frozen backbones (VGG19 for the perceptual and style losses,
SphereFace on the head crop for the face loss), remembered per target frame.

A target's features are fixed for a whole run: the backbones are frozen, a frame's image is read from
disk unchanged, and its head box comes from the frame's own geometry. Recomputing them every time
the frame is drawn is wasted work (on the small profile a frame is drawn ~8 times in 300 steps and
the two target passes cost ~15% of a step), so each frame is computed once and kept in memory.

Every frame is computed on its own (batch of one), also when the cache is off: a batched forward
differs from a one-image forward in the last bits, and features that depended on which frames shared
a batch would make a resumed run (empty cache) drift from an uninterrupted one. Each entry keeps a
copy of the image and head box it was made from; a lookup with other values recomputes (so a dataset
with augmentation stays correct, it only gains nothing). Least recently used frames leave first once
``max_bytes`` is reached; a frame computed again gives the same values, so eviction changes nothing
but speed. With ``shared_dir``, a frame missing from memory is looked up on disk next, in a store
the other runs of a study share (lwgan.models.feature_store), and what is computed is written there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch

from lwgan.fingerprint import module_digest, same_tensors
from lwgan.lru import ByteLRU, tensor_bytes
from lwgan.models import losses
from lwgan.models.feature_store import DiskFeatureStore

Features = list[torch.Tensor]


class FrameFeatureCache:
    """Per-key features with the fingerprint tensors they were made from, in a ``ByteLRU`` of
    ``max_bytes`` (0 = keep nothing). A lookup whose fingerprint differs is a miss; an entry larger
    than the whole budget is not kept."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._entries: ByteLRU[tuple[tuple[torch.Tensor, ...], Features]] = ByteLRU(
            self.max_bytes, lambda item: tensor_bytes([*item[0], *item[1]]))
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._entries.nbytes

    def get(self, key: str, fingerprint: tuple[torch.Tensor, ...]) -> Features | None:
        found = self._entries.get(key)
        if found is not None and same_tensors(found[0], fingerprint):
            self._entries.touch(key)
            self.hits += 1
            return found[1]
        self.misses += 1
        return None

    def put(self, key: str, fingerprint: tuple[torch.Tensor, ...], features: Features) -> None:
        if self.max_bytes <= 0 or tensor_bytes([*features, *fingerprint]) > self.max_bytes:
            return
        self._entries.put(key, (tuple(t.detach().clone() for t in fingerprint), [f.detach() for f in features]))


class TargetFeatures:
    """Per-frame target features of ``vgg`` and ``face`` (either may be None), without gradients.

    ``vgg(images, keys)`` and ``face(images, head_boxes, keys)`` return the backbone's feature levels
    for the batch, each level stacked over the batch in order. ``keys`` (one frame key per image) turn
    the cache on; without keys every image is still computed on its own, so results never depend on
    the batch. ``vgg_call`` / ``face_call`` make the per-frame calls instead of the nets themselves
    (lwgan.models.calls; outputs they return must stay valid after their next call)."""

    def __init__(self, vgg: Callable | None, face: Callable | None, max_bytes: int, shared_dir: str | Path | None = None,
                 vgg_call: Callable | None = None, face_call: Callable | None = None):
        self.vgg_net, self.face_net = vgg, face
        self.vgg_call = vgg_call if vgg_call is not None else vgg
        self.face_call = face_call if face_call is not None else face
        self.vgg_cache = FrameFeatureCache(max_bytes // 2 if face is not None else max_bytes)
        self.face_cache = FrameFeatureCache(max_bytes - self.vgg_cache.max_bytes)
        # Optional second level on disk, shared with the other runs of a study (lwgan.models.feature_store).
        self.shared_dir = Path(shared_dir) if shared_dir else None
        self._stores: dict[str, DiskFeatureStore] = {}

    def store(self, name: str) -> DiskFeatureStore | None:
        """The disk store of ``vgg`` or ``face`` (None without ``shared_dir``); the net's weights are
        hashed on first use (they are frozen)."""
        budget = (self.vgg_cache if name == "vgg" else self.face_cache).max_bytes
        if self.shared_dir is None or budget <= 0:
            return None
        if name not in self._stores:
            net = self.vgg_net if name == "vgg" else self.face_net
            self._stores[name] = DiskFeatureStore(self.shared_dir, name, module_digest(net), budget)
        return self._stores[name]

    @torch.no_grad()
    def vgg(self, images: torch.Tensor, keys: Sequence[str] | None = None) -> Features:
        return self._per_frame(self.vgg_cache, "vgg", images, None, keys, lambda x, _box: self.vgg_call(x))

    @torch.no_grad()
    def face(self, images: torch.Tensor, head_boxes: torch.Tensor, keys: Sequence[str] | None = None) -> Features:
        size = getattr(self.face_net, "input_size", losses.FACE_CROP_SIZE)
        return self._per_frame(self.face_cache, "face", images, head_boxes, keys,
                               lambda x, box: self.face_call(losses.crop_and_resize(x, box, size)))

    def _per_frame(self, cache: FrameFeatureCache, name: str, images: torch.Tensor, boxes: torch.Tensor | None,
                   keys: Sequence[str] | None, compute) -> Features:
        if keys is not None and len(keys) != images.shape[0]:
            raise ValueError(f"TargetFeatures: {len(keys)} keys for {images.shape[0]} images")
        store = self.store(name) if keys is not None else None
        per_image: list[Features] = []
        for i in range(images.shape[0]):
            image = images[i : i + 1]
            box = boxes[i : i + 1] if boxes is not None else None
            fingerprint = (image,) if box is None else (image, box.to(image.device))
            found = cache.get(keys[i], fingerprint) if keys is not None else None
            if found is None and store is not None:
                found = store.get(keys[i], fingerprint, image.device)
                if found is not None:
                    cache.put(keys[i], fingerprint, found)
            if found is None:
                found = list(compute(image, box))
                if keys is not None:
                    cache.put(keys[i], fingerprint, found)
                if store is not None:
                    store.put(keys[i], fingerprint, found, image.device)
            per_image.append(found)
        return [torch.cat(level, dim=0) for level in zip(*per_image)]


__all__ = ["FrameFeatureCache", "TargetFeatures"]
