"""The algorithm registry: every algorithm ``m3po train with algo=NAME`` can run.

Each package declares its own algorithms (:class:`m3po.algorithm.Algorithm`) in a ``registration``
module; this neutral registry collects them in a fixed order, so that ``m3po`` imports nothing of
``baselines`` and ``baselines`` nothing of each other. :mod:`suite.experiment` dispatches on ``algo``
through it; the workflow and ``m3po bench algos`` read the names from it.

Config keys on the command line are the fields of the algorithm's own config dataclass: the shared
:class:`m3po.config.RunConfig` fields flat (``task=... seed=... steps=... num_envs=... eval_every=...``)
and the algorithm's sections dotted (``planner.horizon=5`` for M3PO, ``sac.learning_rate=1e-4`` for
SAC). A key the algorithm's config does not have is an error that lists the valid ones.

How a new algorithm plugs in
----------------------------
1. A config dataclass deriving from :class:`m3po.config.RunConfig` (which brings task, seed, steps,
   num_envs, vec_mode, eval_every, eval_episodes, checkpoint_every, device, threads), with the
   algorithm's own settings in nested dataclass sections, one comment per field. Keep its module
   light (no heavy imports): the config is resolved and checked before any work starts.
2. Its presets (``cpu``, ``paper``): each preset's overrides of the dataclass defaults in a YAML file
   beside the config (``presets.yaml``; a header listing the sources, the source of each value in a
   comment beside it), read with :func:`m3po.config.load_presets` (add the file to ``pyproject.toml``'s
   package-data).
3. ``validate(cfg) -> cfg``: call :func:`m3po.config.validate_run` first (preset, task names, budget),
   then check the algorithm's own fields, raising :class:`m3po.config.ConfigError` naming the bad
   value and the valid ones.
4. A train entry ``train(cfg, run_dir, on_metrics=None, progress=True) -> dict``: a trainer built on
   :mod:`m3po.trainer` (the base owns the run record, the schedule of evaluations and checkpoints,
   resume, the step-0 evaluation and the summary; the algorithm implements its steps).
5. An :class:`m3po.algorithm.Algorithm` in its package's ``registration.ALGORITHMS``, and that module
   in :data:`PACKAGES` below.
"""

from __future__ import annotations

import importlib
from typing import Any

from m3po.algorithm import Algorithm
from m3po.config import ConfigError

# The packages whose ``registration.ALGORITHMS`` make up the registry, in listing order.
PACKAGES = ("m3po", "baselines.sb3", "baselines.tdmpc2", "baselines.dreamerv3")


def _collect() -> dict[str, Algorithm]:
    algorithms: dict[str, Algorithm] = {}
    for package in PACKAGES:
        for algo in importlib.import_module(f"{package}.registration").ALGORITHMS:
            if algo.name in algorithms:
                raise ValueError(f"algorithm {algo.name!r} is registered twice ({package})")
            algorithms[algo.name] = algo
    return algorithms


ALGORITHMS: dict[str, Algorithm] = _collect()
ALGOS: tuple[str, ...] = tuple(ALGORITHMS)


def get_algorithm(name: Any) -> Algorithm:
    """The registry entry of ``name``; an unknown name raises :class:`ConfigError` listing the valid ones."""
    if name not in ALGORITHMS:
        raise ConfigError(f"unknown algo {name!r}; valid: {', '.join(ALGOS)}")
    return ALGORITHMS[name]
