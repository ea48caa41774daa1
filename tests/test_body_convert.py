"""Reading official-style SMPL pickles (chumpy objects, scipy sparse, Python 2 latin1) without chumpy."""

from __future__ import annotations

import argparse
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch

from lwgan.body import convert_smpl_pickle, generate_body_model, load_body_model, read_smpl_arrays
from lwgan.body.commands import command_convert
from lwgan.errors import DataError


def _fake_chumpy() -> dict[str, types.ModuleType]:
    """Modules named like chumpy's with classes that pickle their state as chumpy does (__dict__ with x / a, idxs)."""
    root, ch, reordering, other = (types.ModuleType(n) for n in ("chumpy", "chumpy.ch", "chumpy.reordering", "chumpy.other"))

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x, dtype=np.float64)
            self._dirty_vars = set()
            self.dterms = ["x"]

    class Select:
        def __init__(self, a, idxs, preferred_shape):
            self.a, self.idxs, self.preferred_shape = a, idxs, preferred_shape

    class Reshape:
        def __init__(self, a, newshape):
            self.a, self.newshape = a, newshape

    class Mystery:
        def __init__(self):
            self.b = 1

    for cls, mod in ((Ch, ch), (Select, reordering), (Reshape, reordering), (Mystery, other)):
        cls.__module__, cls.__qualname__ = mod.__name__, cls.__name__
        setattr(mod, cls.__name__, cls)
    root.ch, root.reordering, root.other = ch, reordering, other
    return {"chumpy": root, "chumpy.ch": ch, "chumpy.reordering": reordering, "chumpy.other": other}


def _write_smpl_pickle(path, arrays, mystery=False):
    modules = _fake_chumpy()
    sys.modules.update(modules)
    try:
        Ch, Select, Reshape = modules["chumpy.ch"].Ch, modules["chumpy.reordering"].Select, modules["chumpy.reordering"].Reshape
        v = arrays["v_template"]
        payload = {
            "v_template": Select(Ch(v.ravel()[::-1].copy()), np.arange(v.size)[::-1].copy(), v.shape),
            "shapedirs": Ch(arrays["shapedirs"]),
            "posedirs": Reshape(Ch(arrays["posedirs"].ravel()), arrays["posedirs"].shape),
            "J_regressor": scipy.sparse.csc_matrix(arrays["J_regressor"]),
            "weights": Ch(arrays["weights"]),
            "kintree_table": arrays["kintree_table"],
            "f": arrays["f"].astype(np.uint32),
            "J": Ch(arrays["J"]),
            "bs_style": "lbs",
            "pose_training_info": {"dataset": "x"},  # dropped: not an array
        }
        if mystery:
            payload["extra"] = modules["chumpy.other"].Mystery()
        with open(path, "wb") as handle:
            pickle.dump(payload, handle, protocol=2)
    finally:
        for name in modules:
            del sys.modules[name]
    assert "chumpy" not in sys.modules


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    path = generate_body_model(tmp_path_factory.mktemp("gen") / "g.npz")
    return {k: v for k, v in np.load(path).items()}


def test_chumpy_pickle_reads_without_chumpy(tmp_path, generated):
    src = tmp_path / "SMPL_NEUTRAL.pkl"
    _write_smpl_pickle(src, generated)
    arrays = read_smpl_arrays(src)
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f", "J"):
        np.testing.assert_array_equal(arrays[key], generated[key], err_msg=key)
    assert str(arrays["bs_style"]) == "lbs" and "pose_training_info" not in arrays


def test_convert_round_trip_poses_like_the_original(tmp_path, generated, capsys):
    src, dst = tmp_path / "SMPL_NEUTRAL.pkl", tmp_path / "smpl.npz"
    _write_smpl_pickle(src, generated)
    assert command_convert(argparse.Namespace(src=str(src), dst=str(dst))) == 0
    assert capsys.readouterr().out.startswith(f"wrote {dst}: 6890 vertices, ")
    converted = load_body_model(dst)
    direct = load_body_model(src)  # a chumpy .pkl also loads directly
    assert converted.kind == "smpl" and direct.kind == "smpl"
    pose = torch.zeros(2, 72)
    pose[:, 3 * 16 + 2] = torch.tensor([0.4, -0.9])
    betas = torch.randn(2, 10, generator=torch.Generator().manual_seed(0))
    a, b = converted(pose, betas), direct(pose, betas)
    torch.testing.assert_close(a.vertices, b.vertices)
    np.savez(tmp_path / "ref.npz", **generated)
    ref = load_body_model(tmp_path / "ref.npz")(pose, betas)
    torch.testing.assert_close(a.vertices, ref.vertices)


def test_unknown_chumpy_class_is_named(tmp_path, generated):
    src = tmp_path / "odd.pkl"
    _write_smpl_pickle(src, generated, mystery=True)
    with pytest.raises(DataError, match=r"odd.pkl: key 'extra': unsupported chumpy object chumpy.other.Mystery"):
        read_smpl_arrays(src)


def test_corrupt_pickle_and_bad_destination(tmp_path, generated):
    bad = tmp_path / "broken.pkl"
    bad.write_bytes(b"\x80\x02}q\x00(X")
    with pytest.raises(DataError, match="broken.pkl: not a readable SMPL pickle"):
        convert_smpl_pickle(bad, tmp_path / "out.npz")
    src = tmp_path / "ok.pkl"
    _write_smpl_pickle(src, generated)
    with pytest.raises(DataError, match=r"out.pkl: the converted body model must be written as .npz"):
        convert_smpl_pickle(src, tmp_path / "out.pkl")
    with pytest.raises(DataError, match="missing.pkl: body model file not found"):
        convert_smpl_pickle(tmp_path / "missing.pkl", tmp_path / "x.npz")
