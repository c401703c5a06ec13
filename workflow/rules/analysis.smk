# Analysis: collect the finished runs into tables, aggregate each figure, draw it, write the report.
# Every step calls analysis/ (collect, aggregate, figures, report); scripts/analyse.py only picks
# each figure's runs and labels them (the runner's config.json records neither algo nor variant).

TABLES = [f"{OUT}/tables/{name}.{ext}" for name in ("scores", "excluded", "compute") for ext in ("parquet", "csv")]


rule collect:
    input:
        markers(RUNS),
    output:
        TABLES,
        runs=f"{OUT}/tables/runs.csv",
    log:
        f"results/logs/{PROFILE}/collect.log",
    params:
        root=f"results/runs/{PROFILE}",
        runs=[{"run_dir": key, "algo": r.algo, "variant": r.label, "figures": "+".join(r.figures)} for key, r in RUNS.items()],
    script:
        "scripts/analyse.py"


rule aggregate:
    input:
        TABLES,
        runs=f"{OUT}/tables/runs.csv",
    output:
        f"{OUT}/aggregates/{{figure}}.pkl",
    log:
        f"results/logs/{PROFILE}/aggregate-{{figure}}.log",
    params:
        reps=GRID["reps"],
        algos=lambda w: GRID["figures"][w.figure]["algos"],
    threads: 2
    wildcard_constraints:
        figure="|".join(FIGURES),
    script:
        "scripts/analyse.py"


# One rule per figure: its files (PNG and PDF of each panel) are its outputs.
for _fig in FIGURES:

    rule:
        name:
            f"figure_{_fig}"
        input:
            f"{OUT}/aggregates/{_fig}.pkl",
        output:
            figure_files(_fig),
        log:
            f"results/logs/{PROFILE}/figure-{_fig}.log",
        params:
            figure=_fig,
            reps=min(GRID["reps"], 2000),  # performance profiles' repetitions, as analysis/report.py
            claims=config.get("claims", ""),
        script:
            "scripts/analyse.py"


rule report:
    input:
        TABLES,
        aggregates=expand(f"{OUT}/aggregates/{{figure}}.pkl", figure=("fig3a", "fig3b", "fig3c")),
        figures=[f for fig in FIGURES for f in figure_files(fig)],
    output:
        md=f"{OUT}/report.md",
        html=f"{OUT}/report.html",
    log:
        f"results/logs/{PROFILE}/report.log",
    params:
        reps=GRID["reps"],
        claims=config.get("claims", ""),
    script:
        "scripts/analyse.py"
