"""``zoo index build|search|add|remove|info`` and ``zoo dedup``: register with :func:`add_parser`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from zoo.cli import image_inputs, positive_float, positive_int, report_skipped


def _print_hits(res, sources):
    for src, ids, scores, meta in zip(sources, res.ids, res.scores, res.metadata):
        print(src)
        for i, s, m in zip(ids, scores, meta):
            if i >= 0:
                print(f"  {s:8.4f}  {i:>8}  {(m or {}).get('path', json.dumps(m))}")


def _cmd_build(a):
    from zoo.index import build

    image_inputs([a.dir])  # a missing or empty folder is named before the model loads
    idx = build(a.dir, model=a.model, out=a.out, overwrite=a.overwrite, metric=a.metric, index_type=a.type,
                recall=a.recall, input_size=a.input_size, batch_size=a.batch_size, work_dir=a.work_dir,
                shard_size=a.shard_size, engine=a.engine, beam_options=a.beam_option or None,
                runtime=a.runtime)
    skipped = idx.build_report.skipped
    report_skipped(skipped)
    p = idx.plan
    print(f"indexed {len(idx)} images from {a.dir} into {a.out}: {p.spec}, expected recall@10 "
          f"{p.expected_recall} ({p.reason})" + (f"; skipped {len(skipped)} unreadable files" if skipped else ""))
    return 0


def _cmd_search(a):
    from zoo.index import load

    files = image_inputs(a.images)
    idx = load(a.index)
    r = idx.search(files, k=a.k, batch_size=a.batch_size, return_sources=True)
    res, kept = r.outputs, [str(s) for s in r.sources]
    if a.json:
        print(json.dumps([{"query": q, "hits": [{"id": int(i), "score": float(s), "metadata": m}
                                                for i, s, m in zip(ids, sc, me) if i >= 0]}
                          for q, ids, sc, me in zip(kept, res.ids, res.scores, res.metadata)], indent=2))
    else:
        _print_hits(res, kept)
    report_skipped(r.skipped)
    return 1 if r.skipped else 0


def _cmd_add(a):
    from zoo.index import open_for_update

    files = image_inputs(a.images)
    with open_for_update(a.index) as idx:
        r = idx.add(files, batch_size=a.batch_size, return_sources=True)
    new = r.outputs
    report_skipped(r.skipped)
    print(f"added {len(new)} images (ids {int(new.min())}..{int(new.max())}); {len(idx)} in {a.index}"
          + (f"; skipped {len(r.skipped)} unreadable" if r.skipped else ""))
    return 0


def _cmd_remove(a):
    from zoo.index import open_for_update

    with open_for_update(a.index) as idx:
        n = idx.remove(a.ids)
    print(f"removed {n} of {len(set(a.ids))} ids; {len(idx)} left in {a.index}")
    return 0 if n == len(set(a.ids)) else 1


def _cmd_info(a):
    from zoo.index import load

    info = load(a.index, verify=not a.fast).info()
    print(json.dumps(info, indent=2))
    return 0


def _cmd_dedup(a):
    from zoo.index import build, load

    if Path(a.dir, "manifest.json").is_file():
        idx = load(a.dir)
    else:
        image_inputs([a.dir])
        idx = build(a.dir, model=a.model, input_size=a.input_size, batch_size=a.batch_size, index_type=a.type)
    groups = idx.duplicates(threshold=a.threshold, k=a.k)
    paths = [[(m or {}).get("path", str(i)) for i, m in zip(g, idx.metadata(g))] for g in groups]
    if a.json:
        print(json.dumps(paths, indent=2))
    else:
        for g in paths:
            print("\n  ".join(g))
        print(f"{len(groups)} groups of near-duplicates (cosine >= {a.threshold}), "
              f"{sum(len(g) - 1 for g in groups)} redundant images", file=sys.stderr)
    return 0


def _recall(text):
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"recall is a fraction in (0, 1], got {text}")
    return value


def _finite(text):
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value or abs(value) == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number such as 0.9, got {text!r}")
    return value


def add_parser(subparsers):
    """Register ``index`` (build|search|add|remove|info) and ``dedup`` on an argparse subparsers object."""
    p = subparsers.add_parser("index", help="similarity search over image collections")
    sub = p.add_subparsers(dest="index_command", required=True)

    s = sub.add_parser("build", help="embed a folder of images and index it")
    s.add_argument("dir")
    s.add_argument("--out", required=True, help="index folder to write, e.g. photos.zidx (checked before embedding)")
    s.add_argument("--overwrite", action="store_true", help="replace an index already at --out")
    s.add_argument("--model", default="efficientnet_lite0")
    s.add_argument("--input-size", type=positive_int)
    s.add_argument("--metric", default="cosine", choices=["cosine", "l2"])
    s.add_argument("--type", default="auto", help="'auto' or a FAISS factory string (Flat, HNSW32, IVF1024,Flat)")
    s.add_argument("--recall", type=_recall, default=0.95, help="recall@10 target for 'auto' (default 0.95)")
    s.add_argument("--batch-size", type=positive_int, default=64)
    s.add_argument("--shard-size", type=positive_int, default=1024, help="images per resumable shard")
    s.add_argument("--work-dir", help="keep shards here (default OUT.work, removed on success); "
                                      "re-run the same command to resume an interrupted build")
    s.add_argument("--engine", default="local", choices=["local", "beam"],
                   help="embed the shards in this process (local) or in an Apache Beam pipeline (beam)")
    s.add_argument("--beam-option", action="append", metavar="--FLAG=VALUE",
                   help="a Beam pipeline option for --engine beam, repeatable, e.g. "
                        "--beam-option=--runner=FlinkRunner (default: the local BundleBasedDirectRunner)")
    s.add_argument("--runtime", default="auto", choices=["auto", "tensorflow", "tflite", "onnxruntime"],
                   help="what embeds the images; auto: TFLite on a machine without a GPU for 200+ images "
                        "(about 2.5x TensorFlow here), else TensorFlow")
    s.set_defaults(func=_cmd_build)

    s = sub.add_parser("search", help="nearest indexed images to query images")
    s.add_argument("index")
    s.add_argument("images", nargs="+")
    s.add_argument("-k", type=positive_int, default=10)
    s.add_argument("--batch-size", type=positive_int, default=64)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_search)

    s = sub.add_parser("add", help="add image files or a folder to an index")
    s.add_argument("index")
    s.add_argument("images", nargs="+")
    s.add_argument("--batch-size", type=positive_int, default=64)
    s.set_defaults(func=_cmd_add)

    s = sub.add_parser("remove", help="remove items by id")
    s.add_argument("index")
    s.add_argument("ids", nargs="+", type=int)
    s.set_defaults(func=_cmd_remove)

    s = sub.add_parser("info", help="show an index's model, type, expected recall and size")
    s.add_argument("index")
    s.add_argument("--fast", action="store_true", help="skip checksum verification")
    s.set_defaults(func=_cmd_info)

    s = subparsers.add_parser("dedup", help="near-duplicate groups in a folder (or a built index)")
    s.add_argument("dir")
    s.add_argument("--model", default="efficientnet_lite0")
    s.add_argument("--input-size", type=positive_int)
    s.add_argument("--threshold", type=_finite, default=0.9, help="cosine similarity to call two images duplicates")
    s.add_argument("-k", type=positive_int, default=10, help="neighbours examined per image")
    s.add_argument("--type", default="auto")
    s.add_argument("--batch-size", type=positive_int, default=64)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_dedup)
    return p
