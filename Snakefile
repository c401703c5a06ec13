# The M3PO suite's workflow: `snakemake --cores all figures` trains every run of the chosen grid,
# collects them, aggregates and draws each figure and writes the claims report.
#
#   snakemake --cores all figures                        # the quick profile (about an hour on 2 cores)
#   snakemake --cores all figures --config profile=smoke # every rule in a few minutes
#   snakemake -n figures --config profile=paper          # the paper's grid (a cluster: --profile pipelines/profiles/slurm)
#   (--config takes every word after it: put the target before it)
#   snakemake --cores all fig3a                          # one figure: fig3a fig3b fig3c fig4 ablations report
#
# Grids: pipelines/config/{paper,quick,smoke}.yaml (schema: pipelines/schema/grid.schema.yaml).
# Runs: results/runs/{profile}/{algo}/{task}/{variant}/seed{n}; outputs: results/{profile}/.

from pathlib import Path


configfile: str(Path(workflow.basedir) / "pipelines" / "config" / "workflow.yaml")


include: "pipelines/grid.smk"
include: "pipelines/train.smk"
include: "pipelines/analysis.smk"


rule all:
    input:
        rules.report.output,


rule figures:
    input:
        rules.report.output,


for _target in FIGURES:

    rule:
        name:
            _target
        input:
            figure_files(_target),
