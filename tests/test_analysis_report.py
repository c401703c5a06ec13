"""analysis.report verdicts on constructed cases; figures and the report on a small synthetic grid; the
published curves (aggregated, drawn, set beside ours in the fidelity section). The verdict rules
themselves: tests/test_verdicts.py."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from analysis import aggregate, figures, report, synthetic, verdicts
from analysis.aggregate import AlgoResult, FigureResult
from analysis.stats import Estimate
from suite.bench.analysis import grid

CLAIM = {
    "id": "c",
    "figure": "fig3a",
    "at_steps": None,
    "values": {"m3po": 800, "ppo": 580},
    "order": ["m3po", "ppo"],
}


BUDGETS = {"fig3a": 1000}  # the constructed results' one step


def _result(**means: tuple[float, float, float]) -> FigureResult:
    """A figure whose algorithms (3 seeds, all 39 tasks of fig3a's dmc39: a value check needs the whole
    set) have the given (point, low, high) mean at their single step."""
    algos = {}
    tasks = [f"t{i}" for i in range(39)]
    for algo, (point, low, high) in means.items():
        est = Estimate(np.array([point]), np.array([low]), np.array([high]))
        algos[algo] = AlgoResult(np.array([1000]), {"mean": est, "iqm": est}, {}, np.zeros((3, 39)), tasks, 3)
    return FigureResult(algos, {})


@pytest.mark.parametrize(
    ("means", "verdict"),
    [
        ({"m3po": (800, 790, 810), "ppo": (580, 570, 590)}, report.REPRODUCED),
        ({"m3po": (900, 880, 920), "ppo": (500, 490, 510)}, report.REPRODUCED),  # beyond, on the paper's side
        ({"m3po": (700, 690, 710), "ppo": (580, 570, 590)}, report.NOT_REPRODUCED),  # M3PO below its value
        ({"m3po": (800, 790, 810), "ppo": (850, 840, 860)}, report.NOT_REPRODUCED),  # order reversed
        ({"m3po": (800, 600, 900), "ppo": (580, 570, 650)}, report.INCONCLUSIVE),  # overlapping CIs
        ({"m3po": (800, 790, 810)}, report.INCONCLUSIVE),  # no PPO runs
    ],
)
def test_value_claim_verdicts(means: dict, verdict: str) -> None:
    assert report.judge_values(CLAIM, _result(**means), BUDGETS).verdict == verdict


def test_range_value_and_statement_verdicts() -> None:
    ranged = {**CLAIM, "values": {"m3po": [85, 90]}, "order": []}
    assert report.judge_values(ranged, _result(m3po=(84, 80, 86)), BUDGETS).verdict == report.REPRODUCED
    assert report.judge_values(ranged, _result(m3po=(70, 65, 75)), BUDGETS).verdict == report.NOT_REPRODUCED
    claim = {"id": "s", "figure": "fig3b", "statement": "M3PO higher sample efficiency"}
    up = _result(m3po=(90, 85, 95), dreamerv3=(50, 45, 55))
    assert report.judge_sample_efficiency(claim, up, "dreamerv3").verdict == report.REPRODUCED
    down = _result(m3po=(50, 45, 55), dreamerv3=(90, 85, 95))
    assert report.judge_sample_efficiency(claim, down, "dreamerv3").verdict == report.NOT_REPRODUCED
    band = {"id": "b", "figure": "fig3c", "statement": "band wider"}
    assert (
        report.judge_band(band, _result(m3po=(90, 89, 91), tdmpc2=(90, 80, 99))).verdict == report.REPRODUCED
    )
    assert (
        report.judge_band(band, _result(m3po=(90, 80, 99), tdmpc2=(90, 89, 91))).verdict
        == report.NOT_REPRODUCED
    )
    assert report.judge_band(band, _result(m3po=(90, 80, 99))).verdict == report.INCONCLUSIVE


def _grid(root: Path) -> Path:
    synthetic.write_grid(root, synthetic.Grid(**grid(), seeds=(1, 2, 3), evals=4, task_limit=3, noise=0.02))
    rng = np.random.default_rng(0)
    for num_envs, level, spread in ((256, 0.9, 0.01), (4096, 0.5, 0.1)):
        for seed in (1, 2, 3):
            for algo, lvl, sd in (("m3po", 0.88, 0.01), ("tdmpc2", level, spread)):
                score = float(np.clip(lvl + rng.normal(0, sd), 0, 1) * 1000)
                synthetic.write_run(
                    root / "runs" / algo / "two" / f"envs{num_envs}" / f"seed{seed}",
                    task_set="walker-walk,cheetah-run",
                    seed=seed,
                    algo=algo,
                    num_envs=num_envs,
                    scores={1000: {"walker-walk": score, "cheetah-run": score}},
                )
    for alpha0, score in ((0.0, 300.0), (0.1, 600.0)):
        for seed in (1, 2):
            synthetic.write_run(
                root / "runs" / "m3po" / "ablation" / f"alpha{alpha0}" / f"seed{seed}",
                task_set="walker-walk,cheetah-run",
                seed=seed,
                algo="m3po",
                variant=f"alpha0={alpha0}",
                alpha0=alpha0,
                scores={1000: {"walker-walk": score + seed, "cheetah-run": score}},
            )
    synthetic.write_run(
        root / "runs" / "ppo" / "x" / "seed9",
        task_set="walker-walk",
        seed=9,
        scores={1: {"walker-walk": 1.0}},
        algo="ppo",
        status="interrupted",
    )
    return root


# The paper profile's budgets for the synthetic grid (its runs end at 1M agent steps): fig3a's is
# reached, fig3b's is not (config/paper.yaml itself is another profile's business).
PAPER_PROFILE = "figures:\n  fig3a: {steps: 1000000}\n  fig3b: {steps: 2000000}\n  fig3c: {steps: 1000000}\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict[str, list[str]]]:
    root = _grid(tmp_path_factory.mktemp("results"))
    (root / "paper.yaml").write_text(PAPER_PROFILE)
    legends: dict[str, list[str]] = {}
    save = figures._save

    def recording_save(fig, stem):  # noqa: ANN001, ANN202  (records each figure's legend before saving)
        legends[stem.name] = [
            t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()
        ]
        legends[stem.name + ":yticks"] = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
        return save(fig, stem)

    figures._save = recording_save
    try:
        out = report.build(
            root, report.DEFAULT_CLAIMS, reps=300, profile_reps=100, paper_profile=root / "paper.yaml"
        )
    finally:
        figures._save = save
    return root, out, legends


def test_every_figure_is_a_valid_image_with_its_legend(built: tuple) -> None:
    root, out, legends = built
    names = {p.stem for p in out["figures"]}
    assert names == {
        "fig3a", "fig3b", "fig3c", "fig3a-intervals", "fig3b-intervals", "fig3c-intervals",
        "fig3a-profiles", "fig3b-profiles", "fig3c-profiles", "fig4", "ablation-alpha0",
    }  # fmt: skip
    for path in out["figures"]:
        assert path.stat().st_size > 1000
        if path.suffix == ".png":
            image = matplotlib.image.imread(path)
            assert image.shape[0] > 100 and image.shape[1] > 100
        else:
            assert path.read_bytes().startswith(b"%PDF")
    published = [
        f"{a}, published (TD-MPC2 authors) (3 seeds, 3 tasks)" for a in ("TD-MPC2", "SAC", "DreamerV3")
    ]
    assert legends["fig3a"] == [
        "M3PO (3 seeds)", "PPO (3 seeds)", "SAC (3 seeds)", "DreamerV3 (3 seeds)", *published,
        "M3PO, paper (mean)", "PPO, paper (mean)", "DreamerV3, paper (mean)",
    ]  # fmt: skip
    assert legends["fig3b"][4:7] == published
    assert not any("published" in text for text in legends["fig3c"])  # multi-task: no published curves
    assert legends["fig3c"][:4] == [
        "M3PO (3 seeds)",
        "TD-MPC2 (3 seeds)",
        "MT-PPO (3 seeds)",
        "MT-SAC (3 seeds)",
    ]
    assert legends["fig3b-profiles"] == ["M3PO", "PPO", "SAC", "DreamerV3"]
    assert set(legends["fig3c-intervals:yticks"]) >= {"M3PO", "TD-MPC2", "MT-PPO", "MT-SAC"}
    assert legends["fig4"] == ["M3PO (mean ± std over seeds)", "TD-MPC2 (mean ± std over seeds)"]
    assert legends["ablation-alpha0"] == ["M3PO (mean ± std over seeds)"]


def test_report_rows_and_reruns(built: tuple) -> None:
    root, out, _ = built
    verdicts = {row.claim: row.verdict for row in out["claims"]}
    assert verdicts["vectorization-stability"] == report.REPRODUCED
    assert set(verdicts.values()) <= set(report.verdicts.VERDICTS)
    assert len(verdicts) == 7  # one row per claim of paper-claims.yaml
    # fig3b's budget (2M) is beyond the grid's 1M: not judged; fig3a's and mt80's (1M) are judged.
    assert verdicts["mw50-final"] == report.NOT_JUDGED
    assert verdicts["dmc39-final"] != report.NOT_JUDGED and verdicts["mt80-final"] != report.NOT_JUDGED
    text = (root / "report.md").read_text()
    for claim in ("dmc39-final", "mw50-final", "mt80-final", "mt80-stability", "vectorization-stability"):
        assert f"| {claim} |" in text
    assert "Verdict rules" in text and "status.json" not in text
    assert "status is 'interrupted'" in text
    assert (root / "report.html").read_text().startswith("<!doctype html>")
    again = report.build(
        root, report.DEFAULT_CLAIMS, reps=300, profile_reps=100, paper_profile=root / "paper.yaml"
    )
    assert [r.ours for r in again["claims"]] == [r.ours for r in out["claims"]]
    assert (root / "report.md").read_text() == text


def test_claims_json_has_every_claim_with_its_scope(built: tuple) -> None:
    root, out, _ = built
    records = json.loads((root / "claims.json").read_text())
    assert [r["claim"] for r in records] == [row.claim for row in out["claims"]]
    for record, row in zip(records, out["claims"], strict=True):
        assert record["verdict"] == row.verdict in verdicts.VERDICTS
        assert record["scope"] == row.scope and record["scope"].startswith(("at ", "fig3a at "))
        assert isinstance(record["details"], dict)
    mw50 = next(r for r in records if r["claim"] == "mw50-final")
    assert mw50["details"]["budget"]["steps"] == 2_000_000 and "1M agent steps" in mw50["why"]
    text = (root / "report.md").read_text()
    assert "| claim | figure | paper | ours | verdict | scope | budget | why |" in text


def test_fidelity_section_sets_ours_beside_the_published(built: tuple) -> None:
    root, _, _ = built
    text = (root / "report.md").read_text()
    assert "## Fidelity: our runs beside the published (TD-MPC2 authors)" in text
    published = aggregate.load_published()
    collected = pd.read_parquet(root / "tables" / "scores.parquet")
    table = aggregate.fidelity_table(collected, published)
    # The synthetic grid evaluates at 250k, 500k, 750k and 1M agent steps: every one on the published grid.
    assert set(table["algo"]) == {"sac", "dreamerv3"} and set(table["step"]) == {
        250_000,
        500_000,
        750_000,
        1_000_000,
    }
    assert len(table) == 2 * 2 * 3 * 4  # (sac, dreamerv3) x (dmc39, mw50) x 3 tasks x 4 steps
    assert set(table["verdict"]) <= {"inside", "below", "above"}
    row = table[
        (table["algo"] == "sac") & (table["task"] == "mw-assembly") & (table["step"] == 500_000)
    ].iloc[0]
    theirs = published[(published["algo"] == "sac") & (published["task"] == "mw-assembly")]
    theirs = theirs[theirs["step"] == 500_000]["score"]  # success %, their fraction x 100
    assert (row["published min"], row["published max"]) == (theirs.min(), theirs.max())
    ours = collected[(collected["algo"] == "sac") & (collected["task"] == "mw-assembly")]
    assert row["ours"] == pytest.approx(ours[ours["step"] == 500_000]["score"].mean())
    assert row["source"] == "results/sac/mw-assembly.csv@88095e7"
    assert "| sac | mw-assembly | 500000 |" in text.replace(",", "")


def test_published_curves_aggregate_over_our_tasks_and_fill_only_interior_gaps() -> None:
    rows = []
    for seed in (1, 2, 3):
        for step in (0, 50_000, 100_000, 150_000):
            if (seed, step) in ((2, 50_000), (3, 150_000)):  # an interior gap and a missing last row
                continue
            rows.append({"algo": "dreamerv3", "task": "walker-walk", "seed": seed, "step": step,
                         "score": 100.0 * seed + step / 1000, "path": "results/dreamerv3/walker-walk.csv",
                         "commit": "0" * 40})  # fmt: skip
    published = pd.DataFrame(rows)
    filled = aggregate.published_rows(published, "dreamerv3", ["walker-walk"])
    gap = filled[(filled["seed"] == 2) & (filled["step"] == 50_000)].iloc[0]
    assert gap["filled"] and gap["score"] == pytest.approx(250.0)  # between 200 and 300
    assert filled[(filled["seed"] == 3) & (filled["step"] == 150_000)].empty  # nothing extrapolated
    spec = aggregate.FIGURES["fig3a"]
    result = aggregate.aggregate_published(published, spec, ["walker-walk", "cheetah-run"], 200, 0)
    (res,) = result.algos.values()
    assert res.tasks == ["walker-walk"] and list(res.steps) == [0, 50_000, 100_000, 150_000]
    # Step by step over the seeds there: seed 3 stopped at 100k, so 150k rests on 2 (no evidence).
    assert list(res.runs_per_step) == [3, 3, 3, 2] and res.n_runs == 3 and res.runs_at(3) == 2
    assert result.improvement == {}
    # The fidelity table reads the rows as published: no filled gap.
    ours = pd.DataFrame(
        [
            {"algo": "dreamerv3", "task": "walker-walk", "seed": s, "step": 50_000, "score": 200.0}
            for s in (1, 2, 3)
        ]
    ).assign(mode="single", variant="default")
    (row,) = aggregate.fidelity_table(ours, published).to_dict("records")
    assert row["published seeds"] == 2 and row["verdict"] == "inside"  # 150 and 350 at 50k


def test_load_published_says_how_to_vendor_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="python -m baselines.published.vendor"):
        aggregate.load_published(tmp_path / "none.parquet")
    assert aggregate.published_metadata()["head"] and aggregate.PUBLISHED_PATH.exists()


def test_reference_curves_are_dashed_and_end_just_past_our_last_step(tmp_path: Path, monkeypatch) -> None:
    est = Estimate(np.array([1.0, 2.0]), np.array([0.5, 1.5]), np.array([1.5, 2.5]))
    ours = FigureResult(
        {"m3po": AlgoResult(np.array([0, 20_000]), {"iqm": est}, {}, np.zeros((3, 1)), ["t"], 3)}, {}
    )
    grid = np.arange(0, 1_050_000, 50_000)
    ref_est = Estimate(np.ones(len(grid)), np.zeros(len(grid)), 2 * np.ones(len(grid)))
    reference = FigureResult({"sac": AlgoResult(grid, {"iqm": ref_est}, {}, np.zeros((3, 1)), ["t"], 3)}, {})
    seen = {}
    save = figures._save

    def recording_save(fig, stem):  # noqa: ANN001, ANN202
        ax = fig.axes[0]
        seen["lines"] = [
            (line.get_label(), line.get_linestyle(), list(line.get_xdata())) for line in ax.get_lines()
        ]
        seen["xlim"] = ax.get_xlim()
        return save(fig, stem)

    monkeypatch.setattr(figures, "_save", recording_save)
    figures.plot_curves(ours, aggregate.FIGURES["fig3a"], "fig3a", [], tmp_path / "a", reference=reference)
    (label, style, xs) = seen["lines"][1]
    assert label == "SAC, published (TD-MPC2 authors) (3 seeds, 1 task)" and style == "--"
    assert xs == [0, 50_000]  # up to the first published evaluation at or after our 20k
    assert seen["xlim"][1] == pytest.approx(21_000)


def test_shipped_claims_match_the_spec():
    from pathlib import Path

    from analysis.report import DEFAULT_CLAIMS

    spec = Path(__file__).resolve().parents[2] / "shared" / "spec" / "paper-claims.yaml"
    if not spec.exists():
        pytest.skip("the shared spec is not beside this checkout")
    assert DEFAULT_CLAIMS.read_text() == spec.read_text()


def test_every_algo_gets_a_stable_colour_and_a_legend_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The suite's algorithms have their fixed colours; any other name gets one of its own, the
    same every time, never one of the paper's four."""
    paper = {"m3po": "#d62728", "tdmpc2": "#7b3294", "mt-ppo": "#1f77b4", "mt-sac": "#7f7f7f"}
    assert {algo: figures.color(algo) for algo in paper} == paper
    suite = ["m3po", "ppo", "sac", "mt-ppo", "mt-sac", "tdmpc2", "dreamerv3"]
    assert len({figures.color(a) for a in suite}) == len(suite)
    assert all(figures.label(a) != a for a in suite)  # display names
    for name in ("new-algo", "dreamerv3-xl", "x"):
        assert figures.color(name) == figures.color(name) and figures.color(name) not in paper.values()
    est = Estimate(np.array([1.0, 2.0]), np.array([0.5, 1.5]), np.array([1.5, 2.5]))
    algos = {
        a: AlgoResult(np.array([10, 20]), {"iqm": est}, {}, np.zeros((1, 1)), ["t"], 2)
        for a in ["m3po", "new-algo"]
    }
    spec = report.FIGURES["fig3c"]
    claims = [{"figure": "fig3c", "values": {"m3po": [1, 2], "tdmpc2": [1, 2]}, "at_steps": 20}]
    seen: dict[str, list] = {}
    save = figures._save

    def recording_save(fig, stem):  # noqa: ANN001, ANN202
        legend = fig.axes[0].get_legend()
        seen["labels"] = [t.get_text() for t in legend.get_texts()]
        seen["colors"] = [line.get_color() for line in fig.axes[0].get_lines()[:2]]
        return save(fig, stem)

    monkeypatch.setattr(figures, "_save", recording_save)
    fig_paths = figures.plot_curves(FigureResult(algos, {}), spec, "fig3c", claims, tmp_path / "c")
    assert all(p.stat().st_size > 1000 for p in fig_paths)
    assert seen["labels"] == [
        "M3PO (2 seeds)", "new-algo (2 seeds)", "M3PO, paper (mean, range)", "TD-MPC2, paper (mean, range)"
    ]  # fmt: skip
    assert seen["colors"] == [figures.color("m3po"), figures.color("new-algo")]
    marks = figures._paper_marks(claims, "fig3c")
    assert [m[2:] for m in marks] == [(1.5, 1.0, 2.0), (1.5, 1.0, 2.0)]  # a range: middle and ends


def test_fig4_reads_the_env_sweep_by_its_workflow_label_or_its_run_directory() -> None:
    # The workflow labels fig4's runs `default`; read by their paths alone (analysis.collect, as the
    # README's findings are) they are `num_envs=N`. Either way fig4 takes them, and no other variant.
    runs = pd.DataFrame(
        {
            "algo": ["tdmpc2", "tdmpc2", "tdmpc2", "m3po", "m3po"],
            "variant": ["default", "num_envs=2", "num_envs=32", "alpha0=0", "num_envs=2"],
            "mode": ["multi", "multi", "multi", "multi", "single"],
            "task_set": ["a,b"] * 4 + ["a"],
            "num_envs": [8, 2, 32, 8, 2],
            "run_dir": ["r1", "r2", "r3", "r4", "r5"],
        }
    )
    assert report.fig4_runs(runs)["run_dir"].tolist() == ["r1", "r2", "r3"]
