"""``zoo zero-shot`` and ``zoo text-search``: the image-text kind's commands (zoo.cli adds every kind's).

```
zoo zero-shot cat.jpg cup.png --classes "cat,cup of coffee,rocket"          # ConSE from Lite0
zoo zero-shot shoes/ --classes "sandal,sneaker,boot" --model runs/image_text/model
zoo text-search photos.zidx "a white sneaker" -k 10
```
"""
from __future__ import annotations

import json


def _classes(text: str) -> list[str]:
    import argparse

    names = [c.strip() for c in text.split(",") if c.strip()]
    if len(names) < 2:
        raise argparse.ArgumentTypeError(f"give at least two comma-separated class names, got {text!r}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"class names must differ, got {text!r}")
    return names


def _cmd_zero_shot(a):
    from zoo.tasks.image_text.model import zero_shot_files
    from zoo.cli import image_inputs, report_skipped

    files = image_inputs(a.images)
    templates = [t for t in a.templates.split("|")] if a.templates else None
    sources, probs, skipped = zero_shot_files(files, a.classes, a.model, templates)
    if a.json:
        print(json.dumps([{"image": str(s), "probs": {c: float(p) for c, p in zip(a.classes, row)}}
                          for s, row in zip(sources, probs)], indent=2))
    else:
        for s, row in zip(sources, probs):
            print(s)
            for i in row.argsort()[::-1][:a.top_k]:
                print(f"  {row[i]:6.1%}  {a.classes[i]}")
    report_skipped(skipped)
    return 1 if skipped else 0


def _cmd_text_search(a):
    import zoo
    import zoo.index
    from zoo.tasks.image_text.model import search_text

    idx = zoo.index.load(a.index)
    model = zoo.load(a.model) if a.model else idx.model
    res = search_text(idx, model, a.text, k=a.k)
    hits = [{"id": int(i), "score": float(s), "metadata": m}
            for i, s, m in zip(res.ids[0], res.scores[0], res.metadata[0]) if i >= 0]
    if a.json:
        print(json.dumps({"query": a.text, "hits": hits}, indent=2))
    else:
        for h in hits:
            print(f"  {h['score']:8.4f}  {h['id']:>8}  {(h['metadata'] or {}).get('path', json.dumps(h['metadata']))}")
    return 0


def add_commands(sub):
    """Add ``zero-shot`` and ``text-search`` to zoo's argparse subparsers."""
    from zoo.cli import positive_int

    s = sub.add_parser("zero-shot", help="probabilities over class names you type, for image files",
                       description="Zero-shot classification: each image against the given class names. With "
                                   "--model, a saved image-text model folder (zoo.tasks.image_text.train); without, "
                                   "the ConSE baseline from EfficientNet-Lite0's ImageNet classes.")
    s.add_argument("images", nargs="+", help="image files or folders")
    s.add_argument("--classes", required=True, type=_classes, help='comma-separated, e.g. "sandal,sneaker,boot"')
    s.add_argument("--model", help="a saved image-text model folder (default: ConSE baseline)")
    s.add_argument("--templates", help='prompt templates separated by "|", each with {} (default: the model\'s)')
    s.add_argument("-k", "--top-k", type=positive_int, default=3, help="classes shown per image")
    s.add_argument("--json", action="store_true", help="print every probability as JSON")
    s.set_defaults(func=_cmd_zero_shot)

    s = sub.add_parser("text-search", help="search an index built with an image-text model by a sentence")
    s.add_argument("index", help="a .zidx folder built with --model <image-text model folder>")
    s.add_argument("text", help='e.g. "a white sneaker"')
    s.add_argument("-k", type=positive_int, default=10)
    s.add_argument("--model", help="the image-text model folder (default: the one the index records)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_text_search)
    return sub
