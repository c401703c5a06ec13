"""rliable's ``library`` and ``metrics`` modules, importable under the project's pins.

rliable imports ``arch.bootstrap``. Importing it runs ``arch/__init__.py``, which pulls in
``arch.univariate``. With arch 7.2 and pandas 3.x, ``arch.univariate`` fails at import: it calls
pandas' ``deprecate_kwarg`` with an older signature. arch 8 fixes that, but it no longer accepts
the ``random_state`` keyword that rliable 1.2.0 passes. The bootstrap needs none of
``arch.univariate``, so when the plain import fails with that error the ``arch`` package is
registered without running its ``__init__``, and ``arch.bootstrap`` loads alone.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types


def _load_arch_without_init() -> None:
    spec = importlib.util.find_spec("arch")
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError("rliable needs the 'arch' package")
    package = types.ModuleType("arch")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    sys.modules["arch"] = package
    importlib.import_module("arch.bootstrap")


try:
    import arch.bootstrap  # noqa: F401
except TypeError as err:
    if "deprecate_kwarg" not in str(err):
        raise
    for name in [name for name in sys.modules if name == "arch" or name.startswith("arch.")]:
        del sys.modules[name]
    _load_arch_without_init()

from rliable import library, metrics, plot_utils  # noqa: E402

__all__ = ["library", "metrics", "plot_utils"]
