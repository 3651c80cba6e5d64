"""Concurrent writers of one saved index: items reported saved vs found, and conflicts refused.

    python bench/index_writers.py                          # 4 writers x 20 rounds x 10 items, each mode
    python bench/index_writers.py --writers 2 --rounds 50 --mode plain

Each writer is a separate process doing rounds of load -> add_embeddings -> save on raw vectors
(no model). Modes: ``lock`` holds the writers' lock from load to save (``zoo.index.open_for_update``),
so writers wait for each other; ``plain`` loads, adds and saves without it, so a save that would
overwrite another writer's is refused with ``IndexConflictError``; ``mixed`` alternates the two.
Printed: writers, rounds, items reported saved, items found in the index afterwards, lost
(reported saved but missing: must be 0), saves refused, writer crashes, and wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIM = 64


def worker(path: str, writer: int, rounds: int, per_round: int, mode: str, go: str, result: str):
    import numpy as np

    import zoo.index as zi

    Path(result + ".ready").touch()
    while not os.path.exists(go):
        time.sleep(0.005)
    rng = np.random.default_rng(writer)
    saved, refused = [], []
    for r in range(rounds):
        v = rng.normal(size=(per_round, DIM)).astype(np.float32)
        meta = [{"w": writer, "r": r, "i": i} for i in range(per_round)]
        if mode == "lock" or (mode == "mixed" and r % 2 == 0):
            with zi.open_for_update(path) as idx:
                idx.add_embeddings(v, meta)
            saved.append(r)
            continue
        idx = zi.load(path)
        idx.add_embeddings(v, meta)
        try:
            idx.save(path)
            saved.append(r)
        except zi.IndexConflictError:
            refused.append(r)
    Path(result).write_text(json.dumps({"saved": saved, "refused": refused}))


def run(mode: str, writers: int, rounds: int, per_round: int) -> dict:
    import numpy as np

    import zoo.index as zi

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        path = d / "shared.zidx"
        zi.from_embeddings(np.zeros((1, DIM)) + 1, [{"w": -1, "r": 0, "i": 0}]).save(path)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": "1"}
        procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(path), str(w), str(rounds),
                                   str(per_round), mode, str(d / "go"), str(d / f"w{w}.json")],
                                  env=env, stderr=subprocess.PIPE, text=True) for w in range(writers)]
        while not all((d / f"w{w}.json.ready").exists() for w in range(writers)):
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(0.02)
        t = time.perf_counter()
        (d / "go").touch()
        crashed = 0
        for p in procs:
            _, err = p.communicate()
            if p.returncode:
                crashed += 1
                print(err[-2000:], file=sys.stderr)
        wall = time.perf_counter() - t
        res = [json.loads((d / f"w{w}.json").read_text()) for w in range(writers) if (d / f"w{w}.json").exists()]
        reported = {(w, r, i) for w, x in enumerate(res) for r in x["saved"] for i in range(per_round)}
        idx = zi.load(path)
        found = {(m["w"], m["r"], m["i"]) for m in idx.metadata(idx.ids)} - {(-1, 0, 0)}
        return {"mode": mode, "writers": writers, "rounds": rounds, "reported_saved": len(reported),
                "found": len(found), "lost": len(reported - found),
                "refused": sum(len(x["refused"]) for x in res), "crashed": crashed, "wall_s": round(wall, 1)}


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        a = sys.argv[2:]
        sys.path.insert(0, str(ROOT))
        return worker(a[0], int(a[1]), int(a[2]), int(a[3]), a[4], a[5], a[6])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--per-round", type=int, default=10)
    ap.add_argument("--mode", choices=["lock", "plain", "mixed", "all"], default="all")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    modes = ["lock", "plain", "mixed"] if a.mode == "all" else [a.mode]
    print(f"{'mode':6} {'writers':>7} {'rounds':>6} {'reported saved':>14} {'found':>6} {'lost':>5} "
          f"{'refused saves':>13} {'crashed':>7} {'wall s':>7}")
    for mode in modes:
        r = run(mode, a.writers, a.rounds, a.per_round)
        print(f"{r['mode']:6} {r['writers']:>7} {r['rounds']:>6} {r['reported_saved']:>14} {r['found']:>6} "
              f"{r['lost']:>5} {r['refused']:>13} {r['crashed']:>7} {r['wall_s']:>7}")


if __name__ == "__main__":
    main()
