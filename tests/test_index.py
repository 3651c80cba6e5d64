"""zoo.index on real images: Fashion-MNIST subsets and scikit-image photos with edited copies."""
import json
import shutil

import faiss
import numpy as np
import pytest
from PIL import Image, ImageEnhance

import zoo
import zoo.index as zi
from zoo.index import choice, store


@pytest.fixture(scope="module")
def model(lite0_96):
    return lite0_96


@pytest.fixture(scope="module")
def gallery(model, fmnist_sample):
    x, y = fmnist_sample("train", 40)
    return x, y, model.embed(x, progress=False)


@pytest.fixture(scope="module")
def queries(model, fmnist_sample):
    x, y = fmnist_sample("test", 10)
    return x, y, model.embed(x, progress=False)


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """Five photos, two edited copies of each (resized+JPEG, cropped+brighter), one corrupt file."""
    from skimage import data

    d = tmp_path_factory.mktemp("photos")
    for name in ("chelsea", "coffee", "astronaut", "rocket", "camera"):
        im = Image.fromarray(getattr(data, name)()).convert("RGB")
        im.save(d / f"{name}.png")
        im.resize((im.width // 2, im.height // 2)).save(d / f"{name}_small.jpg", quality=80)
        w, h = im.size
        crop = im.crop((w // 20, h // 20, w - w // 20, h - h // 20))
        ImageEnhance.Brightness(crop).enhance(1.15).save(d / f"{name}_edit.png")
    (d / "broken.jpg").write_bytes(b"not an image at all")
    return d


@pytest.fixture(scope="module")
def index(gallery):
    x, y, e = gallery
    return zi.from_embeddings(e, [{"label": int(c)} for c in y], model=None)


def test_exact_search_matches_brute_force(index, gallery, queries):
    _, _, eg = gallery
    _, _, eq = queries
    res = index.search_embeddings(eq, k=5)
    a = eg / np.linalg.norm(eg, axis=1, keepdims=True)
    b = eq / np.linalg.norm(eq, axis=1, keepdims=True)
    sims = b @ a.T
    want = np.argsort(-sims, axis=1)[:, :5]
    assert index.plan.spec == "Flat" and index.plan.expected_recall == 1.0
    assert (res.ids[:, 0] == want[:, 0]).mean() > 0.99
    np.testing.assert_allclose(res.scores, np.take_along_axis(sims, want, 1), atol=1e-4)
    assert res.scores.shape == (100, 5) and (np.diff(res.scores, axis=1) <= 1e-6).all()


def test_neighbours_share_the_query_label(index, queries):
    _, y, e = queries
    res = index.search_embeddings(e, k=1)
    top = np.array([m[0]["label"] for m in res.metadata])
    assert (top == y).mean() > 0.6  # 10 classes: chance is 0.1


def test_search_images_uses_the_model(model, gallery, queries):
    x, y, e = gallery
    idx = zi.from_embeddings(e[:50], model=model)
    qx, _, qe = queries
    a = idx.search(qx[:8], k=3)
    b = idx.search_embeddings(qe[:8], k=3)
    np.testing.assert_array_equal(a.ids, b.ids)


def test_folder_build_skips_bad_files_and_finds_copies(model, photo_dir, tmp_path):
    idx = zi.build(photo_dir, model=model, work_dir=tmp_path / "work", progress=False)
    paths = [m["path"] for m in idx.metadata(idx.ids)]
    assert len(idx) == 15 and not any("broken" in p for p in paths)
    rep = idx.build_report  # what this call skipped, not model state
    assert rep.sources == paths and rep.ids.tolist() == idx.ids.tolist()
    assert [s[0] for s in rep.skipped] == [str(photo_dir / "broken.jpg")]
    res = idx.search(photo_dir / "coffee_edit.png", k=3)
    found = [m["path"] for m in res.metadata[0]]
    assert found[0].endswith("coffee_edit.png") and {p.rsplit("/", 1)[1] for p in found[1:]} == \
        {"coffee.png", "coffee_small.jpg"}


def test_duplicates_group_each_photo_with_its_copies(model, photo_dir):
    idx = zi.build(photo_dir, model=model, progress=False)
    groups = idx.duplicates(threshold=0.85)
    named = sorted(sorted(m["path"].rsplit("/", 1)[1].split(".")[0].split("_")[0] for m in idx.metadata(g))
                   for g in groups)
    assert named == [[n] * 3 for n in sorted(["astronaut", "camera", "chelsea", "coffee", "rocket"])]


def test_add_and_remove(model, gallery, queries):
    _, y, e = gallery
    qx, qy, qe = queries
    idx = zi.from_embeddings(e, [{"label": int(c)} for c in y], model=model)
    new = idx.add(qx[:5], metadata=[{"label": int(c), "new": True} for c in qy[:5]])
    assert new.tolist() == list(range(400, 405)) and len(idx) == 405
    res = idx.search_embeddings(qe[:5], k=1)
    assert res.ids[:, 0].tolist() == new.tolist() and all(m[0]["new"] for m in res.metadata)
    assert idx.remove(new) == 5 and idx.remove(new) == 0 and len(idx) == 400
    res = idx.search_embeddings(qe[:5], k=3)
    assert not np.isin(res.ids, new).any() and (res.ids >= 0).all()
    assert idx.add_embeddings(qe[:1]).tolist() == [405]  # ids are never reused
    idx.remove(np.arange(100))  # past the compaction threshold: rebuilt from stored vectors
    assert idx._index.ntotal == len(idx) == 301
    assert idx.search_embeddings(e[150:151], k=1).ids[0, 0] == 150


def test_search_skips_many_removed_neighbours(gallery):
    _, _, e = gallery
    idx = zi.from_embeddings(e)
    a = e / np.linalg.norm(e, axis=1, keepdims=True)
    order = np.argsort(-(a @ a[0]))
    idx.remove(order[1:40])  # the 39 nearest neighbours of item 0; under the compaction threshold
    assert idx._index.ntotal == 400 and len(idx) == 361
    res = idx.search_embeddings(e[:1], k=3)  # needs more candidates than the first fetch brings
    assert res.ids[0].tolist() == [0, order[40], order[41]]


def test_fewer_items_than_k_pad_with_minus_one(gallery):
    _, _, e = gallery
    idx = zi.from_embeddings(e[:3])
    idx.remove([1])
    res = idx.search_embeddings(e[:1], k=4)
    assert res.ids[0].tolist()[:2] == [0, 2] and res.ids[0, 2:].tolist() == [-1, -1]
    assert np.isnan(res.scores[0, 2:]).all() and res.metadata[0][2] is None


def test_save_load_round_trip(model, gallery, queries, tmp_path):
    _, y, e = gallery
    _, _, qe = queries
    idx = zi.from_embeddings(e, [{"label": int(c), "name": f"g{i}"} for i, c in enumerate(y)], model=model)
    idx.remove([3])
    path = idx.save(tmp_path / "fm.zidx")
    doc = json.loads((path / "manifest.json").read_text())
    assert doc["model"]["fingerprint"] == model.fingerprint() and doc["metric"] == "cosine"
    assert doc["index"]["spec"] == "Flat" and doc["index"]["expected_recall"] == 1.0
    assert {"faiss", "numpy", "zoo"} <= set(doc["versions"]) and doc["count"] == 399
    again = zi.load(path, model=model)
    a, b = idx.search_embeddings(qe, 5), again.search_embeddings(qe, 5)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
    assert a.metadata == b.metadata and again.metadata([5]) == [{"label": int(y[5]), "name": "g5"}]
    assert 3 not in again.ids and again.metadata([3]) == [None]  # saved as removed, without a rebuild
    assert not np.isin(again.search_embeddings(e[3:4], 10).ids, [3]).any()
    assert again.add_embeddings(qe[:1]).tolist() == [400]


def test_saved_index_reloads_its_own_model(model, gallery, queries, tmp_path):
    _, _, e = gallery
    qx, _, qe = queries
    zi.from_embeddings(e, model=model).save(tmp_path / "a.zidx")
    again = zi.load(tmp_path / "a.zidx")  # no model given: loaded from the manifest on first query
    np.testing.assert_array_equal(again.search(qx[:4], k=3).ids, again.search_embeddings(qe[:4], k=3).ids)


def test_wrong_model_is_refused(model, gallery, tmp_path):
    _, _, e = gallery
    zi.from_embeddings(e, model=model).save(tmp_path / "a.zidx")
    other = zoo.load("efficientnet_lite0", input_size=64)  # same weights, other preprocessing
    with pytest.raises(zi.ModelMismatchError, match="preprocessing"):
        zi.load(tmp_path / "a.zidx", model=other)
    idx = zi.load(tmp_path / "a.zidx")
    with pytest.raises(zi.ModelMismatchError, match="same model"):
        idx.search_embeddings(e[:2], k=1, fingerprint=other.fingerprint())
    with pytest.raises(zi.ModelMismatchError):
        idx.model = other
    with pytest.raises(zi.EmbeddingShapeError, match="1280"):
        idx.search_embeddings(np.ones((1, 10)), k=1)


def test_corrupt_index_gives_a_clear_error(gallery, tmp_path):
    _, _, e = gallery
    path = zi.from_embeddings(e[:50]).save(tmp_path / "a.zidx")
    faiss_file = next(path.glob("index-*.faiss"))
    good = faiss_file.read_bytes()
    faiss_file.write_bytes(good[:100] + bytes([good[100] ^ 0xFF]) + good[101:])
    with pytest.raises(zi.IndexCorruptError, match="checksum"):
        zi.load(path)
    faiss_file.write_bytes(good[: len(good) // 2])
    with pytest.raises(zi.IndexCorruptError):
        zi.load(path, verify=False)
    doc = json.loads((path / "manifest.json").read_text())
    doc["files"]["index"]["bytes"] = len(good) // 2  # a manifest that agrees with the damage
    doc["checksum"] = store.manifest_checksum(doc)
    (path / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(zi.IndexCorruptError, match="could not be read by FAISS"):
        zi.load(path, verify=False)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(zi.IndexCorruptError, match="not valid JSON"):
        zi.load(path)
    with pytest.raises(zi.IndexFormatError, match="not a zoo index"):
        zi.load(tmp_path)
    with pytest.raises(zi.IndexFormatError, match="no such index"):
        zi.load(tmp_path / "missing.zidx")


@pytest.mark.parametrize("fail_at", ["index", "items"])
def test_interrupted_save_keeps_the_old_index(gallery, tmp_path, monkeypatch, fail_at):
    _, _, e = gallery
    idx = zi.from_embeddings(e[:50], [{"v": 1}] * 50)
    path = idx.save(tmp_path / "a.zidx")
    before = idx.search_embeddings(e[:5], 3)
    idx.add_embeddings(e[50:80], [{"v": 2}] * 30)

    half = faiss.serialize_index(idx._index).tobytes()[:1000]

    def write_half_then_die(index, fname):
        open(fname, "wb").write(half)
        raise OSError("disk full")

    def die(*a):
        raise OSError("disk full")

    if fail_at == "index":
        monkeypatch.setattr(store.faiss, "write_index", write_half_then_die)
    else:
        monkeypatch.setattr(store, "_write_items", die)
    with pytest.raises(OSError, match="disk full"):
        idx.save(path)
    monkeypatch.undo()
    again = zi.load(path)
    assert len(again) == 50 and again.metadata([0]) == [{"v": 1}]
    np.testing.assert_array_equal(again.search_embeddings(e[:5], 3).ids, before.ids)
    idx.save(path)  # the next save sweeps the leftovers
    assert len(zi.load(path)) == 80 and len(list(path.iterdir())) == 3


def test_save_refuses_to_overwrite_other_folders(gallery, tmp_path):
    _, _, e = gallery
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("keep me")
    with pytest.raises(zi.IndexFormatError, match="not a zoo index"):
        zi.from_embeddings(e[:5]).save(tmp_path / "docs")
    assert (tmp_path / "docs" / "notes.txt").read_text() == "keep me"


def clustered(n, dim, clusters, seed=0):
    """Gaussian mixture: unit-variance centres, within-cluster noise 0.5."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(clusters, dim)).astype(np.float32)
    return c[rng.integers(0, clusters, n)] + 0.5 * rng.normal(size=(n, dim)).astype(np.float32)


def test_index_choice_tiers():
    assert zi.choose(1000, 1280).spec == "Flat"
    assert zi.choose(100_000, 1280).spec == "HNSW32"
    big = zi.choose(1_000_000, 1280)
    assert "PQ" in big.spec and big.spec.endswith("RFlat")
    assert zi.choose(1_000_000, 1280, recall=1.0).spec == "Flat"
    with pytest.raises(zi.IndexConfigError, match="recall"):
        zi.choose(10, 8, recall=1.5)
    with pytest.raises(zi.IndexConfigError, match="index_factory"):
        zi.from_embeddings(np.ones((10, 8)), index_type="NotAnIndex")
    with pytest.raises(zi.IndexConfigError, match="cannot train"):
        zi.from_embeddings(clustered(50, 8, 5), index_type="IVF256,Flat")
    with pytest.raises(zi.IndexConfigError, match="metric"):
        zi.from_embeddings(np.ones((10, 8)), metric="hamming")


@pytest.mark.parametrize("spec", ["IVF32,Flat", "HNSW16", "IVF16,PQ16x4fs,RFlat"])
def test_approximate_types_are_tuned_to_the_recall_target(spec, tmp_path):
    x = clustered(6000, 64, 60)
    idx = zi.from_embeddings(x, index_type=spec, recall=0.9)
    assert idx.plan.expected_recall >= 0.9 and idx.plan.params
    rows, gt = choice.ground_truth(idx.vectors(), "cosine", 200)
    recall, _ = choice.measure_recall(idx._index, idx.vectors(), "cosine", truth=(rows, gt))
    assert recall >= 0.85
    idx.remove(np.arange(10))  # removal works for every type, HNSW included
    assert not np.isin(idx.search_embeddings(x[:20], 5).ids, np.arange(10)).any()
    again = zi.load(idx.save(tmp_path / "a.zidx"))
    assert again.plan.params == idx.plan.params and again.plan.spec == spec


def test_l2_metric_returns_distances(gallery):
    _, _, e = gallery
    idx = zi.from_embeddings(e, metric="l2")
    res = idx.search_embeddings(e[:3] + 0.01, k=3)
    assert res.ids[:, 0].tolist() == [0, 1, 2]
    d = np.linalg.norm(e[res.ids[0]] - (e[0] + 0.01), axis=1)
    np.testing.assert_allclose(res.scores[0], d, rtol=1e-3)
    assert (np.diff(res.scores, axis=1) >= 0).all()


def test_interrupted_folder_build_resumes(model, tmp_path, monkeypatch, fmnist_sample):
    x, y = fmnist_sample("test", 6, seed=3)
    src = tmp_path / "imgs"
    src.mkdir()
    for i, img in enumerate(x):
        Image.fromarray(img).save(src / f"{i:03d}_{y[i]}.png")
    work = tmp_path / "work"
    calls = []
    real = type(model).embed

    def flaky(self, images, **kw):
        calls.append(len(images))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, images, **kw)

    monkeypatch.setattr(type(model), "embed", flaky)
    with pytest.raises(KeyboardInterrupt):
        zi.build(src, model=model, work_dir=work, shard_size=16, progress=False)
    assert sorted(p.name for p in work.glob("shard-*.json")) == ["shard-00000.json", "shard-00001.json"]
    calls.clear()
    idx = zi.build(src, model=model, work_dir=work, shard_size=16, progress=False)
    assert calls == [16, 12]  # only the two shards not done before
    monkeypatch.undo()
    full = zi.build(src, model=model, progress=False)
    assert len(idx) == len(full) == 60
    np.testing.assert_allclose(idx.vectors(), full.vectors(), atol=1e-5)
    assert [m["path"] for m in idx.metadata(idx.ids)] == [m["path"] for m in full.metadata(full.ids)]


def test_cli(model, photo_dir, tmp_path, monkeypatch, capsys):
    import argparse

    from zoo.index.cli import add_parser

    real_load = zoo.load
    monkeypatch.setattr(zoo, "load", lambda name, *a, **kw: model if str(name).startswith("efficientnet_lite0")
                        and kw.get("input_size") == 96 else real_load(name, *a, **kw))
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="command", required=True))

    def run(*argv):
        a = p.parse_args([str(s) for s in argv])
        return a.func(a)

    out = tmp_path / "photos.zidx"
    sub = tmp_path / "some"
    sub.mkdir()
    for f in ("chelsea.png", "coffee.png", "rocket.png"):
        shutil.copy(photo_dir / f, sub / f)
    assert run("index", "build", sub, "--out", out, "--input-size", 96) == 0
    assert not (tmp_path / "photos.zidx.work").exists()
    assert run("index", "add", out, photo_dir / "coffee_small.jpg") == 0
    capsys.readouterr()
    assert run("index", "search", out, photo_dir / "coffee_edit.png", "-k", "2", "--json") == 0
    hits = json.loads(capsys.readouterr().out)[0]["hits"]
    assert {h["metadata"]["path"].rsplit("/", 1)[1] for h in hits} == {"coffee.png", "coffee_small.jpg"}
    assert run("index", "remove", out, 3) == 0
    assert run("index", "info", out) == 0
    info = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert info["count"] == 3 and info["index"]["spec"] == "Flat" and info["model"]["input_size"] == 96
    assert run("dedup", photo_dir, "--input-size", 96, "--threshold", 0.85, "--json") == 0
    groups = json.loads(capsys.readouterr().out)
    assert len(groups) == 5 and all(len(g) == 3 for g in groups)


def test_gpu_copy_is_used_when_faiss_sees_a_gpu(gallery, monkeypatch):
    """faiss-cpu has no GPU: stand in for faiss-gpu to check the index moves, refreshes, falls back."""
    _, _, e = gallery
    moved = []

    def to_gpu(res, device, index):
        moved.append(index.ntotal)
        return faiss.clone_index(index)

    monkeypatch.setattr(faiss, "StandardGpuResources", lambda: object(), raising=False)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", to_gpu, raising=False)
    idx = zi.from_embeddings(e[:100])
    assert idx.info()["gpu"] and idx.search_embeddings(e[:3], 2).ids[:, 0].tolist() == [0, 1, 2]
    idx.search_embeddings(e[:3], 2)
    idx.add_embeddings(e[100:110])  # a changed index is copied again before the next search
    assert idx.search_embeddings(e[105:106], 1).ids[0, 0] == 105 and moved == [100, 110]

    def refuse(*a):
        raise RuntimeError("this index type is not implemented on GPU")

    monkeypatch.setattr(faiss, "index_cpu_to_gpu", refuse, raising=False)
    hnsw = zi.from_embeddings(e, index_type="HNSW16")
    assert hnsw.search_embeddings(e[:1], 1).ids[0, 0] == 0 and not hnsw.info()["gpu"]


def test_add_and_search_report_skipped_files_of_the_call(model, gallery, photo_dir):
    _, _, e = gallery
    idx = zi.from_embeddings(e[:20], model=model)
    good, bad = str(photo_dir / "coffee.png"), str(photo_dir / "broken.jpg")
    r = idx.add([bad, good], metadata=[{"n": 0}, {"n": 1}], return_sources=True, progress=False)
    assert r.outputs.tolist() == [20] and r.sources == [good] and [s[0] for s in r.skipped] == [bad]
    assert idx.metadata([20]) == [{"n": 1, "path": good}]
    assert idx.add([good], progress=False).tolist() == [21]  # plain call: the ids, as before
    s = idx.search([bad, good], k=2, return_sources=True)
    assert s.sources == [good] and [x[0] for x in s.skipped] == [bad]
    assert s.outputs.ids.shape == (1, 2) and set(s.outputs.ids[0].tolist()) == {20, 21}


def _assert_empty_result(res, n_queries, k):
    assert res.ids.shape == (n_queries, k) and res.ids.dtype == np.int64 and (res.ids == -1).all()
    assert res.scores.shape == (n_queries, k) and np.isnan(res.scores).all()
    assert res.metadata == [[None] * k for _ in range(n_queries)]


def test_empty_index_answers_empty_results(gallery, tmp_path):
    _, _, e = gallery
    q = e[:3]
    empty = zi.ImageIndex.empty(e.shape[1])
    _assert_empty_result(empty.search_embeddings(q, k=4), 3, 4)
    _assert_empty_result(empty.search_embeddings(q[:0], k=4), 0, 4)
    assert empty.duplicates(0.5) == [] and len(empty) == 0 and empty.vectors().shape == (0, e.shape[1])
    idx = zi.from_embeddings(e[:30], metric="l2")
    assert idx.remove(idx.ids) == 30 and len(idx) == 0
    _assert_empty_result(idx.search_embeddings(q, k=2), 3, 2)
    assert idx.duplicates(0.5) == []
    again = zi.load(idx.save(tmp_path / "e.zidx"))
    _assert_empty_result(again.search_embeddings(q, k=2), 3, 2)
    assert again.add_embeddings(q[:1]).tolist() == [30]  # ids are never reused, even after emptying
    assert again.search_embeddings(q[:1], 1).ids.tolist() == [[30]]
    with pytest.raises(zi.EmbeddingShapeError, match="dim"):
        zi.empty(0)


def _edit_manifest(path, edit, reseal=True):
    doc = json.loads((path / "manifest.json").read_text())
    edit(doc)
    if reseal:  # a manifest written consistently by something else than zoo.index
        doc["checksum"] = store.manifest_checksum(doc)
    (path / "manifest.json").write_text(json.dumps(doc))


def test_edited_manifest_is_refused_by_its_checksum(gallery, tmp_path):
    _, _, e = gallery
    path = zi.from_embeddings(e[:20]).save(tmp_path / "a.zidx")
    doc = json.loads((path / "manifest.json").read_text())
    assert doc["checksum"] == store.manifest_checksum(doc) and doc["format_version"] == 2
    _edit_manifest(path, lambda d: d.update(metric="l2"), reseal=False)
    with pytest.raises(zi.IndexCorruptError, match="checksum"):
        zi.load(path)
    _edit_manifest(path, lambda d: d.update(metric="l2"))  # resealed: the FAISS index still disagrees
    with pytest.raises(zi.IndexCorruptError, match="metric"):
        zi.load(path)


@pytest.mark.parametrize("name", ["../outside.faiss", "/etc/passwd", "sub/index.faiss", ".hidden", ".."])
def test_manifest_file_names_must_stay_inside_the_folder(gallery, tmp_path, name):
    _, _, e = gallery
    path = zi.from_embeddings(e[:20]).save(tmp_path / "a.zidx")
    shutil.copy(next(path.glob("index-*.faiss")), tmp_path / "outside.faiss")
    _edit_manifest(path, lambda d: d["files"]["index"].update(name=name))
    with pytest.raises(zi.IndexCorruptError, match="plain file name"):
        zi.load(path)


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.pop("metric"), "missing 'metric'"),
    (lambda d: d.update(dim="1280"), "'dim' must be int"),
    (lambda d: d.update(next_id=True), "'next_id' must be int"),
    (lambda d: d.update(model=3), "'model' must be dict"),
    (lambda d: d.update(index=["Flat"]), "'index' must be dict"),
    (lambda d: d["index"].pop("spec"), "missing 'spec'"),
    (lambda d: d["files"]["items"].update(bytes="12"), "'bytes' must be int"),
    (lambda d: d["files"].update(items=None), "files.items must be an object"),
    (lambda d: d.update(metric="hamming"), "unknown metric"),
    (lambda d: d.update(generation="7"), "'generation' must be int"),
    (lambda d: d.update(format_version="2"), "format_version"),
    (lambda d: d.update(count=3), "counts 3 live"),
])
def test_malformed_manifest_gives_a_typed_error(gallery, tmp_path, edit, match):
    _, _, e = gallery
    path = zi.from_embeddings(e[:20]).save(tmp_path / "a.zidx")
    _edit_manifest(path, edit)
    with pytest.raises(zi.IndexFormatError, match=match):
        zi.load(path)


def test_format_v1_manifest_loads_with_a_warning_and_is_upgraded_by_save(gallery, tmp_path, caplog):
    _, _, e = gallery
    path = zi.from_embeddings(e[:20], [{"n": i} for i in range(20)]).save(tmp_path / "a.zidx")

    def to_v1(d):
        for key in ("checksum", "uid", "generation"):
            d.pop(key)
        d["format_version"] = 1

    _edit_manifest(path, to_v1, reseal=False)
    with caplog.at_level("WARNING", logger="zoo.index.store"):
        idx = zi.load(path)
    assert "no checksum" in caplog.text and "save the index again" in caplog.text
    assert len(idx) == 20 and idx.metadata([4]) == [{"n": 4}]
    idx.save(path)
    doc = json.loads((path / "manifest.json").read_text())
    assert doc["format_version"] == 2 and doc["checksum"] == store.manifest_checksum(doc) and doc["generation"] == 1
    _edit_manifest(path, to_v1, reseal=False)
    _edit_manifest(path, lambda d: d.update(metric="l2"), reseal=False)  # unchecked, but still caught
    with pytest.raises(zi.IndexCorruptError, match="metric"):
        zi.load(path)


def test_build_checks_its_output_first_and_a_failed_build_can_be_retried(model, photo_dir, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for f in ("chelsea.png", "coffee.png", "rocket.png"):
        shutil.copy(photo_dir / f, src / f)
    out = tmp_path / "x.zidx"
    idx = zi.build(src, model=model, out=f"{out}/", progress=False)  # a trailing slash names the same folder
    assert len(zi.load(out)) == len(idx) == 3 and not (out / ".work").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".x.zidx.lock", "src", "x.zidx"]  # shards removed
    with pytest.raises(zi.IndexExistsError, match="overwrite"):  # before the model is even looked up
        zi.build(src, model="no_such_model", out=out, progress=False)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("keep me")
    with pytest.raises(zi.IndexFormatError, match="not a zoo index"):
        zi.build(src, model="no_such_model", out=tmp_path / "notes", progress=False)
    shutil.copy(photo_dir / "broken.jpg", src / "zz_broken.jpg")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"not an image")
    with pytest.raises(zoo.ImageError):
        zi.build(bad, model=model, out=tmp_path / "y.zidx/", progress=False)
    assert not (tmp_path / "y.zidx").exists()  # nothing half-made, nothing inside the output
    shutil.copy(photo_dir / "camera.png", bad / "camera.png")
    again = zi.build(bad, model=model, out=tmp_path / "y.zidx/", progress=False)  # the retry works
    assert len(again) == 1 and [s[0] for s in again.build_report.skipped] == [str(bad / "a.jpg")]
    shutil.copy(photo_dir / "camera.png", src / "camera.png")
    idx = zi.build(src, model=model, out=out, overwrite=True, progress=False)
    assert len(zi.load(out)) == 4 and len(idx.build_report.skipped) == 1
