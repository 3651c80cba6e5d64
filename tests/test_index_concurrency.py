"""Writers of one saved index: real processes, the writers' lock, conflicts, and killed writers."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import zoo.index as zi
from zoo.index import store

ROOT = Path(__file__).resolve().parents[1]
DIM = 16

# One writer: rounds of add + save on raw vectors (no model); even rounds hold the lock from load to save
# (open_for_update), odd rounds load, add and save without it, so they may be refused as conflicts.
WRITER = r"""
import json, os, sys, time
import numpy as np
import zoo.index as zi
path, writer, rounds, per_round, go, result = sys.argv[1:7]
writer, rounds, per_round = int(writer), int(rounds), int(per_round)
open(result + ".ready", "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
rng = np.random.default_rng(writer)
saved, refused = [], []
for r in range(rounds):
    v = rng.normal(size=(per_round, %d)).astype(np.float32)
    meta = [{"w": writer, "r": r, "i": i} for i in range(per_round)]
    if r %% 2 == 0:
        with zi.open_for_update(path) as idx:
            idx.add_embeddings(v, meta)
        saved.append(r)
    else:
        idx = zi.load(path)
        idx.add_embeddings(v, meta)
        try:
            idx.save(path)
            saved.append(r)
        except zi.IndexConflictError:
            refused.append(r)
json.dump({"saved": saved, "refused": refused}, open(result, "w"))
""" % DIM


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "ZOO_OFFLINE": "1",
            "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def _found(path) -> set:
    idx = zi.load(path)
    return {(m["w"], m["r"], m["i"]) for m in idx.metadata(idx.ids)}


def test_concurrent_writer_processes_lose_nothing_reported_saved(tmp_path):
    path = tmp_path / "shared.zidx"
    zi.from_embeddings(np.ones((1, DIM)), [{"w": -1, "r": 0, "i": 0}]).save(path)
    writers, rounds, per_round = 3, 12, 5
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), str(rounds), str(per_round),
                               str(go), str(tmp_path / f"w{w}.json")], env=_env(), stderr=subprocess.PIPE,
                              text=True) for w in range(writers)]
    deadline = time.time() + 240
    while not all((tmp_path / f"w{w}.json.ready").exists() for w in range(writers)):  # all imported: start together
        assert time.time() < deadline and all(p.poll() is None for p in procs), [p.stderr.read() for p in procs]
        time.sleep(0.05)
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]  # no raw sqlite3 / FileNotFoundError in any writer
    results = [json.loads((tmp_path / f"w{w}.json").read_text()) for w in range(writers)]
    reported = {(w, r, i) for w, res in enumerate(results) for r in res["saved"] for i in range(per_round)}
    refused = {(w, r, i) for w, res in enumerate(results) for r in res["refused"] for i in range(per_round)}
    found = _found(path) - {(-1, 0, 0)}
    assert found == reported  # every save reported as done is there; refused ones wrote nothing
    assert not refused & found
    assert all(r % 2 == 1 for res in results for r in res["refused"])  # the locked rounds never conflict
    assert len(reported) + len(refused) == writers * rounds * per_round
    doc = json.loads((path / "manifest.json").read_text())
    assert doc["generation"] == 1 + len(reported) // per_round  # one generation per successful save
    assert sorted(p.name for p in path.iterdir())[-1] == "manifest.json" and len(list(path.iterdir())) == 3


def test_save_refuses_when_another_writer_saved_since_load(tmp_path):
    path = zi.from_embeddings(np.eye(DIM)[:4]).save(tmp_path / "a.zidx")
    a, b = zi.load(path), zi.load(path)
    a.add_embeddings(np.eye(DIM)[4:6], [{"who": "a"}] * 2)
    b.add_embeddings(np.eye(DIM)[6:8], [{"who": "b"}] * 2)
    a.save(path)
    with pytest.raises(zi.IndexConflictError, match="changed by another writer"):
        b.save(path)
    got = zi.load(path)
    assert len(got) == 6 and [m for m in got.metadata(got.ids) if m] == [{"who": "a"}] * 2
    a.add_embeddings(np.eye(DIM)[8:9])
    a.save(path)  # a's own saves follow each other
    b.save(path, force=True)  # explicit: discards a's changes
    got = zi.load(path)
    assert len(got) == 6 and [m for m in got.metadata(got.ids) if m] == [{"who": "b"}] * 2
    c = zi.from_embeddings(np.eye(DIM)[:2])  # an index not loaded from the path replaces it
    c.save(path)
    assert len(zi.load(path)) == 2
    with pytest.raises(zi.IndexConflictError):
        b.save(path)


def test_open_for_update_holds_the_lock_and_saves_only_on_success(tmp_path):
    path = zi.from_embeddings(np.eye(DIM)[:3]).save(tmp_path / "a.zidx")
    other = zi.load(path)
    with zi.open_for_update(path) as idx:
        idx.add_embeddings(np.eye(DIM)[3:5])
        with pytest.raises(zi.IndexLockedError, match="another process"):
            other.save(path, timeout=0.2)  # a second writer waits for the lock, then gives up
        with pytest.raises(zi.IndexLockedError):
            with zi.open_for_update(path, timeout=0.2):
                pass
        assert len(zi.load(path)) == 3  # readers never wait, and see the last saved state
    assert len(zi.load(path)) == 5
    with pytest.raises(RuntimeError, match="boom"):
        with zi.open_for_update(path) as idx:
            idx.add_embeddings(np.eye(DIM)[5:6])
            raise RuntimeError("boom")
    assert len(zi.load(path)) == 5  # nothing saved, and the lock was released:
    with zi.open_for_update(path, timeout=0) as idx:
        idx.remove([0])
    assert len(zi.load(path)) == 4
    with pytest.raises(zi.IndexConflictError):
        other.save(path)  # loaded before both updates


def test_reader_retries_when_a_save_sweeps_its_files(tmp_path, monkeypatch):
    path = zi.from_embeddings(np.eye(DIM)[:3]).save(tmp_path / "a.zidx")
    writer = zi.load(path)
    real = store.read_manifest
    old = []

    def save_after_read(p):  # another writer commits between this reader's manifest read and its file reads
        doc = real(p)
        if not old:
            old.append(doc)
            writer.add_embeddings(np.eye(DIM)[3:4])
            writer.save(path)
        return doc

    monkeypatch.setattr(store, "read_manifest", save_after_read)
    assert len(zi.load(path)) == 4
    assert not (path / old[0]["files"]["index"]["name"]).exists()  # the first read met swept files


KILLED = r"""
import sys, time
import numpy as np
import zoo.index as zi
from zoo.index import store
real = store.faiss.write_index

def slow(index, fname):
    real(index, fname)
    print("written", flush=True)
    time.sleep(600)

store.faiss.write_index = slow
zi.from_embeddings(np.random.default_rng(0).normal(size=(2000, 64))).save(sys.argv[1])
"""


def test_next_save_sweeps_what_a_killed_first_save_left(tmp_path):
    path = tmp_path / "new.zidx"
    p = subprocess.Popen([sys.executable, "-c", KILLED, str(path)], env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.strip() == "written", p.stderr.read()[-3000:]
    finally:
        os.kill(p.pid, signal.SIGKILL)  # kill -9 in the middle of the first save
        p.wait(timeout=60)
    left = list(tmp_path.glob(".new.zidx.tmp-*"))
    assert len(left) == 1 and list(left[0].glob("index-*.faiss")) and not path.exists()
    young = tmp_path / ".new.zidx.tmp-young"  # as if another writer were still filling it
    young.mkdir()
    zi.from_embeddings(np.eye(DIM)[:2]).save(path, timeout=5)  # the killed writer's lock died with it
    assert left[0].exists() and len(zi.load(path)) == 2  # younger than STALE_TEMP_SECONDS: kept for now
    old = time.time() - store.STALE_TEMP_SECONDS - 5
    os.utime(left[0], (old, old))
    zi.load(path).save(path)
    assert not left[0].exists() and young.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".new.zidx.lock", ".new.zidx.tmp-young", "new.zidx"]
