"""The iPER folder layout on disk: video lists, frame files and ``pose_shape.pkl``, read and written.

Layout (svip-lab/impersonator doc/train.md; iPERCore's iPER protocol)::

    <root>/images/<subject>/<clothes>/<action>/000.jpg ...   frames, sorted by name
    <root>/smpls/<subject>/<clothes>/<action>/pose_shape.pkl  {"cams": (N,3), "pose": (N,72), "shape": (N,10), ...}
    <root>/train.txt, <root>/val.txt                          one video name (``001/1/1``) a line

The released ``images_HD`` folder names frames ``000.jpg`` (zero-padded frame index);
frames extracted with the reference's ``tools/unzip_iPER.py`` are ``frame00000000.png``.
Both are accepted. The real pkls hold extra keys (``vertices``; ``kps`` lives in
``kps.pkl``): readers ignore keys they do not need.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lwgan.errors import DataError

IMAGES_DIR = "images"
SMPLS_DIR = "smpls"
POSE_SHAPE_FILE = "pose_shape.pkl"
SPLIT_FILES = {"train": "train.txt", "val": "val.txt"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# Key -> number of values per frame, in the packed order cam | pose | shape.
SMPL_KEYS = {"cams": 3, "pose": 72, "shape": 10}
SMPL_DIM = sum(SMPL_KEYS.values())  # 85
# Written pkls use protocol 2: readable by Python 2 and 3 tooling (HMR / impersonator era).
PICKLE_PROTOCOL = 2


@dataclass(frozen=True)
class SmplSequence:
    """Per-frame SMPL parameters of one video, float32."""

    cams: np.ndarray  # (N, 3) weak-perspective [s, tx, ty]
    pose: np.ndarray  # (N, 72) axis-angle; pose[:, :3] = global_orient
    shape: np.ndarray  # (N, 10) betas

    def __len__(self) -> int:
        return int(self.cams.shape[0])

    def packed(self) -> np.ndarray:
        """(N, 85) float32: cam | pose | shape, as the reference concatenates them."""
        return np.concatenate([self.cams, self.pose, self.shape], axis=1).astype(np.float32)


def split_file(root: Path, split: str) -> Path:
    if split not in SPLIT_FILES:
        raise DataError(f"{root}: unknown split {split!r} (allowed: {', '.join(SPLIT_FILES)})")
    return Path(root) / SPLIT_FILES[split]


def read_video_list(path: Path) -> list[str]:
    """Video names of a split file; blank lines and ``#`` comments are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: split file not found (expected one video name like '001/1/1' a line)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read split file ({err})") from None
    names = []
    for number, line in enumerate(lines, start=1):
        name = line.strip().strip("/")
        if not name or name.startswith("#"):
            continue
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise DataError(f"{path}:{number}: invalid video name {line!r} (expected a relative name like '001/1/1')")
        names.append(name)
    return names


def write_video_list(path: Path, videos: list[str]) -> None:
    Path(path).write_text("".join(f"{v}\n" for v in videos), encoding="utf-8")


def video_images_dir(root: Path, video: str) -> Path:
    return Path(root) / IMAGES_DIR / video


def video_pkl_path(root: Path, video: str) -> Path:
    return Path(root) / SMPLS_DIR / video / POSE_SHAPE_FILE


def _natural_key(name: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def list_frames(images_dir: Path) -> list[Path]:
    """Frame files of a video in frame order.

    The reference sorts names lexicographically; with zero-padded names (every iPER
    release) that equals the numeric order used here, which also orders unpadded names
    correctly (deliberate, harmless deviation).
    """
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: video frame folder not found")
    frames = [p for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not frames:
        raise DataError(f"{images_dir}: no frames ({', '.join(IMAGE_SUFFIXES)}) in the video folder")
    return sorted(frames, key=lambda p: _natural_key(p.name))


def frame_name(index: int, num_frames: int) -> str:
    """``000.jpg`` style, as the released ``images_HD`` (at least 3 digits)."""
    width = max(3, len(str(max(num_frames - 1, 0))))
    return f"{index:0{width}d}.jpg"


def load_pose_shape(path: Path, expected_frames: int | None = None) -> SmplSequence:
    """Read and validate a ``pose_shape.pkl``; every problem raises DataError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: SMPL file not found")
    try:
        with open(path, "rb") as handle:
            try:
                data = pickle.load(handle)
            except UnicodeDecodeError:
                # Python-2 pickles of numpy arrays need latin1 to unpickle under Python 3.
                handle.seek(0)
                data = pickle.load(handle, encoding="latin1")
    except Exception as err:  # unpickling raises many types on corrupt input
        raise DataError(f"{path}: cannot unpickle SMPL file ({type(err).__name__}: {err})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict with keys {list(SMPL_KEYS)}, got {type(data).__name__}")
    missing = [k for k in SMPL_KEYS if k not in data]
    if missing:
        raise DataError(f"{path}: missing key(s) {missing} (required: {list(SMPL_KEYS)}; found: {sorted(map(str, data))})")
    arrays = {}
    for key, width in SMPL_KEYS.items():
        try:
            arr = np.asarray(data[key], dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise DataError(f"{path}: key '{key}' is not numeric ({err})") from None
        if arr.ndim != 2 or arr.shape[1] != width:
            raise DataError(f"{path}: key '{key}' has shape {tuple(arr.shape)}, expected (N, {width})")
        if not np.all(np.isfinite(arr)):
            raise DataError(f"{path}: key '{key}' holds non-finite values")
        arrays[key] = arr
    lengths = {k: a.shape[0] for k, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise DataError(f"{path}: frame counts differ between keys {lengths}")
    n = lengths["cams"]
    if n == 0:
        raise DataError(f"{path}: holds no frames")
    if expected_frames is not None and n != expected_frames:
        raise DataError(f"{path}: has {n} frames of SMPL parameters but the video folder has {expected_frames} frames")
    if np.any(arrays["cams"][:, 0] <= 0):
        raise DataError(f"{path}: key 'cams' has a non-positive scale s (cams[:, 0] must be > 0)")
    return SmplSequence(cams=arrays["cams"], pose=arrays["pose"], shape=arrays["shape"])


def write_pose_shape(path: Path, seq: SmplSequence) -> None:
    """Write ``pose_shape.pkl`` as iPER does: a dict of float32 arrays ``cams``, ``pose``, ``shape``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "cams": np.ascontiguousarray(seq.cams, dtype=np.float32),
        "pose": np.ascontiguousarray(seq.pose, dtype=np.float32),
        "shape": np.ascontiguousarray(seq.shape, dtype=np.float32),
    }
    with open(path, "wb") as handle:
        pickle.dump(data, handle, protocol=PICKLE_PROTOCOL)
