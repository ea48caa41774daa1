"""Read SMPL model files (.npz, plain or chumpy-holding .pkl) into plain numpy arrays, and write them as .npz.

Official SMPL ``.pkl`` files pickle chumpy objects, and chumpy does not import on Python 3.11 / numpy 2.
The unpickler here maps every ``chumpy.*`` class to a stand-in that keeps the pickled state and recovers
the array it holds (``Ch.x``; ``Select``/``Reshape``/``transpose`` of one), so no chumpy is needed.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from lwgan.errors import DataError
from lwgan.fsutil import write_bytes_atomic

REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


class ChumpyStandIn:
    """Takes the place of any chumpy class while unpickling; :meth:`to_array` evaluates what SMPL files hold."""

    chumpy_class = "chumpy.?"

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {"state": state}

    def to_array(self) -> np.ndarray:
        state = getattr(self, "state", {})
        kind = self.chumpy_class.rsplit(".", 1)[-1]
        if "x" in state and kind not in ("Select", "Reshape", "transpose"):
            return to_plain_array(state["x"])
        if kind == "Select":
            base = to_plain_array(state["a"]).ravel()
            picked = base[np.asarray(state["idxs"]).ravel()]
            shape = state.get("preferred_shape")
            return picked.reshape(shape) if shape is not None else picked
        if kind == "Reshape":
            return to_plain_array(state["a"]).reshape(state["newshape"])
        if kind == "transpose":
            return np.transpose(to_plain_array(state["a"]), state.get("axes"))
        raise DataError(f"unsupported chumpy object {self.chumpy_class} (state keys: {sorted(state)})")


def to_plain_array(value: Any) -> np.ndarray:
    if isinstance(value, ChumpyStandIn):
        return value.to_array()
    if hasattr(value, "toarray") and "scipy.sparse" in type(value).__module__:
        return value.toarray()
    return np.asarray(value)


class _SmplUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (ChumpyStandIn,), {"chumpy_class": f"{module}.{name}"})
        if module.startswith("scipy.sparse"):  # py2-era paths such as scipy.sparse.csc are gone in new scipy
            import scipy.sparse

            if hasattr(scipy.sparse, name):
                return getattr(scipy.sparse, name)
        return super().find_class(module, name)


def read_smpl_pickle(path: Path) -> dict[str, Any]:
    """Unpickle an SMPL ``.pkl`` (Python 2 pickles included: latin1) without chumpy; arrays stay numpy."""
    try:
        with open(path, "rb") as handle:
            raw = _SmplUnpickler(handle, encoding="latin1").load()
    except FileNotFoundError:
        raise DataError(f"{path}: body model file not found") from None
    except DataError:
        raise
    except Exception as exc:  # corrupt or not a pickle
        raise DataError(f"{path}: not a readable SMPL pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a dict of SMPL arrays, found {type(raw).__name__}")
    return raw


def read_smpl_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The SMPL arrays of a ``.npz`` or ``.pkl`` as plain numpy (J_regressor dense); checks the required keys."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: body model file not found")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise DataError(f"{path}: not a readable .npz body model ({exc})") from None
    else:
        raw = read_smpl_pickle(path)
        arrays = {}
        for key, value in raw.items():
            try:
                arr = to_plain_array(value)
            except DataError as exc:
                raise DataError(f"{path}: key '{key}': {exc}") from None
            if arr.dtype != object:
                arrays[str(key)] = arr
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise DataError(f"{path}: not an SMPL model, missing keys {missing} (need {list(REQUIRED_KEYS)})")
    return arrays


def write_npz_atomic(arrays: dict[str, np.ndarray], dst: str | os.PathLike) -> Path:
    """Write ``arrays`` to ``dst`` (.npz) atomically (lwgan.fsutil)."""
    dst = Path(dst).expanduser()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_bytes_atomic(dst, buffer.getvalue())


def convert_smpl_pickle(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Convert an official SMPL ``.pkl`` (chumpy inside) to an ``.npz`` that :func:`load_body_model` reads."""
    arrays = read_smpl_arrays(src)
    if Path(dst).suffix != ".npz":
        raise DataError(f"{dst}: the converted body model must be written as .npz")
    return write_npz_atomic(arrays, dst)
