"""Every registry entry on this CPU: images/s through each runtime at its input size, memory, parameters.

For each entry (random weights: speed and memory do not depend on their values), in a child
process of its own: ``zoo.load(name, weights=None)`` at the entry's input size, then ``embed`` of
in-memory uint8 images at that size through TensorFlow (``m.embed``: tf.function), TFLite (XNNPACK)
and ONNX Runtime (``zoo.runtimes.compile_model``, converted once and cached under
``$ZOO_HOME/runtimes``), each timed after a warm-up call for at least ``--seconds`` (or all
``--images``); the fastest runtime is reported. A second child serves the entry through that
runtime alone (TensorFlow: the model; TFLite/ONNX: the exported file via ``zoo.runtimes.open_export``,
no TensorFlow model built) and reports its peak resident memory (VmHWM, TensorFlow's import
included, about 0.6-0.8 GB of it). Results are appended to ``--out`` (JSON lines), so a long run
resumes; ``--table`` prints the markdown table from it.

    python bench/backbones.py [--models 'dinov2*,resnet50.*'] [--runtimes tensorflow,tflite,onnxruntime]
                              [--images 64] [--seconds 8] [--batch 16] [--out runs/bench_backbones.jsonl]
    python bench/backbones.py --table [--out ...]
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RUNTIMES = ("tensorflow", "tflite", "onnxruntime")


def peak_rss_gb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1e6
    return float("nan")


def _images(size: int, n: int):
    import numpy as np

    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _rate(embed, images, batch: int, seconds: float) -> float:
    """Images/s of ``embed`` over batches of the images, after one warm-up batch, for >= ``seconds``."""
    embed(images[:batch])
    done, t0 = 0, time.perf_counter()
    while True:
        for i in range(0, len(images), batch):
            embed(images[i:i + batch])
            done += len(images[i:i + batch])
            if time.perf_counter() - t0 >= seconds and done >= batch:
                return done / (time.perf_counter() - t0)


def measure(name: str, runtimes, n: int, batch: int, seconds: float) -> dict:
    """Child: img/s of each runtime for one entry (and the exported files' sizes)."""
    import zoo
    from zoo.runtimes import compile_model

    e = zoo.get_entry(name)
    t = time.perf_counter()
    m = zoo.load(name, weights=None)
    out = {"name": e.full_name, "input_size": e.input_size, "params_m": e.params_m, "gmacs": e.gmacs,
           "feature_dim": e.feature_dim, "build_s": round(time.perf_counter() - t, 1), "img_s": {}, "errors": {}}
    images = _images(e.input_size, n)
    for rt in runtimes:
        try:
            t = time.perf_counter()
            run = m if rt == "tensorflow" else compile_model(m, rt, batch_size=batch)
            if rt != "tensorflow":
                out.setdefault("convert_s", {})[rt] = round(time.perf_counter() - t, 1)
                out.setdefault("files", {})[rt] = str(run.runner.path)
            out["img_s"][rt] = round(_rate(lambda x: run.embed(x, batch_size=batch, progress=False), images, batch,
                                           seconds), 2)
        except Exception as exc:  # noqa: BLE001 - a runtime that cannot take the model is a result
            out["errors"][rt] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return out


def serve_memory(name: str, runtime: str, file: str | None, n: int, batch: int) -> dict:
    """Child: peak RSS of a process that embeds through ``runtime`` only."""
    import zoo

    e = zoo.get_entry(name)
    images = _images(e.input_size, n)
    if runtime == "tensorflow":
        run = zoo.load(name, weights=None)
    else:
        from zoo.runtimes import open_export

        run = open_export(file, batch_size=batch)
    for i in range(0, len(images), batch):
        run.embed(images[i:i + batch], batch_size=batch, progress=False)
    return {"peak_rss_gb": round(peak_rss_gb(), 2)}


def _child(args: list[str], timeout: float) -> dict:
    r = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "ZOO_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"})
    for line in reversed(r.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"error": (r.stderr.strip().splitlines() or ["no output"])[-1][:300]}


def table(rows: list[dict]) -> str:
    from bench._common import cpu_line

    lines = [cpu_line(), "",
             "| entry | input | params (M) | GMACs | dim | img/s TF | img/s TFLite | img/s ONNX | fastest | "
             "peak RSS serving it (GB) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r.get("img_s", {})
        cell = lambda rt: f"{s[rt]:.1f}" if rt in s else ("fails" if rt in r.get("errors", {}) else "-")  # noqa: E731
        fastest = max(s, key=s.get) if s else "-"
        lines.append(f"| {r['name']} | {r['input_size']} | {r['params_m']:.2f} | {r['gmacs']:.2f} | "
                     f"{r['feature_dim']} | {cell('tensorflow')} | {cell('tflite')} | {cell('onnxruntime')} | "
                     f"{fastest} | {r.get('peak_rss_gb', '-')} |")
    errors = [(r["name"], rt, msg) for r in rows for rt, msg in r.get("errors", {}).items()]
    if errors:
        lines += ["", "Runtimes that failed:"] + [f"- {n} / {rt}: {msg}" for n, rt, msg in errors]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="*", help="comma-separated wildcards over name.tag (default: every entry)")
    ap.add_argument("--runtimes", default=",".join(RUNTIMES))
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--timeout", type=float, default=1800.0, help="per child process")
    ap.add_argument("--out", default="runs/bench_backbones.jsonl")
    ap.add_argument("--table", action="store_true", help="only print the table of --out")
    ap.add_argument("--_measure"), ap.add_argument("--_serve"), ap.add_argument("--_runtime"), ap.add_argument("--_file")
    a = ap.parse_args()
    if a._measure:
        print(json.dumps(measure(a._measure, a.runtimes.split(","), a.images, a.batch, a.seconds)))
        return
    if a._serve:
        print(json.dumps(serve_memory(a._serve, a._runtime, a._file, a.images, a.batch)))
        return
    out = Path(a.out)
    done = {}
    if out.is_file():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done[r["name"]] = r
    if not a.table:
        import zoo

        pats = [p.strip() for p in a.models.split(",")]
        names = [n for n in zoo.list_models(tags=True) if any(fnmatch.fnmatch(n, p) or
                                                               fnmatch.fnmatch(n.split(".")[0], p) for p in pats)]
        out.parent.mkdir(parents=True, exist_ok=True)
        t_all = time.perf_counter()
        for name in names:
            if name in done:
                continue
            t = time.perf_counter()
            common = ["--images", str(a.images), "--batch", str(a.batch), "--seconds", str(a.seconds),
                      "--runtimes", a.runtimes]
            r = _child(["--_measure", name, *common], a.timeout)
            if "img_s" in r and r["img_s"]:
                best = max(r["img_s"], key=r["img_s"].get)
                mem = _child(["--_serve", name, "--_runtime", best, "--_file", r.get("files", {}).get(best, ""),
                              *common], a.timeout)
                r["peak_rss_gb"] = mem.get("peak_rss_gb")
            r.setdefault("name", name)
            r["wall_s"] = round(time.perf_counter() - t, 1)
            print(json.dumps(r), flush=True)
            with open(out, "a") as f:
                f.write(json.dumps(r) + "\n")
            done[name] = r
        print(f"# {len(names)} entries in {time.perf_counter() - t_all:.0f} s", file=sys.stderr)
    print(table([r for r in done.values() if "input_size" in r]))


if __name__ == "__main__":
    main()
