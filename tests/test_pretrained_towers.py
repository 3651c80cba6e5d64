"""Pretrained two-tower image-text models (CLIP, SigLIP): both towers from one checkpoint folder.

Random-weight Hugging Face CLIPModel / SiglipModel checkpoints with their tokenizers (a tiny BPE
vocabulary through CLIPTokenizer's tokenizer.json; a SentencePiece model through SiglipTokenizer)
are the references: token ids,
text and image vectors, logit scale and bias must match. A keras-hub two-tower preset (what
keras-hub downloads) is checked against keras-hub's own CLIPBackbone.
"""
import io
import json
from dataclasses import replace

import numpy as np
import pytest

import zoo
from tests.torch_reference import cosine, nchw, photos, randomize, require
from zoo.architectures.hub import HubArchitecture
from zoo.registry import WeightFile, get_entry, register, unregister

pt = pytest.importorskip("zoo.tasks.image_text.pretrained")
TEXTS = ["a photo of a cat", "A photo, of a DOG!", "an astronaut", "a cup of coffee"]
VISION = dict(patch_size=8, hidden_dim=64, num_layers=2, num_heads=2, intermediate_dim=128)


@pytest.fixture(scope="module", autouse=True)
def tiny_towers():
    for name, base, family, act in (("clip_pair", "clip_vit_base_patch16", "clip_vision", "quick_gelu"),
                                    ("siglip_pair", "siglip2_base_patch16_224", "siglip_vision", "gelu_approximate")):
        register(replace(get_entry(base), name=name, tag="test", input_size=32, feature_dim=64,
                         builder=HubArchitecture(family, {**VISION, "intermediate_activation": act}),
                         weights=WeightFile(f"{name}.test", None, None, format="hub_folder")))
    yield
    unregister("clip_pair.test"), unregister("siglip_pair.test")


def _clip_vocab(folder):
    """A tiny byte-level BPE vocabulary in CLIP's format (every byte, with and without </w>, a few merges)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars])}
    merges = ["a t</w>", "c at</w>", "p h", "ph o", "o t", "pho t", "o f</w>"]
    for m in merges:
        vocab["".join(m.split())] = len(vocab)
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return folder / "vocab.json", folder / "merges.txt"


def _spiece(path):
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXTS * 20 + ["hello world red car"] * 5), model_writer=buf, vocab_size=40,
        pad_id=0, eos_id=1, unk_id=2, bos_id=3, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        bos_piece="<bos>", hard_vocab_limit=False, minloglevel=2)
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """{name: (folder, model, tokenizer)}: CLIP (BPE, tokenizer.json), SigLIP (SentencePiece)."""
    torch, transformers = require("transformers")
    root = tmp_path_factory.mktemp("towers")
    vision = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, image_size=32,
                  patch_size=8)
    clip_tok = transformers.CLIPTokenizer(*map(str, _clip_vocab(root / "bpe")))
    text = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                max_position_embeddings=16)
    clip = transformers.CLIPModel(transformers.CLIPConfig(
        text_config={**text, "vocab_size": len(clip_tok), "bos_token_id": clip_tok.bos_token_id,
                     "eos_token_id": clip_tok.eos_token_id, "pad_token_id": clip_tok.pad_token_id},
        vision_config=vision, projection_dim=24))
    spiece = _spiece(root / "spiece.model")
    siglip_tok = transformers.SiglipTokenizer(str(spiece))
    out = {}
    for name, tok in (("clip", clip_tok), ("siglip", siglip_tok)):
        if name == "clip":
            model = clip
        else:
            model = transformers.SiglipModel(transformers.SiglipConfig(
                text_config={**text, "hidden_size": 64, "vocab_size": len(tok)}, vision_config=vision))
        randomize(model, seed=len(out))
        model.save_pretrained(root / name, safe_serialization=True)
        tok.save_pretrained(root / name)
        out[name] = (root / name, model, tok)
    return out


@pytest.mark.parametrize("ref, entry", [("clip", "clip_pair.test"), ("siglip", "siglip_pair.test")])
def test_towers_match_hugging_face(checkpoints, ref, entry):
    torch, _ = require("transformers")
    folder, hf, tok = checkpoints[ref]
    m = pt.load(entry, weights=folder)
    siglip = ref != "clip"
    want = tok(TEXTS, padding="max_length" if siglip else True, max_length=16, truncation=True, return_tensors="np")
    ids = m.text_tower.tokens(TEXTS)
    np.testing.assert_array_equal(ids, want["input_ids"])
    pixels = photos(32)
    with torch.no_grad():
        kw = {} if siglip else {"attention_mask": torch.from_numpy(want["attention_mask"].astype("int64"))}
        text = hf.get_text_features(input_ids=torch.from_numpy(want["input_ids"].astype("int64")), **kw)
        image = hf.get_image_features(pixel_values=nchw(pixels, m.preprocessing.mean, m.preprocessing.std))
        text, image = getattr(text, "pooler_output", text).numpy(), getattr(image, "pooler_output", image).numpy()
        scale = float(hf.logit_scale)
    assert cosine(m.encode_text(TEXTS), text).min() >= 0.9999
    assert cosine(m.encode_images(pixels), image).min() >= 0.9999
    assert m.logit_scale == pytest.approx(scale, abs=1e-6)
    if siglip:  # per-pair sigmoid probabilities, as SiglipModel's logits_per_image
        with torch.no_grad():
            logits = hf(input_ids=torch.from_numpy(want["input_ids"].astype("int64")),
                        pixel_values=nchw(pixels, m.preprocessing.mean, m.preprocessing.std)).logits_per_image
        np.testing.assert_allclose(m.match_probabilities(pixels, TEXTS), torch.sigmoid(logits).numpy(), atol=1e-5)
    p = m.zero_shot(pixels, ["cat", "dog", "coffee"])
    assert p.shape == (3, 3) and np.allclose(p.sum(1), 1)


def test_save_reload_export_and_index(checkpoints, tmp_path, monkeypatch):
    from zoo.runtimes import open_export

    folder, _, _ = checkpoints["clip"]
    m = pt.load("clip_pair.test", weights=folder)
    pixels = photos(32)
    m.save(tmp_path / "clip")
    again = zoo.load(tmp_path / "clip")
    np.testing.assert_allclose(again.encode_text(TEXTS), m.encode_text(TEXTS), atol=1e-6)
    np.testing.assert_allclose(again.encode_images(pixels), m.encode_images(pixels), atol=1e-6)
    assert again.fingerprint() == m.fingerprint()

    names = ["cat", "dog", "coffee"]
    m.export(tmp_path / "clip.tflite", format="tflite", class_names=names)
    served = open_export(tmp_path / "clip.tflite").run(pixels)
    np.testing.assert_allclose(served["probabilities"], m.zero_shot(pixels, names), atol=1e-4)

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zh"))
    idx = zoo.index.build(pixels, model=m, progress=False, runtime="tensorflow")
    hits = idx.search_embeddings(m.encode_text(["a photo of a cat"]), k=3)
    assert sorted(hits.ids[0]) == [0, 1, 2]


def test_keras_hub_two_tower_preset(tmp_path):
    """A keras-hub CLIPBackbone preset with its preprocessor (the layout of keras-hub's Kaggle presets)."""
    import keras_hub

    vocab, merges = _clip_vocab(tmp_path / "bpe")
    tokenizer = keras_hub.models.CLIPTokenizer(vocabulary=str(vocab), merges=str(merges))
    vision = keras_hub.models.CLIPVisionEncoder(**VISION, image_shape=(32, 32, 3))
    text = keras_hub.models.CLIPTextEncoder(vocabulary_size=tokenizer.vocabulary_size(), embedding_dim=32, hidden_dim=32,
                                            num_layers=2, num_heads=2, intermediate_dim=64, max_sequence_length=77)
    both = keras_hub.models.CLIPBackbone(vision, text, projection_dim=24)
    for v in both.weights:
        if v.path.endswith("position_ids"):
            v.assign(np.arange(v.shape[-1])[None])
    both.save_to_preset(str(tmp_path / "preset"))
    keras_hub.models.CLIPPreprocessor(tokenizer).save_to_preset(str(tmp_path / "preset"))
    m = pt.load("clip_pair.test", weights=tmp_path / "preset")
    pixels = photos(32)
    p = m.preprocessing
    x = (pixels.astype("float32") - np.array(p.mean)) / np.array(p.std)
    ids = keras_hub.models.CLIPPreprocessor(tokenizer)({"images": None, "prompts": TEXTS})["token_ids"]
    np.testing.assert_array_equal(m.text_tower.tokens(TEXTS), np.asarray(ids))
    assert cosine(m.encode_images(pixels), both.get_vision_embeddings(x).numpy()).min() >= 0.9999
    assert cosine(m.encode_text(TEXTS), both.get_text_embeddings(np.asarray(ids)).numpy()).min() >= 0.9999


def test_offline_two_tower_load_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kh"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(zoo.WeightsNotFoundError, match="(?s)project cache.*Kaggle cache.*skipped \\(offline\\)"):
        pt.load("siglip2_base_patch16_224")
    with pytest.raises(zoo.WeightsFormatError, match="not a CLIP or SigLIP"):
        pt.load("dinov2_small")
