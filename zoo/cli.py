"""Command line: ``zoo list|info|classify|embed|finetune|evaluate`` (and ``index``/``dedup``).

TensorFlow is imported only by the commands that run a model, so ``zoo --help``, ``zoo list``
and ``zoo info`` start fast. Mistakes a user can make print one ``error: ...`` line on stderr
(exit 1; usage errors exit 2); anything unexpected prints ``internal error: ...``; ``--debug``
adds the traceback. Subcommands defined outside this module are plugins: ``f(subparsers)``
calling ``subparsers.add_parser(...).set_defaults(func=...)``, declared as entry points in the
group ``zoo.commands`` (pyproject.toml; other packages may add their own), so ``zoo`` and
``python -m zoo`` are one CLI with every subcommand.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path

from zoo.errors import ZooError

EXIT_USAGE, EXIT_ERROR, EXIT_INTERRUPTED = 2, 1, 130
PLUGIN_GROUP = "zoo.commands"  # entry points: command name -> "module:add_commands"
# Built-in plugins, imported only when one of their commands runs (FAISS and numpy take about a
# second to import); otherwise a stub with the same name and help stands in for ``zoo --help``.
BUILTIN_PLUGINS = {
    "zoo.index.cli:add_parser": {"index": "similarity search over image collections",
                                 "dedup": "near-duplicate groups in a folder (or a built index)"},
    "zoo.export:add_commands": {"export": "export a model for serving (SavedModel, TFLite, ONNX)"},
}


class OutputPathError(ZooError, ValueError):
    """An output path that cannot be written (checked before any work is done)."""


# ---- argument types and path checks (shared with the plugin CLIs) -------------------------------
def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction such as 0.2, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return value


def output_file(path, what: str = "--out") -> Path:
    """``path`` as a writable file path; its folder is created. Raises OutputPathError."""
    out = Path(path).expanduser()
    if out.is_dir():
        raise OutputPathError(f"{what} {out} is a folder; give a file name inside it, e.g. {out / 'out.npz'}")
    _writable_folder(out.parent, f"{what} {out}")
    return out


def output_dir(path, what: str = "--out") -> Path:
    """``path`` as a folder that can be written (created, with its parents). Raises OutputPathError."""
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"{what} {out} is a file; give a folder path")
    _writable_folder(out, f"{what} {out}")
    return out


def _writable_folder(folder: Path, what: str):
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"cannot create the folder {folder} for {what}: {exc.strerror or exc}; "
                              "choose another path") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write {what}: {folder} is not writable; choose another path")


def image_inputs(paths) -> list[str]:
    """File paths, with every folder expanded into its image files (recursively)."""
    from zoo.errors import ImageError
    from zoo.images import IMAGE_EXTENSIONS, list_image_files

    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = list_image_files(p)
            if not found:
                raise ImageError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {p}")
            files += [str(f) for f in found]
        elif p.exists():
            files.append(str(p))
        else:
            raise ImageError(f"{p}: no such file or folder")
    return files


def report_skipped(skipped):
    """One stderr line per input a call skipped, naming it and why."""
    for src, reason in skipped:
        print(f"skipped {src}: {reason}" if str(src) not in str(reason) else f"skipped {reason}", file=sys.stderr)


# ---- commands -----------------------------------------------------------------------------------
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

    files = image_inputs(a.images)
    m = zoo.load(a.model, runtime=a.runtime)
    r = m.classify(files, top_k=a.top_k, batch_size=a.batch_size, return_sources=True)
    for src, top in zip(r.sources, r.outputs):
        print(src)
        for idx, label, p in top:
            print(f"  {p:6.1%}  {label} ({idx})")
    report_skipped(r.skipped)
    return EXIT_ERROR if r.skipped else 0


def _cmd_embed(a):
    out = output_file(a.out)
    import numpy as np

    import zoo

    files = image_inputs([a.dir])
    m = zoo.load(a.model, input_size=a.input_size, runtime=a.runtime)
    r = m.embed(files, batch_size=a.batch_size, normalize=a.normalize, return_sources=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, embeddings=r.outputs, paths=np.array([str(p) for p in r.sources]),
                     model=m.entry.full_name, fingerprint=json.dumps(m.fingerprint()))
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    report_skipped(r.skipped)
    print(f"wrote {r.outputs.shape[0]} x {r.outputs.shape[1]} embeddings to {out}" +
          (f"; skipped {len(r.skipped)} unreadable files" if r.skipped else ""))
    return 0


def _held_out_test(train, a):
    """(train, test, note) for data without a test split: a stratified, seeded hold-out of
    ``--test-fraction`` taken before training, or (train, None, why) when there is none."""
    import numpy as np

    counts = np.bincount(train.labels, minlength=train.num_classes)
    if a.test_fraction <= 0:
        return train, None, "--test-fraction is 0, so no test set is held out"
    if counts.min() < 3:  # each class needs a test, a validation and a training image
        return train, None, (f"class {train.class_names[int(counts.argmin())]!r} has only {counts.min()} "
                             "image(s), too few to hold out a test set")
    rest, test = train.split(a.test_fraction, seed=a.seed)
    return rest, test, (f"held out {len(test)} of its {len(train)} images as the test set "
                        f"({a.test_fraction:g} of each class, seed {a.seed}); they are not trained on")


def _cmd_finetune(a):
    out = output_dir(a.out)
    import zoo
    from zoo import data
    from zoo.errors import DataError, NoSplitError

    train = data.load(a.data, "train")
    try:
        test, test_what = data.load(a.data, "test"), f"the test split of {a.data}"
    except DataError as exc:  # a folder without test/, or a tensorflow-datasets set without one
        if not isinstance(exc, NoSplitError) and not str(a.data).startswith("tfds:"):
            raise
        train, test, note = _held_out_test(train, a)
        print(f"{a.data} has no test split: {note}")
        test_what = "held out before training"
        if test is not None and isinstance(test.images, list):  # which files: to re-evaluate on them
            from zoo.io import atomic_write

            atomic_write(out / "split.json", json.dumps(
                {"data": str(a.data), "test_fraction": a.test_fraction, "seed": a.seed,
                 "test": [str(p) for p in test.images], "train": [str(p) for p in train.images]}, indent=1))
    if a.subset:
        train = train.subset(total=a.subset, seed=a.seed)
    m = zoo.load(a.model, input_size=a.input_size)
    clf = m.finetune(train, epochs=a.epochs, head_epochs=a.head_epochs, batch_size=a.batch_size,
                     lr=a.lr, augment=a.augment, out_dir=out, seed=a.seed)
    model_dir = clf.save(out / "model")  # plots and checkpoint stay beside it in --out
    print(f"saved {model_dir}")
    if test is None:
        val = clf.history.get("val_accuracy") or []
        print("no test accuracy (no test images)" + (f"; best validation accuracy {max(val):.4f}" if val else ""))
        return 0
    r = clf.evaluate(test, batch_size=a.batch_size, plot=out / "confusion_test.png")
    print(f"test accuracy {r['accuracy']:.4f} on {r['n']} images ({test_what})")
    return 0


def _cmd_evaluate(a):
    import zoo
    from zoo import data
    from zoo.errors import SavedModelError

    plot = output_file(a.plot, "--plot") if a.plot else None
    clf = zoo.load(a.model_dir)
    if not hasattr(clf, "evaluate"):
        raise SavedModelError(f"{a.model_dir} is not a fine-tuned classifier folder; give the model/ folder "
                              "that `zoo finetune` wrote")
    r = clf.evaluate(data.load(a.data, a.split), plot=plot, tta=a.tta)
    print(json.dumps({k: v for k, v in r.items() if k != "confusion_matrix"}, indent=2))
    return 0


def _cmd_kinds(a):
    from zoo.kinds import kinds

    for k in kinds():
        print(f"{k.name:12} {k.title:24} {k.summary}")
    return 0


def _setting(text: str):
    """``key=value`` (the value read as JSON when it parses: numbers, true/false, lists)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key.strip().replace("-", "_"), json.loads(value)
    except json.JSONDecodeError:
        return key.strip().replace("-", "_"), value


def _cmd_train(a):
    out = output_dir(a.out)
    from zoo.data import named_dataset, named_datasets
    from zoo.errors import RecipeError
    from zoo.kinds import get_kind

    kind = get_kind(a.kind)
    if kind.training is None:
        raise RecipeError(f"a {a.kind} has no backbone to train; see `zoo {a.kind} --help` or its Python API")
    if a.data in named_datasets():
        train, val = named_dataset(a.data, a.kind, n_train=a.n_train)
    else:
        train, val = kind.training.read(a.data), None
    settings = {k: v for k, v in (("epochs", a.epochs), ("head_epochs", a.head_epochs), ("batch_size", a.batch_size),
                                  ("lr", a.lr), ("input_size", a.input_size), ("max_minutes", a.minutes),
                                  ("ema", a.ema)) if v is not None}
    task = kind.train(train, val, backbone=a.backbone, out_dir=out, seed=a.seed, **settings, **dict(a.set or []))
    folder = task.save(out / "model")
    print(f"saved the {a.kind} to {folder} (kept the {task.training_config.get('kept')} phase; "
          f"{task.training_config.get('seconds')} s of training; curves.png in {out})")
    return 0


def _cmd_predict(a):
    import zoo

    files = image_inputs(a.images)
    m = zoo.load(a.model)
    if not hasattr(m, "predict_described"):
        raise ZooError(f"{a.model} holds a {getattr(m, 'kind', type(m).__name__)}, which `zoo predict` cannot run: "
                       "use its own command (zoo --help)")
    r = m.predict_described(files, batch_size=a.batch_size)
    if a.json:
        print(json.dumps([{"image": str(s), **d} for s, d in zip(r.sources, r.outputs)], indent=2))
    else:
        for s, d in zip(r.sources, r.outputs):
            print(f"{s}: {json.dumps(d)}")
    report_skipped(r.skipped)
    return EXIT_ERROR if r.skipped else 0


def apps_home() -> Path:
    """``Home.py`` of the Streamlit apps, which install beside the ``zoo`` package."""
    import zoo

    home = Path(zoo.__file__).resolve().parent.parent / "apps" / "Home.py"
    if not home.is_file():
        raise ZooError(f"the apps are not installed beside zoo (no {home}): reinstall keras-vision-zoo")
    return home


def _cmd_apps(a):
    import subprocess

    from zoo.extras import require

    require("streamlit", "`zoo apps`")
    cmd = [sys.executable, "-m", "streamlit", "run", str(apps_home()), *a.streamlit_args]
    return subprocess.call(cmd)


# ---- parser ---------------------------------------------------------------------------------
def _add_common(p, default):
    p.add_argument("-v", "--verbose", action="store_true", default=default, help="log more")
    p.add_argument("--debug", action="store_true", default=default, help="print tracebacks of errors")


class _Subcommands(argparse._SubParsersAction):
    """Every subcommand (plugins' included) also accepts ``-v`` and ``--debug`` after its name; a name
    added twice (a plugin given again) keeps its first definition."""

    def add_parser(self, name, **kwargs):
        if name in self.choices:
            return argparse.ArgumentParser(add_help=False)  # detached: the first definition stays
        p = super().add_parser(name, **kwargs)
        _add_common(p, argparse.SUPPRESS)
        return p


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _Subcommands)


def _load_plugin(spec: str):
    """The plugin callable named ``module:function``, or the ImportError that kept it out."""
    import importlib

    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:  # an optional part (e.g. FAISS for the index) that is not installed
        return exc


def _unavailable(exc: ImportError):
    def func(a):
        from zoo.errors import MissingDependencyError

        if isinstance(exc, MissingDependencyError):
            raise exc
        raise MissingDependencyError(f"`zoo {a.command}` is unavailable: {exc}. Install the missing package "
                                     "(pip install 'keras-vision-zoo[all]')")
    return func


def installed_plugins() -> list:
    """The ``add_commands`` of every module named in the ``zoo.commands`` entry points (one call
    per module, whichever of its commands the entry points name), or a stand-in that says why a
    module could not be imported."""
    from importlib.metadata import entry_points

    by_module: dict[str, list[str]] = {}
    for ep in entry_points(group=PLUGIN_GROUP):
        names = by_module.setdefault(ep.value, [])
        if ep.name not in names:
            names.append(ep.name)
    plugins = []
    for spec, names in by_module.items():
        plugin = _load_plugin(spec)
        plugins.append(plugin if callable(plugin) else _stand_ins(names, plugin))
    return plugins


def _stand_ins(names, exc):
    def add(sub):
        for name in names:
            s = sub.add_parser(name, help=f"(unavailable: {exc})")
            s.add_argument("args", nargs=argparse.REMAINDER)
            s.set_defaults(func=_unavailable(exc))
    return add


def build_parser(plugins=None, command: str | None = None):
    """``(parser, subparsers)``: the core commands, the built-in plugins (``index``, ``dedup``)
    and ``plugins``, each a callable ``plugin(subparsers)`` (default: :func:`installed_plugins`).
    With ``command`` (the word the user typed, "" for none), built-in plugins that do not own it
    are not imported."""
    if plugins is None:
        plugins = installed_plugins()
    p = _Parser(prog="zoo", description="Pretrained Keras backbones for transfer learning.")
    _add_common(p, False)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("list", help="list registered models")
    s.add_argument("pattern", nargs="?", default="*", help="wildcard, e.g. 'resnet*'")
    s.add_argument("--pretrained", action="store_true", help="only models whose weights are on this machine")
    s.set_defaults(func=_cmd_list)

    s = sub.add_parser("info", help="show a model's metadata as JSON")
    s.add_argument("name")
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser("classify", help="ImageNet top-k labels for image files or folders")
    s.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    s.add_argument("--model", default="efficientnet_lite0")
    s.add_argument("-k", "--top-k", type=positive_int, default=5)
    s.add_argument("--batch-size", type=positive_int, default=64)
    s.add_argument("--runtime", choices=["tensorflow", "tflite", "onnxruntime"], default="tensorflow",
                   help="inference runtime (tflite/onnxruntime: converted once, cached; see bench/runtimes.py)")
    s.set_defaults(func=_cmd_classify)

    s = sub.add_parser("embed", help="embed every image under a folder into an .npz file")
    s.add_argument("dir")
    s.add_argument("--out", required=True, help="output .npz (embeddings, paths, model); folders are created")
    s.add_argument("--model", default="efficientnet_lite0")
    s.add_argument("--input-size", type=positive_int)
    s.add_argument("--batch-size", type=positive_int, default=64)
    s.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    s.add_argument("--runtime", choices=["tensorflow", "tflite", "onnxruntime"], default="tensorflow",
                   help="inference runtime (tflite/onnxruntime: converted once, cached; see bench/runtimes.py)")
    s.set_defaults(func=_cmd_embed)

    s = sub.add_parser("finetune", help="fine-tune a model on labelled data and save it")
    s.add_argument("data", help="'fashion_mnist', 'tfds:<name>' or a folder of class subfolders "
                                "(with train/ and test/ subfolders, or one set of class folders)")
    s.add_argument("--model", default="efficientnet_lite0")
    s.add_argument("--out", required=True, help="output folder: model/, curves.png, confusion matrices "
                                                "(and split.json when a test set is held out)")
    s.add_argument("--input-size", type=positive_int)
    s.add_argument("--epochs", type=non_negative_int, default=3, help="epochs unfrozen (0: head only)")
    s.add_argument("--head-epochs", type=non_negative_int, default=10)
    s.add_argument("--batch-size", type=positive_int, default=64)
    s.add_argument("--lr", type=positive_float, default=5e-4)
    s.add_argument("--augment", default="light")
    s.add_argument("--subset", type=positive_int, help="train on a stratified subset of this many images")
    s.add_argument("--test-fraction", type=fraction, default=0.2,
                   help="for data without a test split: the stratified fraction held out as the test set "
                        "before training (default 0.2; 0 reports validation accuracy only)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_cmd_finetune)

    s = sub.add_parser("evaluate", help="evaluate a saved classifier folder on labelled data")
    s.add_argument("model_dir")
    s.add_argument("data")
    s.add_argument("--split", default="test")
    s.add_argument("--plot", help="write the confusion matrix PNG here")
    s.add_argument("--tta", action="store_true", help="average with horizontally mirrored images (2x the time)")
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser("kinds", help="the kinds of model (classifier, detector, ...) and what each does")
    s.set_defaults(func=_cmd_kinds)

    s = sub.add_parser("train", help="train a task of any kind on a backbone and save it",
                       description="Train KIND (see `zoo kinds`) on DATA: a named demo dataset ('scenes') or "
                                   "what the kind reads (classifier: 'fashion_mnist', 'tfds:<name>' or a folder of "
                                   "class subfolders; multilabel: a CSV of path,labels; detector: a COCO .json or "
                                   "VOC folder; segmenter: a folder with images/ and masks/). Head first on the "
                                   "frozen backbone, then unfrozen (zoo.training); writes OUT/model and OUT/curves.png.")
    s.add_argument("kind")
    s.add_argument("data")
    s.add_argument("--out", required=True, help="run folder")
    s.add_argument("--backbone", default="efficientnet_lite0")
    s.add_argument("--head-epochs", type=non_negative_int, help="epochs with the backbone frozen (kind's default)")
    s.add_argument("--epochs", type=non_negative_int, help="then epochs with it unfrozen (kind's default)")
    s.add_argument("--batch-size", type=positive_int)
    s.add_argument("--lr", type=positive_float, help="peak learning rate once unfrozen")
    s.add_argument("--input-size", type=positive_int)
    s.add_argument("--minutes", type=positive_float, help="wall-clock cap on training; the learning rate decays over "
                                                         "it (give more epochs than fit: the clock ends the run)")
    s.add_argument("--ema", type=fraction, help="keep a moving average of the weights with this momentum (e.g. 0.99)")
    s.add_argument("--n-train", type=positive_int, default=2000, help="training examples of a named demo dataset")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--set", type=_setting, action="append", metavar="KEY=VALUE",
                   help="any other training setting of zoo.training.TrainConfig or the kind, e.g. --set dropout=0.3")
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("predict", help="run a saved model of any kind on images (JSON-like lines)")
    s.add_argument("model", help="a folder written by save() or a named model (mtcnn_faces)")
    s.add_argument("images", nargs="+", help="image files or folders")
    s.add_argument("--batch-size", type=positive_int, default=16)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_predict)

    s = sub.add_parser("apps", help="start the Streamlit demos at http://localhost:8501 (this machine only)",
                       description="Start the Streamlit demo apps. Options after the command go to `streamlit "
                                   "run`, e.g. `zoo apps --server.port 8502`. To share them on a network: "
                                   "`--server.address 0.0.0.0`; visitors may then open server folders only under "
                                   "$ZOO_APPS_ROOT (see apps/serving.py).")
    s.add_argument("streamlit_args", nargs=argparse.REMAINDER, help="passed to `streamlit run`")
    s.set_defaults(func=_cmd_apps)

    for spec, commands in BUILTIN_PLUGINS.items():
        plugin = _load_plugin(spec) if command is None or command in commands else None
        if callable(plugin):
            plugin(sub)
            continue
        for name, text in commands.items():  # stand-ins for --help, or saying what is missing
            s = sub.add_parser(name, help=text)
            s.add_argument("args", nargs=argparse.REMAINDER)
            s.set_defaults(func=_unavailable(plugin) if plugin is not None else None)
    for add in kind_commands():
        add(sub)
    for plugin in plugins:
        plugin(sub)
    return p, sub


def kind_commands() -> list:
    """``add_commands`` of every kind that has a ``cli`` module (``zoo/tasks/<kind>/cli.py``): found
    from the registry of kinds, imported without TensorFlow."""
    import importlib
    import importlib.util

    from zoo.kinds import kind_names

    out = []
    for kind in kind_names():
        name = f"zoo.tasks.{kind}.cli"
        if importlib.util.find_spec(name) is not None:
            out.append(importlib.import_module(name).add_commands)
    return out


# ---- running ----------------------------------------------------------------------------------
def _command_word(argv) -> str | None:
    """The subcommand's name: the first word that is not a flag (global flags take no value)."""
    return next((w for w in argv if not w.startswith("-")), None)


def _configure_logging(verbose: bool):
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not verbose:  # TensorFlow's and absl's Python loggers: errors only
        for name in ("tensorflow", "absl"):
            logging.getLogger(name).setLevel(logging.ERROR)


def run(args) -> int:
    """Run a parsed command: ZooError/OSError -> ``error: ...`` (exit 1), anything else ->
    ``internal error: ...`` (exit 1); tracebacks only with ``--debug``."""
    debug = getattr(args, "debug", False)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `zoo list | head`: the reader left; say nothing more
        try:  # (and keep Python from complaining when it flushes stdout at exit)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return EXIT_ERROR
    except (ZooError, OSError) as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001  (the last resort: one line, not a traceback)
        if debug:
            traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"internal error: {type(exc).__name__}: {first} (run with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_ERROR


def main(argv=None, plugins=None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run the command; returns the exit code.
    ``plugins``: the subcommand plugins (default: those installed, :func:`installed_plugins`)."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    parser, _ = build_parser(plugins, command=_command_word(argv) or "")
    try:
        args, rest = parser.parse_known_args(argv)
        if rest and args.command != "apps":  # `zoo apps` hands what it does not know to streamlit
            parser.parse_args(argv)  # prints the usage error and exits 2
        if rest:
            args.streamlit_args = [*rest, *args.streamlit_args]
    except SystemExit as exc:  # --help (0) or a usage error (2, message already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    _configure_logging(args.verbose)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
