"""The model registry: one :class:`ModelEntry` per pretrained backbone.

An entry is data (input size, normalisation, feature dim, weight file and checksum,
license, reference accuracy) plus a builder that makes the architecture. Everything
else (weight resolution, preprocessing, heads, pyramids) is generic, so adding a
model is one record in :mod:`zoo.catalog`.
"""
from __future__ import annotations

import difflib
import fnmatch

from zoo.entry import ModelEntry, Preprocessing, WeightFile  # noqa: F401  (the registry's types)
from zoo.errors import UnknownModelError


_REGISTRY: dict[str, ModelEntry] = {}   # "name.tag" -> entry
_DEFAULT_TAG: dict[str, str] = {}       # name -> the tag a bare name means


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def register(entry: ModelEntry, default: bool | None = None) -> ModelEntry:
    """Add an entry under ``name.tag`` (e.g. ``efficientnet_lite0.simclr_fmnist``).

    The first entry of a name is what the bare name means; ``default=True`` makes this one so.
    """
    full = _key(entry.full_name)
    if full in _REGISTRY:
        raise ValueError(f"model {entry.full_name!r} is registered twice")
    _REGISTRY[full] = entry
    name = _key(entry.name)
    if default or name not in _DEFAULT_TAG:
        _DEFAULT_TAG[name] = entry.tag
    return entry


def unregister(full_name: str):
    """Remove ``name.tag`` (e.g. a custom entry in a test); the bare name falls back to another tag."""
    entry = get_entry(full_name)
    del _REGISTRY[_key(entry.full_name)]
    name = _key(entry.name)
    if _DEFAULT_TAG.get(name) == entry.tag:
        rest = [e.tag for e in _REGISTRY.values() if _key(e.name) == name]
        if rest:
            _DEFAULT_TAG[name] = rest[0]
        else:
            del _DEFAULT_TAG[name]


def list_models(pattern: str = "*", pretrained: bool = False, tags: bool = False) -> list[str]:
    """Registered names matching a shell-style wildcard, e.g. ``"resnet*"``.

    Bare names by default; ``tags=True`` (or a pattern with a dot, ``"*.imagenet"``) lists
    ``name.tag`` for every entry. ``pretrained=True`` keeps only entries whose weights can be
    loaded here and now.
    """
    pattern = _key(pattern)
    if tags or "." in pattern:
        pat = pattern if "." in pattern else pattern + ".*"
        entries = [e for k, e in sorted(_REGISTRY.items()) if fnmatch.fnmatch(k, pat)]
        label = lambda e: e.full_name  # noqa: E731
    else:
        entries = [_REGISTRY[f"{n}.{t}"] for n, t in sorted(_DEFAULT_TAG.items()) if fnmatch.fnmatch(n, pattern)]
        label = lambda e: e.name  # noqa: E731
    if pretrained:
        from zoo.weights.resolve import weights_available

        entries = [e for e in entries if weights_available(e)]
    return [label(e) for e in entries]


def get_entry(name: str) -> ModelEntry:
    """Look an entry up by ``name`` (its default tag) or ``name.tag``."""
    key = _key(str(name))
    base, _, tag = key.partition(".")
    entry = _REGISTRY.get(f"{base}.{tag or _DEFAULT_TAG.get(base, '')}")
    if entry is None:
        names = list(_DEFAULT_TAG) + list(_REGISTRY)
        close = difflib.get_close_matches(key, names, n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        if base in _DEFAULT_TAG:
            tags = sorted(e.tag for e in _REGISTRY.values() if _key(e.name) == base)
            hint = f" {base} has the tags: {', '.join(tags)}."
        raise UnknownModelError(
            f"unknown model {name!r}.{hint} Run `zoo list` or zoo.list_models() to see all "
            f"{len(_DEFAULT_TAG)} names, or pass a folder written by model.save()."
        )
    return entry


def info(name: str) -> dict:
    """The entry's metadata as a plain dict."""
    return get_entry(name).to_dict()


def _builtin():
    """The catalog's entries (zoo.catalog lists them; registered here, eagerly, on import)."""
    from zoo.catalog import ENTRIES

    for entry, default in ENTRIES:
        register(entry, default)


_builtin()
