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
    assert len(zoo.list_models()) == 38
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
