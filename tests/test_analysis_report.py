"""analysis.report verdicts on constructed cases; figures and the report on a small synthetic grid."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from analysis import figures, report, synthetic
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


def _result(**means: tuple[float, float, float]) -> FigureResult:
    """A figure whose algorithms have the given (point, low, high) mean at their single step."""
    algos = {}
    for algo, (point, low, high) in means.items():
        est = Estimate(np.array([point]), np.array([low]), np.array([high]))
        algos[algo] = AlgoResult(np.array([1000]), {"mean": est, "iqm": est}, {}, np.zeros((1, 1)), ["t"], 1)
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
    assert report.judge_values(CLAIM, _result(**means)).verdict == verdict


def test_range_value_and_statement_verdicts() -> None:
    ranged = {**CLAIM, "values": {"m3po": [85, 90]}, "order": []}
    assert report.judge_values(ranged, _result(m3po=(84, 80, 86))).verdict == report.REPRODUCED
    assert report.judge_values(ranged, _result(m3po=(70, 65, 75))).verdict == report.NOT_REPRODUCED
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


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict[str, list[str]]]:
    root = _grid(tmp_path_factory.mktemp("results"))
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
        out = report.build(root, report.DEFAULT_CLAIMS, reps=300, profile_reps=100)
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
    assert legends["fig3a"] == [
        "M3PO (3 seeds)", "PPO (3 seeds)", "SAC (3 seeds)", "DreamerV3 (3 seeds)",
        "M3PO, paper (mean)", "PPO, paper (mean)", "DreamerV3, paper (mean)",
    ]  # fmt: skip
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
    assert set(verdicts.values()) <= {report.REPRODUCED, report.NOT_REPRODUCED, report.INCONCLUSIVE}
    assert len(verdicts) == 7  # one row per claim of paper-claims.yaml
    text = (root / "report.md").read_text()
    for claim in ("dmc39-final", "mw50-final", "mt80-final", "mt80-stability", "vectorization-stability"):
        assert f"| {claim} |" in text
    assert "Verdict rules" in text and "status.json" not in text
    assert "status is 'interrupted'" in text
    assert (root / "report.html").read_text().startswith("<!doctype html>")
    again = report.build(root, report.DEFAULT_CLAIMS, reps=300, profile_reps=100)
    assert [r.ours for r in again["claims"]] == [r.ours for r in out["claims"]]
    assert (root / "report.md").read_text() == text


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
