"""``m3po bench analysis``: seconds to collect and aggregate a synthetic paper-size grid.

``suite/bench/analysis.py`` gives :func:`run` the tasks and algorithms from the registries. The paper's
grid: 7 algorithms (M3PO, PPO, SAC, DreamerV3 on dmc39 and mw50 one task per run; M3PO,
TD-MPC2, MT-PPO, MT-SAC on mt80 as one run per seed), 169 tasks, 5 seeds, 100 evaluations per run
(1,800 run directories, 338,000 evaluation rows). Aggregation is what the report computes per
figure: IQM and mean with 95% intervals at every step (the curves and the verdicts read those),
IQM, mean, median and optimality gap at the last step, and the probability of improvement, with
``reps`` bootstrap repetitions. Besides wall-clock seconds it reports the process's CPU seconds
(all threads), which other load on a shared machine inflates less. rliable's own
loop is timed on a slice (one algorithm of fig3c, 2 steps, 100 repetitions) and scaled to the
whole grid, for comparison.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from analysis import aggregate, stats, synthetic
from analysis.collect import collect


def run(
    single: Mapping[str, Sequence[str]],
    multi: Mapping[str, Sequence[str]],
    single_algos: Sequence[str],
    multi_algos: Sequence[str],
    reps: int = 50_000,
    workers: int | None = None,
    rliable_reps: int = 100,
) -> dict[str, Any]:
    """Write the grid, then time collection and aggregation.

    :param single: single-task benchmarks, one run per task: suite -> tasks (the figures' ``dmc39``, ``mw50``)
    :param multi: multi-task sets, one run per seed: suite -> tasks (fig3c's ``mt80``)
    :param single_algos: algorithms of the single-task benchmarks
    :param multi_algos: algorithms of the multi-task sets (one of them is fig3c's reference, ``m3po``)
    :param reps: bootstrap repetitions
    :param workers: threads (None: all cores)
    :param rliable_reps: repetitions of the rliable slice that is scaled up
    :returns: the figures (seconds), as one JSON-able dict
    """
    workers = workers or os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        grid = synthetic.Grid(
            single=single, multi=multi, single_algos=tuple(single_algos), multi_algos=tuple(multi_algos)
        )
        n_runs = synthetic.write_grid(root, grid)
        write_s = time.perf_counter() - start

        start, cpu = time.perf_counter(), time.process_time()
        table = collect(root).scores
        collect_s, collect_cpu = time.perf_counter() - start, time.process_time() - cpu

        start, cpu = time.perf_counter(), time.process_time()
        results = {
            name: aggregate.aggregate_figure(table, spec, reps, seed=0, workers=workers)
            for name, spec in aggregate.FIGURES.items()
        }
        aggregate_s, aggregate_cpu = time.perf_counter() - start, time.process_time() - cpu

    # rliable's loop on a slice: cost grows with repetitions x steps x metric calls.
    two_steps = results["fig3c"].algos["m3po"].final_scores[:, :, None].repeat(2, axis=2)
    start = time.perf_counter()
    stats.interval_estimates_rliable(two_steps, rliable_reps, 0, 100.0)
    slice_s = time.perf_counter() - start
    curves = sum(len(r.algos) * len(next(iter(r.algos.values())).steps) for r in results.values())
    rliable_estimate_s = slice_s * (reps / rliable_reps) * (curves / 2)
    return {
        "runs": n_runs,
        "rows": len(table),
        "reps": reps,
        "workers": workers,
        "write_grid_s": round(write_s, 2),
        "collect_s": round(collect_s, 2),
        "aggregate_s": round(aggregate_s, 2),
        "collect_and_aggregate_s": round(collect_s + aggregate_s, 2),
        "collect_and_aggregate_cpu_s": round(collect_cpu + aggregate_cpu, 2),
        "rliable_estimate_s": round(rliable_estimate_s, 0),
    }
