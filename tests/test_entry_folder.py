"""lwgan.entry_folder: whole-file entries checked by key on read, a write budget, misses for anything else."""

from __future__ import annotations

import torch

from lwgan.entry_folder import EntryFolder


def test_round_trip_and_what_counts_as_a_miss(tmp_path):
    folder = EntryFolder(tmp_path / "f", max_bytes=1 << 20)
    x = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    assert folder.load("a") is None  # absent (the folder does not even exist yet)
    assert folder.save("a", {"x": x.clone()}, size=x.numel() * 4)
    entry = folder.load("a")
    assert entry["key"] == "a" and torch.equal(entry["x"], x)
    assert folder.writes == 1 and folder.bytes == 24
    # Another key stored under the same file name (a collision of the truncated sha1) is a miss.
    folder.path("b").write_bytes(folder.path("a").read_bytes())
    assert folder.load("b") is None
    # A torn or foreign file is a miss, not an error; a pickled object that is not allowed as well.
    folder.path("c").write_bytes(b"\x80\x04 not a torch file")
    assert folder.load("c") is None
    torch.save(["a list", "not a dict"], folder.path("d"))
    assert folder.load("d") is None
    # No temporary files are left behind by the atomic writes.
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == sorted(folder.path(k).name for k in "abcd")


def test_writing_stops_at_the_budget_counting_what_the_folder_held(tmp_path):
    t = torch.zeros(100)  # 400 bytes
    first = EntryFolder(tmp_path, max_bytes=1000)
    assert first.save("k1", {"t": t.clone()}, 400) and first.save("k2", {"t": t.clone()}, 400)
    assert not first.save("k3", {"t": t.clone()}, 400)  # 800 + 400 > 1000
    assert first.load("k3") is None and first.writes == 2
    # A second reader measures the files there (torch.save's file sizes, > the tensors' 800 bytes).
    second = EntryFolder(tmp_path, max_bytes=1000)
    assert second.bytes > 800 and not second.save("k3", {"t": t.clone()}, 100)
    assert len(EntryFolder(tmp_path, 10, name_chars=8).path("k1").stem) == 8
