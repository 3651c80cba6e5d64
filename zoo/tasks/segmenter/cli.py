"""``zoo segment IMAGE... --model DIR [--draw OUT/]`` and ``zoo train-segmenter DATA --out DIR``: the
segmenter kind's commands (``zoo.cli`` adds every kind's ``add_commands``)."""
from __future__ import annotations

import sys
from pathlib import Path

from zoo.cli import image_inputs, output_dir, positive_int, report_skipped
from zoo.errors import DataError
from zoo.tasks.segmenter.tta import BY_NAME   # no TensorFlow at import: the parser stays quick

EXIT_ERROR = 1


def add_commands(subparsers):
    p = subparsers.add_parser("segment", help="per-pixel classes with a trained segmenter",
                              description="Print each image's class areas; --draw writes overlays and "
                                          "palette PNG label maps.")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--model", required=True, help="a segmenter folder (written by train-segmenter or seg.save)")
    p.add_argument("--draw", metavar="OUT", help="folder for <name>_overlay.png and <name>_mask.png")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--tta", choices=tuple(BY_NAME), default="none",
                   help="test-time augmentation: mirrored, or mirrored at four scales (8x the work)")
    p.set_defaults(func=_cmd_segment)

    t = subparsers.add_parser("train-segmenter", help="train a segmenter on image+mask folders or the demo scenes",
                              description="DATA: a folder with images/ and masks/ (PNG label maps named like the "
                                          "images; 255 = ignore) or a named demo set ('scenes').")
    t.add_argument("data", help="a folder holding images/ and masks/, or 'scenes'")
    t.add_argument("--out", required=True, help="output folder: model/, curves.png, overlays.png")
    t.add_argument("--backbone", default="efficientnet_lite0")
    t.add_argument("--head", choices=["unet", "deeplabv3plus"], default="unet")
    t.add_argument("--epochs", type=int, default=None, help="epochs with the backbone unfrozen (0: head only)")
    t.add_argument("--head-epochs", type=int, default=None, help="epochs on the frozen backbone")
    t.add_argument("--input-size", type=positive_int, default=128)
    t.add_argument("--scenes", type=positive_int, default=2000, help="training scenes when DATA is 'scenes'")
    t.add_argument("--val", help="validation folder (images/ and masks/); default: 10%% of the training data")
    t.set_defaults(func=_cmd_train)


def _cmd_segment(a) -> int:
    import numpy as np
    from PIL import Image

    import zoo
    from zoo import images as zimages
    from zoo.tasks.segmenter.draw import class_areas, overlay, palette
    from zoo.tasks.segmenter.model import Segmenter

    out = output_dir(a.draw, "--draw") if a.draw else None
    files = image_inputs(a.images)
    seg = zoo.load(a.model)
    if not isinstance(seg, Segmenter):
        raise DataError(f"{a.model} holds a {getattr(seg, 'kind', type(seg).__name__)} model, not a segmenter")
    r = seg.segment(files, batch_size=a.batch_size, return_sources=True, tta=BY_NAME[a.tta])
    pal = palette(seg.num_classes).ravel().tolist()
    for src, m in zip(r.sources, r.outputs):
        areas = class_areas(m, seg.class_names)
        print(f"{src}  {m.shape[1]}x{m.shape[0]}  " + ", ".join(f"{k} {v:.1%}" for k, v in areas.items()))
        if out is not None:
            stem = Path(src).stem
            pic = overlay(np.clip(zimages.read_image(src) + 0.5, 0, 255).astype(np.uint8), m, seg.num_classes)
            Image.fromarray(pic).save(out / f"{stem}_overlay.png")
            lab = Image.fromarray(m.astype(np.uint8), mode="P")
            lab.putpalette(pal)
            lab.save(out / f"{stem}_mask.png")
    if out is not None:
        print(f"wrote {len(r.outputs)} overlays and label maps to {out}", file=sys.stderr)
    report_skipped(r.skipped)
    return EXIT_ERROR if r.skipped else 0


def _cmd_train(a) -> int:
    from zoo.data import named_dataset, named_datasets
    from zoo.tasks.segmenter.data import read_folder
    from zoo.tasks.segmenter.model import Segmenter

    out = output_dir(a.out)
    kwargs = {k: v for k, v in (("epochs", a.epochs), ("head_epochs", a.head_epochs)) if v is not None}
    if a.data in named_datasets():
        train, val = named_dataset(a.data, "segmenter", n_train=a.scenes, size=a.input_size)
    else:
        train = read_folder(Path(a.data))
        val = read_folder(Path(a.val)) if a.val else None
        if val is None:
            train, val = train.split(0.1)
    seg = Segmenter.train(train, val, backbone=a.backbone, head=a.head, out_dir=out, input_size=a.input_size,
                          **kwargs)
    r = seg.evaluate(val, progress=False)
    folder = seg.save(out / "model")
    print(f"validation mIoU {r['mIoU']:.4f}, pixel accuracy {r['pixel_accuracy']:.4f} ({r['n']} images)")
    print(f"model: {folder}  curves: {out / 'curves.png'}  overlays: {out / 'overlays.png'}")
    return 0
