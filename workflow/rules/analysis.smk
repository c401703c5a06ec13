# Analysis: collect the finished runs into tables, aggregate each figure, draw it, write the report.
# Every step calls analysis/ (collect, aggregate, figures, report); the scripts (one per rule) only
# pick each figure's runs and label their variant (a run's config.json records its algo, not its
# variant: the grid knows it).

TABLES = [f"{OUT}/tables/{name}.{ext}" for name in ("scores", "excluded", "compute") for ext in ("parquet", "csv")]


rule collect:
    input:
        [GRID.done_file(key) for key in RUNS],
    output:
        TABLES,
        runs=f"{OUT}/tables/runs.csv",
    log:
        f"{grids.LOGS_ROOT}/{PROFILE}/collect.log",
    params:
        roots=[f"{grids.RUNS_ROOT}/{PROFILE}", f"{grids.EVIDENCE_DIR}/{PROFILE}"],
        runs=[{"run_dir": key, "algo": r.algo, "variant": r.label, "figures": "+".join(r.figures)} for key, r in RUNS.items()],
    script:
        "../scripts/collect.py"


# A fig3* aggregate also holds the published curves on the same tasks (figure and report both read
# them: one bootstrap, the same numbers in the plot and the verdicts).
rule aggregate:
    input:
        TABLES,
        runs=f"{OUT}/tables/runs.csv",
        published=PUBLISHED,
    output:
        f"{OUT}/aggregates/{{figure}}.pkl",
    log:
        f"{grids.LOGS_ROOT}/{PROFILE}/aggregate-{{figure}}.log",
    params:
        reps=GRID.spec["reps"],
        algos=lambda w: GRID.spec["figures"][w.figure]["algos"],
    threads: 2
    wildcard_constraints:
        figure="|".join(FIGURES),
    script:
        "../scripts/aggregate.py"


# One rule per figure: its files (PNG and PDF of each panel) are its outputs.
for _fig in FIGURES:

    rule:
        name:
            f"figure_{_fig}"
        input:
            f"{OUT}/aggregates/{_fig}.pkl",
        output:
            GRID.figure_files(_fig),
        log:
            f"{grids.LOGS_ROOT}/{PROFILE}/figure-{_fig}.log",
        params:
            figure=_fig,
            reps=min(GRID.spec["reps"], 2000),  # performance profiles' repetitions, as analysis/report.py
            claims=config.get("claims", ""),
        script:
            "../scripts/figure.py"


# The claims report: report.md, report.html (also in `snakemake --report`), claims.json, and the
# off-policyness diagnostics of each figure's M3PO runs that the page shows.
rule report:
    input:
        TABLES,
        runs=f"{OUT}/tables/runs.csv",
        aggregates=expand(f"{OUT}/aggregates/{{figure}}.pkl", figure=("fig3a", "fig3b", "fig3c")),
        figures=[f for fig in FIGURES for f in GRID.figure_files(fig)],
        paper=PAPER_GRID,
        published=PUBLISHED,
    output:
        md=f"{OUT}/report.md",
        html=report(
            f"{OUT}/report.html",
            caption="../report/claims.rst",
            category="Claims report",
        ),
        claims=f"{OUT}/claims.json",
        diagnostics=DIAGNOSTICS,
    log:
        f"{grids.LOGS_ROOT}/{PROFILE}/report.log",
    params:
        reps=GRID.spec["reps"],
        claims=config.get("claims", ""),
    script:
        "../scripts/report.py"
