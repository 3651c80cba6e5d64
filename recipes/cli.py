"""The ``zoo`` command: zoo's own commands plus the recipes' task commands.

``zoo export``, ``zoo detect`` / ``train-detector``, ``zoo segment`` / ``train-segmenter`` and
``zoo zero-shot`` come from plugin modules loaded here (each adds its subcommands through
``add_commands(subparsers)`` and imports TensorFlow only when its command runs), so zoo itself
imports nothing from recipes.
"""
from __future__ import annotations

import importlib

from zoo import cli as zoo_cli

PLUGIN_MODULES = ("zoo.export", "recipes.detection_cli", "recipes.segmentation_cli", "recipes.image_text_cli")


def _plugin(module: str):
    def add(subparsers):
        importlib.import_module(module).add_commands(subparsers)
    return add


PLUGINS = tuple(_plugin(m) for m in PLUGIN_MODULES)


def main(argv=None) -> int:
    return zoo_cli.main(argv, plugins=PLUGINS)


if __name__ == "__main__":
    raise SystemExit(main())
