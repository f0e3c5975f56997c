"""A deep model's artifact (torch.save bytes of a dict of plain values and tensors) read into numpy
arrays WITHOUT importing torch: the daily scoring's forward passes (domain/deep/forward.py) need the
weights, and importing torch costs ~2 s of a 5-s daily cycle (issue #16 item 5).

The format (torch.save since 1.6, `_use_new_zipfile_serialization`): a zip archive `<name>/data.pkl`
(a pickle, protocol 2), `<name>/data/<key>` (each storage's raw bytes), `<name>/byteorder`. In the pickle
a tensor is `torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
backward_hooks[, metadata])` and a storage a persistent id `("storage", torch.<Type>Storage, key,
location, numel)`. Element (i_1..i_d) of the tensor is storage[offset + sum_k i_k * stride_k].

Like torch.load(weights_only=True), the unpickler allows only those names and plain containers (dict,
list, tuple, OrderedDict, numbers, strings): a tampered artifact cannot run code; anything else is a
ValueError naming what it met. Tensors come back as C-contiguous numpy arrays of the storage's dtype.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict

import numpy as np

# torch.<Type>Storage -> numpy dtype (little-endian; the archive's byteorder is checked)
STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"), "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"), "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"), "BoolStorage": np.dtype("?"),
}  # fmt: skip


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """The tensor's elements as a C-contiguous array (a view with the stored strides, then copied)."""
    arr = storage
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if not size:
        return arr[int(storage_offset)].copy()
    if any(s == 0 for s in size):
        return np.zeros(size, dtype=arr.dtype)
    last = int(storage_offset) + sum((n - 1) * st for n, st in zip(size, stride))
    if last >= arr.size or storage_offset < 0 or min(stride) < 0:
        raise ValueError(f"a tensor of size {size} and stride {stride} at offset {storage_offset} overruns its storage of {arr.size}")
    view = np.lib.stride_tricks.as_strided(arr[int(storage_offset):], shape=size, strides=tuple(s * arr.itemsize for s in stride))
    return np.ascontiguousarray(view)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(data))
        self._archive, self._prefix, self._storages = archive, prefix, {}

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise ValueError(f"not a weights-only deep-model artifact: it names {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise ValueError(f"not a weights-only deep-model artifact: persistent id {pid!r}")
        _, kind, key, _location, numel = pid
        if key not in self._storages:
            raw = self._archive.read(f"{self._prefix}data/{key}")
            arr = np.frombuffer(raw, dtype=kind.dtype)
            if arr.size < int(numel):
                raise ValueError(f"storage {key} holds {arr.size} elements, the pickle says {numel}")
            self._storages[key] = arr[: int(numel)]
        return self._storages[key]


def load_state(blob: bytes) -> dict:
    """The dict torch.save wrote, tensors as numpy arrays; ValueError for bytes that are not such an archive."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(blob))
        names = archive.namelist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ValueError(f"not a readable deep-model artifact ({type(exc).__name__}: {exc})") from exc
    pkl = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
        raise ValueError("not a readable deep-model artifact (no single <name>/data.pkl in the archive)")
    prefix = pkl[0][: -len("data.pkl")]
    if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder").decode().strip() != "little":
        raise ValueError("a big-endian deep-model artifact: not supported")
    try:
        state = _Unpickler(archive.read(pkl[0]), archive, prefix).load()
    except ValueError:
        raise
    except Exception as exc:  # corrupt pickle or a missing storage: say what failed, not a pickle trace
        raise ValueError(f"not a readable deep-model artifact ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise ValueError(f"a deep-model artifact holds a dict, this one a {type(state).__name__}")
    return state
