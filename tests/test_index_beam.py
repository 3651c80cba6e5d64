"""zoo.index.build(engine="beam"): the Apache Beam pipeline gives the in-process build's index.

Real Fashion-MNIST test images written as PNG files, EfficientNet-Lite0 (real weights) at 96 px.
"""
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("apache_beam")

import zoo  # noqa: E402
from zoo.index import IndexConfigError  # noqa: E402
from zoo.index.beam import FAIL_ONCE_ENV  # noqa: E402

N_PER_CLASS = 100         # 1,000 images
SHARD = 128               # 8 shards, the last one partial
CORRUPT = ("c0/zz-truncated.png", "c5/zz-not-an-image.jpg")


@pytest.fixture(scope="module")
def folder(tmp_path_factory, fmnist_sample):
    from PIL import Image

    x, y = fmnist_sample("test", N_PER_CLASS, seed=3)
    root = tmp_path_factory.mktemp("fmnist_png")
    for i, (img, label) in enumerate(zip(x, y)):
        d = root / f"c{label}"
        d.mkdir(exist_ok=True)
        Image.fromarray(img).save(d / f"{i:05d}.png")
    good = sorted(str(p) for p in root.rglob("*.png"))
    data = Path(good[0]).read_bytes()
    (root / CORRUPT[0]).write_bytes(data[:40])             # truncated PNG
    (root / CORRUPT[1]).write_text("this is not a JPEG")    # garbage with an image extension
    return root, good


@pytest.fixture(scope="module")
def local_index(folder, lite0_96, tmp_path_factory):
    root, _ = folder
    out = tmp_path_factory.mktemp("local") / "local.zidx"
    idx = zoo.index.build(root, model=lite0_96, out=out, shard_size=SHARD, progress=False)
    return out, idx


def _paths(idx):
    return [m["path"] for m in idx.metadata(idx.ids)]


def _manifest(path):
    return json.loads((Path(path) / "manifest.json").read_text())


def test_beam_build_matches_in_process_build(folder, local_index, lite0_96, tmp_path):
    root, good = folder
    local_out, local = local_index
    out = tmp_path / "beam.zidx"
    beam_idx = zoo.index.build(root, model=lite0_96, out=out, shard_size=SHARD, progress=False, engine="beam")

    a, b = zoo.index.load(local_out, model=lite0_96), zoo.index.load(out, model=lite0_96)
    # every readable file exactly once, in the same order, hence the same ids
    assert _paths(b) == _paths(a) == good
    assert list(b.ids) == list(a.ids)
    va, vb = a.vectors(a.ids), b.vectors(b.ids)
    cos = np.sum(va * vb, 1) / (np.linalg.norm(va, axis=1) * np.linalg.norm(vb, axis=1))
    assert cos.min() >= 0.999, cos.min()
    # same neighbours for 40 queries
    q = va[::10]
    ra, rb = a.search_embeddings(q, k=5), b.search_embeddings(q, k=5)
    assert np.array_equal(ra.ids, rb.ids)
    # the same corrupt files are skipped, with the same reasons
    assert sorted(beam_idx.build_report.skipped) == sorted(local.build_report.skipped)
    assert sorted(Path(p).relative_to(root).as_posix() for p, _ in beam_idx.build_report.skipped) == sorted(CORRUPT)
    # same folder format: manifest fields, model binding and index type
    ma, mb = _manifest(local_out), _manifest(out)
    for key in ("format", "format_version", "metric", "dim", "count", "dead", "next_id", "model"):
        assert ma[key] == mb[key], key
    assert ma["index"]["spec"] == mb["index"]["spec"] == "Flat"
    assert not (out.parent / "beam.zidx.work").exists()  # shards removed once the index is saved


def test_failed_shards_are_retried_without_loss_or_duplicates(folder, local_index, lite0_96, tmp_path, monkeypatch):
    root, good = folder
    local_out, _ = local_index
    work = tmp_path / "work"
    monkeypatch.setenv(FAIL_ONCE_ENV, "1,4")
    out = tmp_path / "retried.zidx"
    zoo.index.build(root, model=lite0_96, out=out, shard_size=SHARD, progress=False, engine="beam", work_dir=work)
    # the two shards really failed once (markers written just before raising) ...
    assert sorted(p.name for p in work.glob(".fail-once-*")) == [".fail-once-00001", ".fail-once-00004"]
    # ... and the index still holds every readable file exactly once, with the in-process vectors
    b, a = zoo.index.load(out, model=lite0_96), zoo.index.load(local_out, model=lite0_96)
    paths = _paths(b)
    assert len(paths) == len(set(paths)) == len(good)
    assert paths == good
    va, vb = a.vectors(a.ids), b.vectors(b.ids)
    assert np.allclose(va, vb, atol=1e-4)


def test_rerun_resumes_from_committed_shards(folder, lite0_96, tmp_path):
    """Shards committed by an earlier (failed) run are not embedded again: a poisoned committed
    shard shows up in the result, proving it was read, not recomputed."""
    from zoo.index.build import prepare_work, shard_path, write_shard

    root, good = folder
    work = tmp_path / "work"
    files = [str(p) for p in sorted(root.rglob("*")) if p.is_file()]

    prepare_work(lite0_96, files, work, SHARD)
    marker = np.full((SHARD, lite0_96.feature_dim), 7.0, np.float32)
    write_shard(work, 2, marker, {"kept": files[2 * SHARD:3 * SHARD], "skipped": []})
    idx = zoo.index.build(files, model=lite0_96, shard_size=SHARD, progress=False, engine="beam",
                          work_dir=work, index_type="Flat")
    assert shard_path(work, 6, "json").is_file()
    v, paths = idx.vectors(idx.ids), _paths(idx)
    poisoned = np.isin(paths, files[2 * SHARD:3 * SHARD])
    assert poisoned.sum() == SHARD
    assert np.allclose(v[poisoned], v[poisoned][0])  # the pre-committed rows, all equal: read, not recomputed
    assert not np.isclose(v[~poisoned], v[poisoned][0]).all(axis=1).any()
    assert len(paths) == len(set(paths)) == len(good)


def test_cli_engine_beam(folder, lite0_96, tmp_path, capsys):
    from zoo.cli import main

    root, good = folder
    out = tmp_path / "cli.zidx"
    assert main(["index", "build", str(root), "--out", str(out), "--engine", "beam", "--input-size", "96",
                 "--shard-size", "200"]) == 0
    assert f"indexed {len(good)} images" in capsys.readouterr().out
    assert zoo.index.load(out).info()["count"] == len(good)


def test_bad_engine_arguments(folder, lite0_96):
    root, _ = folder
    with pytest.raises(IndexConfigError, match="unknown engine"):
        zoo.index.build(root, model=lite0_96, engine="spark")
    with pytest.raises(IndexConfigError, match="image files"):
        zoo.index.build(np.zeros((2, 28, 28), np.uint8), model=lite0_96, engine="beam")
    with pytest.raises(IndexConfigError, match="needs engine='beam'"):
        zoo.index.build(root, model=lite0_96, beam_options=["--runner=DirectRunner"])
    with pytest.raises(IndexConfigError, match="PipelineOptions"):
        zoo.index.build(root, model=lite0_96, engine="beam", beam_options={"runner": "x"})
