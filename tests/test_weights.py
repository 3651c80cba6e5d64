"""Weight files: resolution order, checksums, safe reading, clear errors."""
import io
import pickle
from dataclasses import replace

import numpy as np
import pytest

import zoo
from zoo.errors import UnsafeCheckpointError, WeightsFormatError
from zoo.registry import get_entry
from zoo.weights import resolve as R
from zoo.weights.torch_legacy import read_state_dict


def test_unknown_name_suggests_close_matches():
    with pytest.raises(zoo.UnknownModelError, match="efficientnet_lite0") as info:
        zoo.load("efficientnet_lite")
    assert "zoo list" in str(info.value)
    with pytest.raises(zoo.UnknownModelError):
        zoo.get_entry("resnet50.wrongtag")


def test_list_models_wildcards_and_pretrained():
    assert zoo.list_models("resnet5*") == ["resnet50", "resnet50_v2"]
    assert len(zoo.list_models()) == 44  # 38 keras.applications / Lite entries + 6 through keras-hub
    here = zoo.list_models(pretrained=True)
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} <= set(here)
    info = zoo.info("efficientnet_lite0")
    assert info["input_size"] == 224 and info["feature_dim"] == 1280 and info["top1"] == 75.1
    assert info["weights"]["file_hash"] and info["license"] == "Apache-2.0"


def test_missing_weights_list_every_place_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zh"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    with pytest.raises(zoo.WeightsNotFoundError) as info:
        zoo.load("resnet50")
    msg = str(info.value)
    assert "project cache" in msg and "Keras cache" in msg and str(tmp_path / "zh") in msg
    assert "resnet50_weights_tf_dim_ordering_tf_kernels.h5" in msg and "weights=None" in msg


def test_weights_found_in_project_cache_and_checksum_enforced(tmp_path, monkeypatch):
    entry = get_entry("efficientnet_lite0")
    src = R.package_file(entry.weights)
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    (tmp_path / "weights").mkdir()
    bad = tmp_path / "weights" / entry.weights.filename
    data = bytearray(src.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte
    bad.write_bytes(bytes(data))
    assert R.candidates(entry.weights)[0][1] == bad
    with pytest.raises(zoo.ChecksumMismatchError, match="delete it"):
        R.resolve(entry)
    bad.write_bytes(src.read_bytes())
    assert R.resolve(entry) == bad


def test_explicit_weight_path(tmp_path):
    entry = get_entry("efficientnet_lite0")
    with pytest.raises(zoo.WeightsNotFoundError, match="does not exist"):
        R.resolve(entry, tmp_path / "nope.pth")
    assert R.resolve(entry, R.package_file(entry.weights)).is_file()


def test_offline_download_is_skipped_with_reason(tmp_path, monkeypatch):
    entry = replace(get_entry("efficientnet_lite0"),
                    weights=replace(get_entry("efficientnet_lite0").weights, package=None, url="https://example.invalid/x.pth"))
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(zoo.WeightsNotFoundError, match="skipped \\(offline\\)"):
        R.resolve(entry)


def test_torch_reader_reads_the_real_checkpoint():
    sd = read_state_dict(R.package_file(get_entry("efficientnet_lite0").weights))
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3) and sd["_fc.weight"].shape == (1000, 1280)
    assert sd["_bn0.running_var"].min() >= 0 and sd["_bn0.running_var"].max() > 0


def _legacy_file(payload_obj) -> bytes:
    f = io.BytesIO()
    for obj in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(obj, f, protocol=2)
    pickle.dump(payload_obj, f, protocol=2)
    return f.getvalue()


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned > /tmp/zoo_pwned",))


def test_torch_reader_refuses_code_execution(tmp_path):
    p = tmp_path / "evil.pth"
    p.write_bytes(_legacy_file({"x": _Evil()}))
    with pytest.raises(UnsafeCheckpointError, match="posix.system|os.system"):
        read_state_dict(p)
    import os
    assert not os.path.exists("/tmp/zoo_pwned")


def test_torch_reader_rejects_garbage_and_truncation(tmp_path):
    p = tmp_path / "junk.pth"
    p.write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsFormatError):
        read_state_dict(p)
    real = R.package_file(get_entry("efficientnet_lite0").weights).read_bytes()
    p.write_bytes(real[: len(real) // 2])
    with pytest.raises(WeightsFormatError, match="truncated"):
        read_state_dict(p)


def test_random_init_needs_no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    m = zoo.load("mobilenet_v3_small", weights=None, input_size=64)
    assert m.embed(np.zeros((1, 64, 64, 3), np.uint8), progress=False).shape == (1, 576)


# ---- crafted legacy checkpoints: the reader bound-checks every tensor --------------------------
class _Ref:
    """``module.name`` written as a GLOBAL opcode (torch need not be installed to write one)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle only writes callables as reduce functions
        raise NotImplementedError


class _Tensor:
    def __init__(self, key, offset, shape, stride):
        self.key, self.offset, self.shape, self.stride = key, offset, shape, stride

    def __reduce__(self):
        import collections

        return (_Ref("torch._utils", "_rebuild_tensor_v2"),
                (_Storage(self.key), self.offset, self.shape, self.stride, False, collections.OrderedDict()))


class _Storage:
    def __init__(self, key):
        self.key = key


class _LegacyPickler(pickle._Pickler):
    """PyTorch's legacy layout: tensors point at storages through persistent ids."""

    dispatch = pickle._Pickler.dispatch.copy()

    def __init__(self, f, sizes):
        super().__init__(f, protocol=2)
        self.sizes = sizes

    def _save_ref(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    dispatch[_Ref] = _save_ref

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", _Ref("torch", "FloatStorage"), obj.key, "cpu", self.sizes.get(obj.key, 0))
        return None


def _checkpoint(tensors: dict, storages: dict, claimed_counts: dict | None = None) -> bytes:
    """A legacy (non-zip) PyTorch file: ``tensors`` {name: (key, offset, shape, stride)} over
    float32 ``storages`` {key: array}; ``claimed_counts`` overrides a storage's element count."""
    import collections
    import struct

    f = io.BytesIO()
    for obj in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(obj, f, protocol=2)
    sizes = {k: len(v) for k, v in storages.items()}
    _LegacyPickler(f, sizes).dump(collections.OrderedDict((n, _Tensor(*t)) for n, t in tensors.items()))
    pickle.dump(list(storages), f, protocol=2)
    for key, arr in storages.items():
        f.write(struct.pack("<q", (claimed_counts or {}).get(key, len(arr))))
        f.write(np.asarray(arr, np.float32).tobytes())
    return f.getvalue()


def test_crafted_checkpoint_reads_back_strided_tensors(tmp_path):
    """The crafting helper writes what the reader accepts: a transposed view and an offset slice."""
    p = tmp_path / "ok.pth"
    data = np.arange(12, dtype=np.float32)
    p.write_bytes(_checkpoint({"w": ("0", 0, (3, 4), (4, 1)), "wt": ("0", 0, (4, 3), (1, 4)),
                               "tail": ("0", 10, (2,), (1,)), "empty": ("0", 12, (0, 5), (5, 1))},
                              {"0": data}))
    sd = read_state_dict(p)
    np.testing.assert_array_equal(sd["w"], data.reshape(3, 4))
    np.testing.assert_array_equal(sd["wt"], data.reshape(3, 4).T)
    np.testing.assert_array_equal(sd["tail"], [10, 11])
    assert sd["empty"].shape == (0, 5)


@pytest.mark.parametrize("tensor, what", [
    (("0", 0, (4, 4), (4, 1)), "reads element 15, past its storage of 12"),        # shape too big
    (("0", 9, (2, 2), (2, 1)), "reads element 12"),                                # offset + extent
    (("0", 1 << 40, (1,), (1,)), "past its storage"),                               # far outside: a segfault
    (("0", 0, (1 << 20, 1 << 20), (1 << 30, 1)), "past its storage"),              # huge stride
    (("0", 0, (3, 4), (-4, 1)), "negative"),
    (("0", -1, (2,), (1,)), "negative"),
    (("0", 0, (3, -4), (4, 1)), "negative"),
    (("0", 0, (3, 4), (4,)), "stride"),                                             # ranks differ
    (("0", 0, (1 << 16, 1 << 16), (0, 0)), "elements but its storage only 12"),    # broadcast bomb
    (("0", 0.5, (2,), (1,)), "non-integer"),
    (("1", 0, (2,), (1,)), "does not hold"),                                        # unknown storage
])
def test_crafted_checkpoint_out_of_bounds_is_refused(tmp_path, tensor, what):
    p = tmp_path / "crafted.pth"
    storages = {"0": np.arange(12, dtype=np.float32)}
    p.write_bytes(_checkpoint({"ok": ("0", 0, (2,), (1,)), "bad.weight": tensor}, storages))
    with pytest.raises(WeightsFormatError, match=what) as info:
        read_state_dict(p)
    assert str(p) in str(info.value) and "'bad.weight'" in str(info.value)


def test_crafted_storage_size_and_malformed_pickles_are_refused(tmp_path):
    p = tmp_path / "big.pth"
    p.write_bytes(_checkpoint({"w": ("0", 0, (2,), (1,))}, {"0": np.zeros(4, np.float32)},
                              claimed_counts={"0": 1 << 60}))
    with pytest.raises(WeightsFormatError, match="claims") as info:
        read_state_dict(p)
    assert str(p) in str(info.value)
    p.write_bytes(_legacy_file(("not", "a", "state dict")))  # the storage keys pickle is missing
    with pytest.raises(WeightsFormatError, match=str(p)):
        read_state_dict(p)
