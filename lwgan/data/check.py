"""Checks an iPER-format folder end to end (split lists, every video's pkl, every frame) and reports problems.

Every frame gets a fast header-and-trailer check (catches empty, truncated and foreign
files without decoding); the first frame of each video is decoded with cv2 as well,
which gives the frame size. ``full_decode=True`` decodes every frame.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from lwgan.data.layout import (
    IMAGES_DIR,
    SMPLS_DIR,
    SPLIT_FILES,
    list_frames,
    load_pose_shape,
    read_video_list,
    video_images_dir,
    video_pkl_path,
)
from lwgan.errors import DataError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class DatasetReport:
    root: Path
    splits: dict[str, list[str]] = field(default_factory=dict)  # split -> listed videos
    frames_per_video: dict[str, int] = field(default_factory=dict)  # videos that loaded
    frame_sizes: Counter = field(default_factory=Counter)  # (w, h) of decoded first frames
    unlisted_videos: list[str] = field(default_factory=list)  # have a pkl but are in no split
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def videos(self) -> list[str]:
        return sorted({v for names in self.splits.values() for v in names})

    @property
    def subjects(self) -> list[str]:
        return sorted({v.split("/")[0] for v in self.videos})

    @property
    def num_frames(self) -> int:
        return sum(self.frames_per_video.values())

    def format(self) -> str:
        lines = [f"dataset {self.root}"]
        for split, names in self.splits.items():
            frames = sum(self.frames_per_video.get(v, 0) for v in names)
            subjects = len({v.split("/")[0] for v in names})
            pairs = sum(self.frames_per_video.get(v, 0) // 10 for v in names)
            lines.append(
                f"  {split:<5} {subjects:>3} subjects {len(names):>4} videos {frames:>7} frames"
                f"  ({pairs} pairs per epoch)"
            )
        lines.append(f"  total {len(self.subjects):>3} subjects {len(self.videos):>4} videos {self.num_frames:>7} frames")
        if self.frame_sizes:
            sizes = ", ".join(f"{w}x{h} ({n} videos)" for (w, h), n in self.frame_sizes.most_common())
            lines.append(f"  frame size: {sizes}")
        if self.frames_per_video:
            counts = list(self.frames_per_video.values())
            lines.append(f"  frames per video: min {min(counts)}, max {max(counts)}")
        if self.unlisted_videos:
            lines.append(f"  note: {len(self.unlisted_videos)} video(s) in {SMPLS_DIR}/ are in no split list")
        if self.problems:
            lines.append(f"  {len(self.problems)} problem(s):")
            shown = self.problems[:50]
            lines.extend(f"    - {p}" for p in shown)
            if len(self.problems) > len(shown):
                lines.append(f"    ... and {len(self.problems) - len(shown)} more")
        else:
            lines.append("  no problems found")
        lines.append(f"  checked in {self.seconds:.1f} s")
        return "\n".join(lines)


def frame_header_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete JPEG/PNG file, or None. Reads only its first and last bytes."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(8)
            handle.seek(max(size - 12, 0))
            tail = handle.read(12)
    except OSError as err:
        return f"cannot read ({err.strerror})"
    if size == 0:
        return "empty file"
    suffix = path.suffix.lower()
    if head.startswith(b"\xff\xd8"):
        # JPEG ends with EOI; encoders may pad a few bytes after it.
        return None if b"\xff\xd9" in tail else "truncated JPEG (no end-of-image marker)"
    if head.startswith(_PNG_SIGNATURE):
        return None if b"IEND" in tail else "truncated PNG (no IEND chunk)"
    if suffix == ".bmp" and head.startswith(b"BM"):
        return None
    return f"not a JPEG/PNG file (starts with {head[:4]!r})"


def _check_video(root: Path, name: str, report: DatasetReport, full_decode: bool) -> None:
    try:
        frames = list_frames(video_images_dir(root, name))
    except DataError as err:
        report.problems.append(str(err))
        frames = None
    try:
        load_pose_shape(video_pkl_path(root, name), expected_frames=len(frames) if frames else None)
    except DataError as err:
        report.problems.append(str(err))
    if not frames:
        return
    report.frames_per_video[name] = len(frames)
    for number, path in enumerate(frames):
        why = frame_header_problem(path)
        if why is None and (full_decode or number == 0):
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                why = "cv2 cannot decode it"
            elif number == 0:
                report.frame_sizes[(img.shape[1], img.shape[0])] += 1
        if why is not None:
            report.problems.append(f"{path}: {why}")


def check_dataset(root: str | Path, full_decode: bool = False) -> DatasetReport:
    """Walk an iPER-format folder and report what it holds and every problem found."""
    start = time.perf_counter()
    root = Path(root).expanduser().resolve()
    report = DatasetReport(root=root)
    if not root.is_dir():
        report.problems.append(f"{root}: dataset folder not found")
        report.seconds = time.perf_counter() - start
        return report
    for sub in (IMAGES_DIR, SMPLS_DIR):
        if not (root / sub).is_dir():
            report.problems.append(f"{root / sub}: folder not found")
    seen: dict[str, str] = {}
    for split, filename in SPLIT_FILES.items():
        try:
            names = read_video_list(root / filename)
        except DataError as err:
            report.problems.append(str(err))
            continue
        if not names:
            report.problems.append(f"{root / filename}: lists no videos")
        report.splits[split] = names
        for name, count in Counter(names).items():
            if count > 1:
                report.problems.append(f"{root / filename}: video {name} is listed {count} times")
        for name in dict.fromkeys(names):
            if name in seen:
                report.problems.append(
                    f"{root / filename}: video {name} is also in {SPLIT_FILES[seen[name]]} (splits must not overlap)"
                )
                continue
            seen[name] = split
            _check_video(root, name, report, full_decode)
    smpls_dir = root / SMPLS_DIR
    if smpls_dir.is_dir():
        on_disk = {p.parent.relative_to(smpls_dir).as_posix() for p in smpls_dir.rglob("pose_shape.pkl")}
        report.unlisted_videos = sorted(on_disk - set(seen))
    report.seconds = time.perf_counter() - start
    return report
