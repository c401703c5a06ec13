"""analysis.html_report: the number formatters, the badges, the prose, and the page built from a
synthetic grid shaped like the smoke profile (config/smoke.yaml: one seed, 128 steps, the same tasks)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from analysis import figures, html_report, report, synthetic
from m3po.record import TRAIN_LOG

SMOKE_STEPS = 128


def _add_diagnostics(run_dir: Path, seed: int) -> None:
    """The off-policyness keys M3PO's trainer logs, added to a synthetic run's train.jsonl."""
    path = run_dir / TRAIN_LOG
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for i, row in enumerate(rows):
        row["ppo/log_prob_old_mean"] = -0.6 - 0.1 * i - 0.01 * seed
        row["ppo/clip_fraction"] = 0.1 + 0.05 * i
        row["planner/prior_gap"] = 0.5 - 0.02 * i
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def smoke_results(root: Path) -> Path:
    """Synthetic run records with the smoke profile's shape: fig3a (cartpole-swingup), fig3b
    (mw-reach), fig3c (the two as one multi-task set), fig4 at 2 and 4 envs, an ablation, one
    interrupted run; one seed, evaluations at 64 and 128 steps. M3PO's runs log the diagnostics."""
    grid = synthetic.Grid(
        single={"dmc39": ["cartpole-swingup"], "mw50": ["mw-reach"]},
        multi={"mt80": ["cartpole-swingup", "mw-reach"]},
        single_algos=("m3po", "ppo", "sac", "dreamerv3"),
        multi_algos=("m3po", "tdmpc2", "mt-ppo", "mt-sac"),
        seeds=(1,),
        evals=2,
        steps_total=SMOKE_STEPS,
        noise=0.02,
    )
    synthetic.write_grid(root, grid)
    both = {"cartpole-swingup": 0.0, "mw-reach": 0.0}
    for num_envs in (2, 4):
        for algo in ("m3po", "tdmpc2"):
            synthetic.write_run(
                root / "runs" / algo / "two" / f"envs{num_envs}" / "seed1",
                task_set="cartpole-swingup,mw-reach",
                seed=1,
                algo=algo,
                num_envs=num_envs,
                scores={SMOKE_STEPS: {t: 300.0 + 10 * num_envs + (t == "mw-reach") for t in both}},
            )
    synthetic.write_run(
        root / "runs" / "m3po" / "ablation" / "alpha0" / "seed1",
        task_set="cartpole-swingup",
        seed=1,
        algo="m3po",
        variant="alpha0=0",
        alpha0=0.0,
        scores={SMOKE_STEPS: {"cartpole-swingup": 120.0}},
    )
    synthetic.write_run(
        root / "runs" / "ppo" / "x" / "seed9",
        task_set="cartpole-swingup",
        seed=9,
        scores={64: {"cartpole-swingup": 1.0}},
        algo="ppo",
        status="interrupted",
        peak_rss_mib=None,
    )
    for seed_dir in (root / "runs" / "m3po").rglob("seed*"):
        _add_diagnostics(seed_dir, int(seed_dir.name.removeprefix("seed")))
    return root


def smoke_report(root: Path) -> Path:
    """``root/smoke/report.html`` of :func:`smoke_results`, as the report builds it."""
    results = smoke_results(root / "smoke")
    report.build(results, report.DEFAULT_CLAIMS, reps=200, profile_reps=50)
    return results / "report.html"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = smoke_report(tmp_path_factory.mktemp("html"))
    return path, path.read_text()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(11.574, "12 s"), (0.4, "0 s"), (59.4, "59 s"), (59.6, "1 min"), (725, "12 min"), (3600, "1 h 00 min"),
     (7500, "2 h 05 min"), (math.nan, "—"), (None, "—")],
)  # fmt: skip
def test_durations_read_as_hours_and_minutes(seconds: float | None, text: str) -> None:
    assert html_report.fmt_duration(seconds) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(350.523345, "351"), (12345.6, "12,300"), (0.0123456, "0.0123"), (999.6, "1,000"), (1.0, "1.00"),
     (-2.5, "-2.50"), (0.0, "0"), (math.nan, "—"), (pd.NA, "—"), (np.float64(42.42), "42.4")],
)  # fmt: skip
def test_three_significant_figures(value: object, text: str) -> None:
    assert html_report.fmt_sig(value) == text


def test_memory_steps_and_cells() -> None:
    assert [html_report.fmt_gib(v) for v in (1.94, 0.04, math.nan)] == ["1.9 GiB", "0.0 GiB", "—"]
    assert [html_report.fmt_steps(v) for v in (128, 20_000, 1_500_000, None)] == ["128", "20k", "1.5M", "—"]
    cells = [html_report.fmt_cell(v) for v in (np.int64(3), 12_345, 3.0, 0.003216, math.nan, None, "x")]
    assert cells == ["3", "12,345", "3", "0.00322", "—", "—", "x"]


def test_every_verdict_gets_a_badge_and_unknown_ones_a_neutral_one() -> None:
    assert html_report.badge_class("reproduced") == "reproduced"
    assert html_report.badge_class("Not  reproduced") == "not-reproduced"
    assert html_report.badge_class("inconclusive") == "inconclusive"
    assert html_report.badge_class("not judged at this budget") == "not-judged"
    assert html_report.badge_class("partly <b>") == html_report.NEUTRAL_BADGE
    assert html_report.badge("partly <b>") == (
        '<span class="badge badge-other" data-verdict="partly &lt;b&gt;">partly &lt;b&gt;</span>'
    )


def test_prose_turns_the_rules_markdown_into_paragraphs_and_lists() -> None:
    text = (
        "All CIs are 95%.\nStill the `same` paragraph.\n\n* **Claims** hold\n  when *ours* meets it.\n* Two\n"
    )
    assert html_report.prose(text) == (
        "<p>All CIs are 95%. Still the <code>same</code> paragraph.</p>\n"
        "<ul><li><strong>Claims</strong> hold when <em>ours</em> meets it.</li><li>Two</li></ul>"
    )
    rules = html_report.prose(report.VERDICT_RULES)
    assert (
        rules.count("<li>") == report.VERDICT_RULES.count("\n* ")
        and "**" not in rules
        and "<pre>" not in rules
    )


def test_paper_and_ours_side_by_side() -> None:
    pairs = html_report.side_by_side(
        "M3PO 800, PPO 580, SAC [1, 2]", "M3PO 801.0 [790.0, 810.0], PPO 5.0 [4.0, 6.0]"
    )
    assert pairs == [
        ("M3PO", "800", "801.0 [790.0, 810.0]"),
        ("PPO", "580", "5.0 [4.0, 6.0]"),
        ("SAC", "[1, 2]", "—"),
    ]
    assert html_report.side_by_side("M3PO 800", "no data") == [("M3PO", "800", "—")]
    assert html_report.side_by_side("M3PO outperforms PPO", "fig3a vs PPO: holds") is None


def test_unknown_and_future_verdicts_render_with_their_fields(tmp_path: Path) -> None:
    """Whatever verdict strings and fields the rows carry are shown; none is dropped."""
    verdicts = ["reproduced", "not reproduced", "inconclusive", "not judged at this budget", "something new"]
    rows = [
        SimpleNamespace(claim=f"c{i}", figure="fig3a", paper="M3PO 1", ours="M3PO 2.0 [1.0, 3.0]", verdict=v,
                        why="", budget="needs 1M steps")
        for i, v in enumerate(verdicts)
    ]  # fmt: skip
    empty = pd.DataFrame(columns=["run_dir", "algo", "status", "step", "reason"])
    compute = pd.DataFrame(columns=["run_dir", "algo", "wall_clock", "sps", "peak_memory", "peak_gpu_memory"])
    path = html_report.write_html(
        tmp_path / "report.html", rows=rows, claims=[], results={}, scores=pd.DataFrame(),
        compute=compute,
        excluded=empty, figure_files=[], aggregate_rows=pd.DataFrame(), improvement=pd.DataFrame(),
        verdict_rules="* a rule", compute_notes="notes", reps=10, profile="unit",
        extra_sections=[("Fidelity: ours beside", pd.DataFrame({"task": ["t"], "ours": [math.nan]})),
                        ("Fidelity notes", "**read** me")],
    )  # fmt: skip
    text = path.read_text()
    cards = re.findall(r'<article class="claim".*?</article>', text, re.S)
    assert len(cards) == 5
    for card, verdict, cls in zip(cards, verdicts, [*html_report.BADGES.values(), "other"], strict=True):
        assert f'class="badge badge-{cls}" data-verdict="{verdict}"' in card
        assert "needs 1M steps" in card
    assert "NaN" not in text and "(no figure drawn)" in text  # no image here: no base64 to spell it
    assert "<h2 id='extra-0'>Fidelity: ours beside</h2>" in text and "<td>t</td><td>—</td>" in text
    assert "<strong>read</strong> me" in text and 'href="#extra-1"' in text


def test_the_smoke_page_is_self_contained_and_readable(page: tuple[Path, str]) -> None:
    path, text = page
    assert text.startswith("<!doctype html>")
    words = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)  # base64 may spell anything
    assert "NaN" not in words and "nan" not in words and "<pre>" not in text
    # one file: no reference to anything outside it
    assert not re.search(r'(?:src|href)="(?!data:|#)', text), "a link or image points outside the page"
    assert "http://" not in text.replace("http-equiv", "") and "https://" not in text
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == text.count("<img ") and len(images) >= 12
    # every claim a card with its badge, its figure beside it and what it was judged on
    cards = re.findall(r'<article class="claim" id="claim-([\w-]+)">(.*?)</article>', text, re.S)
    assert [c for c, _ in cards] == [
        c["id"] for c in report.yaml.safe_load(report.DEFAULT_CLAIMS.read_text())["claims"]
    ]
    for cid, card in cards:
        assert re.search(r'class="badge badge-(reproduced|not-reproduced|inconclusive|not-judged)"', card), (
            cid
        )
        assert "Judged on" in card and ("<img " in card or cid == "vectorization-stability"), cid
    dmc = dict(cards)["dmc39-final"]
    assert "<td>M3PO</td><td>800</td>" in dmc and "128 agent steps" in dmc and "cartpole-swingup" in dmc
    assert "seeds: M3PO 1" in dmc
    # what ran, the contents, the diagnostics, compute formatted
    for label in (
        "<dt>Profile</dt><dd>smoke</dd>",
        "<dt>Commit</dt>",
        "<dt>Report built</dt>",
        "<nav class='toc'>",
    ):
        assert label in text
    for fig in ("fig3a", "fig3b", "fig3c"):
        assert (path.parent / "figures" / f"diagnostics-{fig}.png").stat().st_size > 1000
        assert f'alt="{fig}: off-policyness diagnostics"' in text
    compute = text[text.index("id='compute'") : text.index("id='excluded'")]
    assert "<td>M3PO</td>" in compute and "GiB</td>" in compute and "<td>1,000</td>" in compute
    assert "status is &#x27;interrupted&#x27;" in text or "status is 'interrupted'" in text


def test_diagnostics_are_read_from_train_logs(page: tuple[Path, str]) -> None:
    path, _ = page
    runs = sorted(str(p) for p in (path.parent / "runs" / "m3po").rglob("seed1"))
    table = figures.read_diagnostics([*runs, path.parent / "nowhere"])
    assert set(table["run_dir"]) == set(runs)
    assert list(table.columns) == ["run_dir", "step", *figures.DIAGNOSTICS]
    assert table["ppo/clip_fraction"].notna().all()


def test_which_report_sections_the_page_draws_itself_and_which_runs_a_figure_has() -> None:
    own = ("Verdict rules", "Compute notes", "Runs left out (not finished, or unreadable)", "Figures")
    assert all(html_report.own_sections(t) for t in own)
    assert not any(html_report.own_sections(t) for t in ("Fidelity notes", "Computers", "Figures2"))
    scores = pd.DataFrame(
        {
            "algo": ["m3po", "m3po", "m3po", "ppo"],
            "suite": ["dmc39", "a+b", "a+b", "dmc39"],
            "mode": ["single", "multi", "multi", "single"],
            "variant": ["default", "default", "num_envs=4", "default"],
            "run_dir": ["r1", "r2", "r3", "r4"],
        }
    )
    # fig3c's suite (mt80) has no runs: a stand-in multi-task set takes its place
    assert html_report.default_figure_runs(scores) == {"fig3a": ["r1"], "fig3c": ["r2"]}
