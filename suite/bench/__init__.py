"""Benchmark commands (``m3po bench NAME``): each prints one JSON line of measured figures.

``suite/bench/NAME.py`` (``-`` in NAME read as ``_``) is ``m3po bench NAME``: its docstring is the
subcommand's help (the first paragraph) and description, ``add_arguments(parser)`` (if defined) declares
its flags and ``main(args) -> dict`` (if defined) runs it with the parsed flags; without ``main``,
``run()`` runs it with its defaults. ``suite.cli.BENCHMARKS`` lists the names.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def at_least(kind: type, minimum: float = 0) -> Callable[[str], Any]:
    """An argparse ``type``: ``kind(text)``, refused (one argparse error line) below ``minimum``."""

    def parse(text: str) -> Any:
        value = kind(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names it in "invalid int value: 'x'"
    return parse
