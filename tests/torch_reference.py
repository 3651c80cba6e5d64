"""PyTorch reference models for the conversion tests (test-only: torch, timm and transformers).

``pytest.importorskip`` these through :func:`require`. PyPI's torchvision wheels are CUDA builds:
next to the CPU torch (``pip install torch==2.13.0``) their compiled ops do not load, and
torchvision 0.28 then fails at import while registering fake kernels for ``nms``/``qnms``. timm
(and transformers, when torchvision is present) import torchvision, so :func:`require` declares
those two op schemas when that happens; the reference models never call them.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

_LIB = None


def _torchvision_importable():
    global _LIB
    try:
        import torchvision  # noqa: F401
        return
    except ImportError:
        return
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
    import torch

    for name in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
        del sys.modules[name]
    _LIB = torch.library.Library("torchvision", "DEF")  # kept alive: the schemas live as long as it does
    _LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision  # noqa: F401,F811


def require(*modules):
    """Import torch (and ``modules``: "timm", "transformers") or skip the test."""
    torch = pytest.importorskip("torch")
    _torchvision_importable()
    return [torch] + [pytest.importorskip(m) for m in modules]


def randomize(model, seed: int = 0, scale: float = 0.5):
    """Random weights everywhere (timm zero-initialises the last BatchNorm of each residual block and
    leaves running statistics at 0/1, which would hide mistakes): N(0, scale^2/fan-in) for matrices,
    positive variances and scales near 1 for norms."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)
            elif t.ndim <= 1 and ("bn" in name or "norm" in name or name.endswith("weight")):
                t.copy_(1.0 + 0.2 * torch.randn(t.shape, generator=g)) if name.endswith("weight") else \
                    t.copy_(0.1 * torch.randn(t.shape, generator=g))
            else:
                fan_in = int(np.prod(t.shape[1:])) if t.ndim > 1 else t.numel()
                t.copy_(torch.randn(t.shape, generator=g) * scale / max(fan_in, 1) ** 0.5)
    return model.eval()


def photos(size: int) -> np.ndarray:
    """Real photos (scikit-image's cat, astronaut, coffee) resized to ``size`` x ``size`` uint8 RGB."""
    from PIL import Image
    from skimage import data

    return np.stack([np.asarray(Image.fromarray(p).resize((size, size), Image.BICUBIC))
                     for p in (data.chelsea(), data.astronaut(), data.coffee())])


def nchw(pixels: np.ndarray, mean, std):
    """uint8 (N,H,W,3) -> normalised float32 (N,3,H,W) torch tensor, mean/std in pixel units."""
    import torch

    x = (pixels.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def cosine(a, b) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
