"""Parity of every checkpoint conversion against its reference implementation (needs torch, timm, transformers).

Random-weight reference models (transformers DINOv2 / ViT / CLIP / SigLIP at tiny sizes, timm's real
ResNet50 and EfficientNet-B0) are saved in their native formats, loaded with ``zoo.load(entry,
weights=folder)`` and compared on scikit-image's photos, at the checkpoint's size and at another one
(position tables resampled). Prints the minimum embedding cosine and the largest absolute difference
(of the embedding, or of the logits for models with a head), per conversion and size.

    python bench/conversions.py [--out runs/conversions.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("ZOO_OFFLINE", "1")

import numpy as np  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/conversions.json")
    a = ap.parse_args()
    from tests.torch_reference import cosine, nchw, photos, randomize, require

    torch, transformers, timm = require("transformers", "timm")
    import keras

    import zoo
    from zoo.architectures.hub import HubArchitecture
    from zoo.registry import WeightFile, get_entry, register
    from tests.test_modern_backbones import TINY

    for name, (base, family, config, classes, size) in TINY.items():
        register(replace(get_entry(base), name=name, tag="test", builder=HubArchitecture(family, config, classes),
                         input_size=size, feature_dim=config["hidden_dim"],
                         weights=WeightFile(f"{name}.test", None, None, format="hub_folder")))
    vision = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, image_size=32,
                  patch_size=8)
    text = dict(vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                max_position_embeddings=16)
    refs = {
        "dinov2": (transformers.Dinov2Model(transformers.Dinov2Config(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=4, image_size=56, patch_size=14,
            layerscale_value=0.5)), "dinov2_tiny.test", (56, 224)),
        "vit": (transformers.ViTForImageClassification(transformers.ViTConfig(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, image_size=32,
            patch_size=8, num_labels=10)), "vit_tiny.test", (32, 224)),
        "clip": (transformers.CLIPModel(transformers.CLIPConfig(text_config={**text, "bos_token_id": 97,
                                                                              "eos_token_id": 98},
                                                                 vision_config=vision, projection_dim=24)),
                 "clip_tiny.test", (32, 224)),
        "siglip": (transformers.SiglipModel(transformers.SiglipConfig(text_config=text, vision_config=vision)),
                   "siglip_tiny.test", (32, 224)),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (ref, (hf, entry, sizes)) in enumerate(refs.items()):
            randomize(hf, seed=i)
            hf.save_pretrained(Path(tmp) / ref, safe_serialization=True)
            for size in sizes:
                m = zoo.load(entry, weights=Path(tmp) / ref, input_size=size)
                px = photos(size)
                x = nchw(px, m.preprocessing.mean, m.preprocessing.std)
                native = size == sizes[0]
                with torch.no_grad():
                    if ref == "vit":
                        want = hf(pixel_values=x, interpolate_pos_encoding=not native).logits.numpy()
                    else:
                        tower = hf if ref == "dinov2" else hf.vision_model
                        kw = {} if ref == "dinov2" else {"interpolate_pos_encoding": not native}
                        want = tower(pixel_values=x, **kw).pooler_output.numpy()
                if ref == "vit":
                    got = _logits(m, px)
                    emb_cos = float("nan")
                else:
                    got = m.embed(px, progress=False)
                    emb_cos = float(cosine(got, want).min())
                rows.append({"conversion": f"transformers {type(hf).__name__} -> {entry}", "size": size,
                             "native_size": native, "min_cosine": emb_cos,
                             "max_abs_diff": float(np.abs(got - want).max()),
                             "what": "logits" if ref == "vit" else "embedding (pooler_output)"})
                print(json.dumps(rows[-1]), flush=True)
                keras.backend.clear_session()
        for arch, entry, size in (("resnet50", "resnet50.timm_a1_in1k", 224),
                                  ("efficientnet_b0", "efficientnet_b0.timm_ra_in1k", 224)):
            t = time.perf_counter()
            ref = randomize(timm.create_model(arch, pretrained=False), scale=1.0)
            timm.models.save_for_hf(ref, Path(tmp) / arch, safe_serialization=True)
            m = zoo.load(entry, weights=Path(tmp) / arch, input_size=size)
            px = photos(size)
            x = nchw(px, m.preprocessing.mean, m.preprocessing.std)
            with torch.no_grad():
                want = ref(x).numpy()
                pooled = ref.forward_head(ref.forward_features(x), pre_logits=True).numpy()
            rows.append({"conversion": f"timm {arch} -> {entry}", "size": size, "native_size": True,
                         "min_cosine": float(cosine(m.embed(px, progress=False), pooled).min()),
                         "max_abs_diff": float(np.abs(_logits(m, px) - want).max()),
                         "logit_scale": float(np.abs(want).max()), "what": "logits; cosine of the pooled embedding",
                         "seconds": round(time.perf_counter() - t, 1)})
            print(json.dumps(rows[-1]), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=1))
    print("\n| conversion | size | min cosine | max abs diff |\n|---|---|---|---|")
    for r in rows:
        cos = "-" if r["min_cosine"] != r["min_cosine"] else f"{r['min_cosine']:.7f}"
        print(f"| {r['conversion']} ({r['what']}) | {r['size']}{'' if r['native_size'] else ' (resampled)'} | "
              f"{cos} | {r['max_abs_diff']:.1e} |")


def _logits(m, pixels):
    import keras

    from zoo.layers import Normalize

    p = m.preprocessing
    pooled = keras.Model(m.network.input, m.network.get_layer("predictions").input)(
        Normalize(p.mean, p.std)(pixels.astype("float32"))).numpy()
    kernel, bias = m.network.get_layer("predictions").get_weights()
    return pooled @ kernel + bias


if __name__ == "__main__":
    main()
