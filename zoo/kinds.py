"""The registry of kinds: what a saved folder can hold, registered where each is defined.

One folder per kind, ``zoo/tasks/<kind>/`` (model, data types and readers, training spec, CLI),
and a kind's package name is its name: ``zoo.load(folder)`` reads ``config.json["kind"]`` and
:func:`get_kind` imports ``zoo.tasks.<kind>``, whose model class registered itself with
:func:`register_kind`. Models that are not registry backbones (``zoo.load("mtcnn_faces")``) register
with :func:`register_named`; CLI subcommands come from each kind's ``cli.add_commands``; the apps
list :func:`kinds`. No table of kinds is kept anywhere else, so adding a kind touches its folder.

This module imports nothing heavy (``zoo --help`` lists the kinds' commands without TensorFlow)
and nothing of ``zoo.tasks``: it finds the kinds' packages on disk and imports them by name.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

TASKS = "zoo.tasks"  # the package that holds one subpackage per kind

_KINDS: dict[str, type] = {}      # kind name -> class (a Task, or ZooModel for "backbone")
_ALIASES: dict[str, str] = {}     # names earlier versions wrote -> kind
_NAMED: dict[str, Callable] = {}  # named model -> loader(**kwargs)


@dataclass(frozen=True)
class KindInfo:
    """What the CLI and the apps show of a kind, read from its package without importing TensorFlow."""

    name: str
    title: str       # one or two words, e.g. "Multi-label classifier"
    summary: str     # one line


def register_kind(name: str, aliases=()):
    """Class decorator: folders whose config says ``kind: name`` (or an alias) open with this class's
    ``load(path, config, **kwargs)``; the class gets ``kind = name``."""
    def add(cls):
        if _KINDS.get(name, cls) is not cls:
            raise ValueError(f"kind {name!r} is registered twice ({_KINDS[name].__name__}, {cls.__name__})")
        cls.kind = name
        _KINDS[name] = cls
        for a in aliases:
            _ALIASES[a] = name
        return cls
    return add


def register_named(name: str):
    """Function decorator: ``zoo.load(name)`` calls the function (with zoo.load's keyword arguments)."""
    def add(fn):
        _NAMED[name] = fn
        return fn
    return add


def kind_names() -> list[str]:
    """Every kind's name: the packages under zoo/tasks (found on disk, nothing imported)."""
    return sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent / "tasks")]) if m.ispkg)


def kinds() -> list[KindInfo]:
    """Every kind with its title and summary (each package's ``TITLE`` and first docstring line)."""
    out = []
    for name in kind_names():
        pkg = importlib.import_module(f"{TASKS}.{name}")
        first = " ".join((pkg.__doc__ or name).strip().split("\n\n")[0].split())  # the first paragraph
        out.append(KindInfo(name, getattr(pkg, "TITLE", name.replace("_", " ").capitalize()),
                            first.split(": ", 1)[-1]))
    return out


def canonical(name: str) -> str:
    """A kind name as current versions write it (old names of the same kind are aliases)."""
    if name not in _KINDS and name not in kind_names() and name not in _ALIASES:
        _import_all()
    return _ALIASES.get(name, name)


def get_kind(name: str) -> type:
    """The class of a kind (importing its package's model module on first use)."""
    name = canonical(name)
    if name not in _KINDS and name in kind_names():
        importlib.import_module(f"{TASKS}.{name}.model")
    if name not in _KINDS:
        from zoo.errors import SavedModelError

        raise SavedModelError(f"this zoo cannot open models of kind {name!r} (known kinds: "
                              f"{', '.join(sorted(set(kind_names()) | set(_KINDS)))}): upgrade zoo")
    return _KINDS[name]


def named_model(name: str) -> Callable | None:
    """The loader of a named model (``"mtcnn_faces"``), or None."""
    if name not in _NAMED:
        _import_all()
    return _NAMED.get(name)


def named_models() -> list[str]:
    _import_all()
    return sorted(_NAMED)


def _import_all():
    for name in kind_names():
        importlib.import_module(f"{TASKS}.{name}.model")


def lazy_exports(package: str, exports: dict):
    """A module ``__getattr__`` for a kind's package: ``exports`` maps a public name to the submodule
    that defines it, imported on first use (so importing the package stays light)."""
    def __getattr__(name):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
    return __getattr__
