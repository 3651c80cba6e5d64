"""Command line: ``zoo list|info|classify|embed|finetune|evaluate`` (and ``index``/``dedup``)."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

EXIT_USAGE, EXIT_ERROR = 2, 1


def _cmd_list(a):
    import zoo
    from zoo.weights.resolve import weights_available

    names = zoo.list_models(a.pattern, pretrained=a.pretrained)
    print(f"{'name':22} {'size':>5} {'dim':>5} {'params':>8} {'GMACs':>6} {'top1':>5}  weights here")
    for n in names:
        e = zoo.get_entry(n)
        print(f"{n:22} {e.input_size:>5} {e.feature_dim:>5} {e.params_m:>7.1f}M {e.gmacs:>6.2f} "
              f"{e.top1 or '-':>5}  {'yes' if weights_available(e) else 'no'}")
    return 0


def _cmd_info(a):
    import zoo

    print(json.dumps(zoo.info(a.name), indent=2))
    return 0


def _cmd_classify(a):
    import zoo

    m = zoo.load(a.model)
    results = m.classify(a.images, top_k=a.top_k)
    for src, top in zip(m.last_sources, results):
        print(src)
        for idx, label, p in top:
            print(f"  {p:6.1%}  {label} ({idx})")
    return 0 if not m.last_skipped else EXIT_ERROR


def _cmd_embed(a):
    import numpy as np

    import zoo

    m = zoo.load(a.model, input_size=a.input_size)
    e = m.embed(a.dir, batch_size=a.batch_size, normalize=a.normalize)
    out = Path(a.out)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, embeddings=e, paths=np.array([str(p) for p in m.last_sources]),
             model=m.entry.full_name, fingerprint=json.dumps(m.fingerprint()))
    tmp.replace(out)
    print(f"wrote {e.shape[0]} x {e.shape[1]} embeddings to {out}" +
          (f"; skipped {len(m.last_skipped)} unreadable files" if m.last_skipped else ""))
    return 0


def _cmd_finetune(a):
    import zoo
    from zoo import data

    train = data.load(a.data, "train")
    if a.subset:
        train = train.subset(total=a.subset, seed=a.seed)
    m = zoo.load(a.model, input_size=a.input_size)
    clf = m.finetune(train, epochs=a.epochs, head_epochs=a.head_epochs, batch_size=a.batch_size,
                     lr=a.lr, augment=a.augment, out_dir=a.out, seed=a.seed)
    model_dir = clf.save(Path(a.out) / "model")  # plots and checkpoint stay beside it in --out
    print(f"saved {model_dir}")
    try:
        test = data.load(a.data, "test")
    except zoo.ZooError:
        return 0
    r = clf.evaluate(test, plot=Path(a.out) / "confusion_test.png")
    print(f"test accuracy {r['accuracy']:.4f} on {r['n']} images")
    return 0


def _cmd_evaluate(a):
    import zoo
    from zoo import data

    clf = zoo.load(a.model_dir)
    if not hasattr(clf, "evaluate"):
        print(f"{a.model_dir} is not a fine-tuned classifier", file=sys.stderr)
        return EXIT_USAGE
    r = clf.evaluate(data.load(a.data, a.split), plot=a.plot, tta=a.tta)
    print(json.dumps({k: v for k, v in r.items() if k != "confusion_matrix"}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zoo", description="Pretrained Keras backbones for transfer learning.")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="list registered models")
    s.add_argument("pattern", nargs="?", default="*", help="wildcard, e.g. 'resnet*'")
    s.add_argument("--pretrained", action="store_true", help="only models whose weights are on this machine")
    s.set_defaults(func=_cmd_list)

    s = sub.add_parser("info", help="show a model's metadata as JSON")
    s.add_argument("name")
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser("classify", help="ImageNet top-k labels for image files")
    s.add_argument("images", nargs="+")
    s.add_argument("--model", default="efficientnet_lite0")
    s.add_argument("-k", "--top-k", type=int, default=5)
    s.set_defaults(func=_cmd_classify)

    s = sub.add_parser("embed", help="embed every image under a folder into an .npz file")
    s.add_argument("dir")
    s.add_argument("--out", required=True, help="output .npz (embeddings, paths, model)")
    s.add_argument("--model", default="efficientnet_lite0")
    s.add_argument("--input-size", type=int)
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    s.set_defaults(func=_cmd_embed)

    s = sub.add_parser("finetune", help="fine-tune a model on labelled data and save it")
    s.add_argument("data", help="'fashion_mnist', 'tfds:<name>' or a folder of class subfolders")
    s.add_argument("--model", default="efficientnet_lite0")
    s.add_argument("--out", required=True, help="output folder: model/, curves.png, confusion matrices")
    s.add_argument("--input-size", type=int)
    s.add_argument("--epochs", type=int, default=3)
    s.add_argument("--head-epochs", type=int, default=10)
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--lr", type=float, default=5e-4)
    s.add_argument("--augment", default="light")
    s.add_argument("--subset", type=int, help="train on a stratified subset of this many images")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_cmd_finetune)

    s = sub.add_parser("evaluate", help="evaluate a saved classifier folder on labelled data")
    s.add_argument("model_dir")
    s.add_argument("data")
    s.add_argument("--split", default="test")
    s.add_argument("--plot", help="write the confusion matrix PNG here")
    s.add_argument("--tta", action="store_true", help="average with horizontally mirrored images (2x the time)")
    s.set_defaults(func=_cmd_evaluate)

    try:
        from zoo.index.cli import add_parser
    except ImportError:
        pass
    else:
        add_parser(sub)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from zoo.errors import ZooError

    try:
        return args.func(args)
    except ZooError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
