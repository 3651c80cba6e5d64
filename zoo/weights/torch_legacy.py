"""Read a legacy (non-zip) PyTorch checkpoint without torch and without unpickling
arbitrary objects.

The legacy format is a sequence of pickles: magic number, protocol version, system
info, the state dict (tensors refer to storages by persistent id), the list of
storage keys, then each storage's raw bytes. Our unpickler resolves only the few
globals a state dict of plain tensors needs; anything else raises
:class:`~zoo.errors.UnsafeCheckpointError`, so a malicious file cannot run code.
"""
from __future__ import annotations

import collections
import pickle
import struct
from typing import BinaryIO

import numpy as np

from zoo.errors import UnsafeCheckpointError, WeightsFormatError

_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


class _TensorRef:
    """A tensor waiting for its storage bytes: (storage key, offset, shape, strides)."""

    def __init__(self, key, offset, shape, stride):
        self.key, self.offset, self.shape, self.stride = key, offset, tuple(shape), tuple(stride)


def _rebuild_tensor(storage, storage_offset, size, stride, *_unused):
    return _TensorRef(storage, storage_offset, size, stride)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file):
        super().__init__(file)
        self.storages: dict[str, np.dtype] = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise UnsafeCheckpointError(
            f"checkpoint refers to {module}.{name}; only plain tensor state dicts are read"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UnsafeCheckpointError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, _size = pid[:5]
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(f"unexpected storage type {storage_type!r}")
        self.storages[key] = storage_type.dtype
        return key


def _load(f: BinaryIO):
    def small(label):
        try:
            return _RestrictedUnpickler(f).load()
        except (pickle.UnpicklingError, EOFError) as exc:
            raise WeightsFormatError(f"not a legacy PyTorch checkpoint ({label}: {exc})") from exc

    if small("magic") != _MAGIC:
        raise WeightsFormatError("not a legacy PyTorch checkpoint (bad magic number)")
    small("protocol")
    small("sys info")
    main = _RestrictedUnpickler(f)
    try:
        state = main.load()
    except (pickle.UnpicklingError, EOFError) as exc:
        raise WeightsFormatError(f"corrupt checkpoint body: {exc}") from exc
    keys = small("storage keys")
    buffers = {}
    for key in keys:
        (count,) = struct.unpack("<q", f.read(8))
        dtype = main.storages[key]
        raw = f.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise WeightsFormatError("checkpoint is truncated")
        buffers[key] = np.frombuffer(raw, dtype=dtype)
    return state, buffers


def read_state_dict(path) -> dict[str, np.ndarray]:
    """Return ``{name: array}`` from a legacy PyTorch ``.pth`` file."""
    with open(path, "rb") as f:
        state, buffers = _load(f)
    if not isinstance(state, dict):
        raise WeightsFormatError("checkpoint does not hold a state dict")
    out = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef):
            raise WeightsFormatError(f"entry {name!r} is not a tensor")
        flat = buffers[ref.key]
        itemsize = flat.dtype.itemsize
        out[name] = np.lib.stride_tricks.as_strided(
            flat[ref.offset:],
            shape=ref.shape,
            strides=tuple(s * itemsize for s in ref.stride),
        ).copy()
    return out
