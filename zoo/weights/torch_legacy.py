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
import os
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


def _unpickle(unpickler: _RestrictedUnpickler, label: str):
    """Load one pickle; anything but a clean load becomes WeightsFormatError (refusals stay Unsafe)."""
    try:
        return unpickler.load()
    except WeightsFormatError:
        raise
    except Exception as exc:  # noqa: BLE001  (a parser of untrusted bytes: any failure is a bad file)
        raise WeightsFormatError(f"not a legacy PyTorch checkpoint ({label}: {type(exc).__name__}: {exc})") from exc


def _load(f: BinaryIO, file_size: int):
    def small(label):
        return _unpickle(_RestrictedUnpickler(f), label)

    if small("magic") != _MAGIC:
        raise WeightsFormatError("not a legacy PyTorch checkpoint (bad magic number)")
    small("protocol")
    small("sys info")
    main = _RestrictedUnpickler(f)
    state = _unpickle(main, "state dict")
    keys = small("storage keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise WeightsFormatError("the list of storage keys is malformed")
    buffers = {}
    for key in keys:
        if key not in main.storages:
            raise WeightsFormatError(f"storage {key!r} is listed but no tensor declares its type")
        head = f.read(8)
        if len(head) != 8:
            raise WeightsFormatError("checkpoint is truncated")
        (count,) = struct.unpack("<q", head)
        dtype = main.storages[key]
        nbytes = count * dtype.itemsize
        if count < 0 or nbytes > file_size - f.tell():
            raise WeightsFormatError(f"checkpoint is truncated or corrupt: storage {key!r} claims {count} "
                                     f"elements, more than the file holds")
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise WeightsFormatError("checkpoint is truncated")
        buffers[key] = np.frombuffer(raw, dtype=dtype)
    return state, buffers


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _tensor(ref: _TensorRef, buffers: dict) -> np.ndarray:
    """Copy one tensor out of its storage after checking that every element it reads lies inside."""
    flat = buffers.get(ref.key) if isinstance(ref.key, str) else None
    if flat is None:
        raise WeightsFormatError(f"refers to storage {ref.key!r}, which the file does not hold")
    shape, stride, offset = ref.shape, ref.stride, ref.offset
    if not (_is_int(offset) and all(map(_is_int, shape)) and all(map(_is_int, stride))):
        raise WeightsFormatError(f"has a non-integer shape {shape!r}, stride {stride!r} or offset {offset!r}")
    if len(shape) != len(stride) or len(shape) > 32:
        raise WeightsFormatError(f"has shape {shape} but stride {stride}")
    if offset < 0 or min(shape, default=0) < 0 or min(stride, default=0) < 0:
        raise WeightsFormatError(f"has a negative shape {shape}, stride {stride} or offset {offset}")
    numel = int(np.prod([int(d) for d in shape], dtype=object)) if shape else 1
    if numel == 0:
        if offset > len(flat):
            raise WeightsFormatError(f"starts at {offset}, past its storage of {len(flat)} elements")
        return np.zeros(shape, flat.dtype)
    last = offset + sum((int(d) - 1) * int(s) for d, s in zip(shape, stride))
    if last >= len(flat):
        raise WeightsFormatError(f"with shape {shape}, stride {stride} and offset {offset} reads element "
                                 f"{last}, past its storage of {len(flat)} elements")
    if numel > len(flat):
        raise WeightsFormatError(f"has {numel} elements but its storage only {len(flat)} "
                                 "(broadcast views are not read)")
    itemsize = flat.dtype.itemsize
    return np.lib.stride_tricks.as_strided(flat[offset:], shape=tuple(int(d) for d in shape),
                                           strides=tuple(int(s) * itemsize for s in stride),
                                           writeable=False).copy()


def read_state_dict(path) -> dict[str, np.ndarray]:
    """Return ``{name: array}`` from a legacy PyTorch ``.pth`` file.

    Every tensor's shape, stride and offset are checked against its storage before a byte is
    read, so a crafted file raises :class:`~zoo.errors.WeightsFormatError` (naming the file and
    the tensor) instead of reading outside the buffer.
    """
    try:
        with open(path, "rb") as f:
            state, buffers = _load(f, os.fstat(f.fileno()).st_size)
    except WeightsFormatError as exc:
        raise type(exc)(f"{path}: {exc}") from exc
    if not isinstance(state, dict):
        raise WeightsFormatError(f"{path}: checkpoint does not hold a state dict")
    out = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef):
            raise WeightsFormatError(f"{path}: entry {name!r} is not a tensor")
        try:
            out[name] = _tensor(ref, buffers)
        except WeightsFormatError as exc:
            raise WeightsFormatError(f"{path}: tensor {name!r} {exc}; the file is corrupt or was crafted, "
                                     "use the original checkpoint") from exc
    return out
