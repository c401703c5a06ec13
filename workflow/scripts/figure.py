"""Rules ``figure_*`` (Snakemake ``script:``): one figure's files (PNG and PDF of each panel)."""

import pickle
from pathlib import Path
from typing import Any

import numpy as np
from _step import claims, run

from analysis import figures, stats
from analysis.aggregate import FIGURES, REFERENCE_ALGO


def figure_step(smk: Any) -> None:
    figure = smk.params.figure
    payload = pickle.loads(Path(smk.input[0]).read_bytes())
    out = Path(smk.output[0]).parent
    written: list[Path] = []
    if figure in FIGURES:
        spec, result = payload["spec"], payload["result"]
        if not result.algos:
            raise ValueError(f"{figure}: no finished runs to draw")
        written += figures.plot_curves(
            result, spec, figure, claims(smk.params.claims), out / figure, reference=payload.get("reference")
        )
        written += figures.plot_intervals(result, figure, out / f"{figure}-intervals", spec.ylabel)
        taus = np.linspace(0, spec.gamma, 101)
        profiles = stats.performance_profiles(
            {a: r.final_scores for a, r in result.algos.items()}, taus, smk.params.reps, 0
        )
        written += figures.plot_profiles(profiles, taus, figure, out / f"{figure}-profiles", spec.ylabel)
    elif figure == "fig4":
        written += figures.plot_sweep(
            payload["runs"], "num_envs", [REFERENCE_ALGO, "tdmpc2"], out / "fig4",
            "fig4: final score vs vectorized envs", "envs (2^k)", log2=True,
        )  # fmt: skip
    else:
        runs = payload["runs"]
        ours = runs[runs["algo"] == REFERENCE_ALGO]
        for key, (title, xlabel) in figures.ABLATIONS.items():
            if not ours["variant"].str.startswith(f"{key}=").any():
                continue
            shown = ours[(ours["variant"] == "default") | ours["variant"].str.startswith(f"{key}=")]
            written += figures.plot_sweep(
                shown, key, [REFERENCE_ALGO], out / f"ablation-{key}", title, xlabel,
                log2=key == "num_envs",
            )  # fmt: skip
    missing = sorted(set(map(str, smk.output)) - set(map(str, written)))
    if missing:
        raise ValueError(f"{figure}: expected files were not drawn: {missing}")
    print("\n".join(map(str, written)))


run(snakemake, figure_step)  # noqa: F821 - Snakemake's script directive defines `snakemake`
