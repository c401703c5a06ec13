"""The claims report as one self-contained HTML page (``report.html``): what a reader opens.

:func:`write_html` writes it from what :func:`analysis.report.write_report` has: the verdict rows,
the figures' aggregates and files, the collected tables. The page needs nothing beside it: every
figure is embedded (base64 PNG), the style and the one script are inline, and a
Content-Security-Policy forbids anything else, so it still works mailed or opened from another
folder. Its parts: what ran (profile, commit, date, machine); a contents list; one card per claim
with its verdict as a coloured badge, the paper's value and ours side by side, the budget, tasks and
seeds it was judged on and its figure beside it; every figure with its aggregate table; the
off-policyness diagnostics of each figure's M3PO runs; compute; the runs left out; the verdict
rules as text.

Verdicts are rendered, never judged here: any verdict string gets a badge (:func:`badge_class`
maps the four known ones to their colours and any other to a neutral one). The numbers go through
the small formatters below (``—`` for not recorded, never ``NaN``).

The inline script marks ``<body>`` once the page has loaded: ``data-images`` (images),
``data-images-broken`` (images that did not decode), ``data-badges`` and ``data-errors`` (a JSON
list of script errors and ``console.error`` calls); ``tests/test_browser.py`` reads them from
headless Chromium.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
import platform
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import aggregate, figures
from analysis.aggregate import FIGURES, REFERENCE_ALGO, FigureResult
from m3po.errors import RunDirectoryError
from m3po.record import host_description, read_config, read_status

MISSING = "—"
# Verdict -> badge class; every other verdict string gets NEUTRAL_BADGE (shown, never dropped).
BADGES: dict[str, str] = {
    "reproduced": "reproduced",
    "not reproduced": "not-reproduced",
    "inconclusive": "inconclusive",
    "not judged at this budget": "not-judged",
}
NEUTRAL_BADGE = "other"
ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# Numbers for reading


def is_missing(value: Any) -> bool:
    """None, NaN, pandas' NA or an empty string: a value that was not recorded."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def fmt_duration(seconds: Any) -> str:
    """Seconds as hours and minutes: ``2 h 05 min``, ``12 min``, ``45 s`` (``—`` when missing)."""
    if is_missing(seconds):
        return MISSING
    total = float(seconds)
    if total < 59.5:
        return f"{total:.0f} s"
    minutes = int(round(total / 60))
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def fmt_sig(value: Any, digits: int = 3) -> str:
    """A number to ``digits`` significant figures, without exponent, thousands separated:
    ``350.523345`` -> ``351``, ``12345`` -> ``12,300``, ``0.0123456`` -> ``0.0123``."""
    if is_missing(value):
        return MISSING
    x = float(value)
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    exponent = math.floor(math.log10(abs(x)))
    decimals = digits - 1 - exponent
    rounded = round(x, decimals)
    if rounded and math.floor(math.log10(abs(rounded))) > exponent:  # 999.6 -> 1,000
        decimals -= 1
    return f"{rounded:,.{max(decimals, 0)}f}"


def fmt_gib(value: Any) -> str:
    """GiB with one decimal: ``1.94`` -> ``1.9 GiB``."""
    return MISSING if is_missing(value) else f"{float(value):.1f} GiB"


def fmt_steps(value: Any) -> str:
    """Agent steps short: ``128``, ``20k``, ``1.5M``."""
    if is_missing(value):
        return MISSING
    n = float(value)
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            return f"{n / size:.3g}{suffix}"
    return f"{n:.0f}"


def fmt_cell(value: Any) -> str:
    """A table cell: ``—`` for missing, integers as integers, floats to 3 significant figures."""
    if is_missing(value):
        return MISSING
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return f"{int(value):,}" if abs(int(value)) >= 10_000 else str(int(value))
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() and abs(value) < 1e6 else fmt_sig(value)
    return str(value)


# ---------------------------------------------------------------------------------------------
# Verdicts, prose, images


def badge_class(verdict: str) -> str:
    """The badge class of a verdict: one of :data:`BADGES`' four, else :data:`NEUTRAL_BADGE`."""
    return BADGES.get(" ".join(str(verdict).lower().split()), NEUTRAL_BADGE)


def badge(verdict: str) -> str:
    """A verdict as a coloured badge (``span.badge``, its verdict in ``data-verdict``)."""
    text = html.escape(str(verdict))
    return f'<span class="badge badge-{badge_class(verdict)}" data-verdict="{text}">{text}</span>'


def _inline(text: str) -> str:
    """Escape, then Markdown's ``**bold**``, ``*emphasis*`` and ```code```."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", out)


def prose(text: str) -> str:
    """Plain text with a little Markdown (paragraphs, ``*``/``-`` bullets, bold, emphasis, code) as
    HTML. Wrapped lines are joined; a bullet runs until the next bullet or a blank line."""
    blocks: list[str] = []
    para: list[str] = []
    items: list[list[str]] = []

    def flush() -> None:
        if para:
            blocks.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()
        if items:
            blocks.append("<ul>" + "".join(f"<li>{_inline(' '.join(i))}</li>" for i in items) + "</ul>")
            items.clear()

    for raw in str(text).splitlines():
        line = raw.strip()
        bullet = re.match(r"[*-]\s+(.*)", line)
        if not line:
            flush()
        elif bullet:
            if para:
                flush()
            items.append([bullet.group(1)])
        elif items:
            items[-1].append(line)
        else:
            para.append(line)
    flush()
    return "\n".join(blocks)


def data_uri(path: Path) -> str:
    """A PNG (or SVG) file as a ``data:`` URI."""
    kind = "image/svg+xml" if path.suffix == ".svg" else "image/png"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of a PNG from its header; None for anything else."""
    head = path.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


# figures.py saves at 150 dpi; a figure in a figure section is shown at its size in inches (96 CSS px
# an inch), never wider than the page.
DISPLAY_SCALE = 96 / 150


def _img(path: Path, caption: str, natural: bool = False) -> str:
    """A figure, embedded: as wide as its box, or (``natural``) at its own size, at most the box."""
    alt = html.escape(caption)
    size = png_size(path)
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    style = f' style="width:{size[0] * DISPLAY_SCALE:.0f}px"' if natural and size else ""
    image = f'<img src="{data_uri(path)}" alt="{alt}"{dims}>'
    return f"<figure{style}>{image}<figcaption>{alt}</figcaption></figure>"


def split_items(text: str) -> list[str]:
    """``"A 1 [0, 2], B 3"`` -> ``["A 1 [0, 2]", "B 3"]``: split at ``, `` and ``; `` outside brackets."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "[(" and 1 or ch in "])" and -1 or 0
        if depth == 0 and ch in ",;" and text[i + 1 : i + 2] == " ":
            items.append(text[start:i].strip())
            start = i + 1
    items.append(text[start:].strip())
    return [item for item in items if item]


def _labelled(item: str) -> tuple[str, str] | None:
    """``"SAC (published) 1.0 [0.5, 1.5]"`` -> ``("SAC (published)", "1.0 [0.5, 1.5]")``: an item that
    starts with an algorithm's display name (and maybe ``(published)``); None for any other."""
    names = "|".join(re.escape(n) for n in sorted(figures.LABELS.values(), key=len, reverse=True))
    match = re.fullmatch(rf"({names})((?: \([^)]*\))?) (.+)", item)
    return (match.group(1) + match.group(2), match.group(3)) if match else None


def side_by_side(paper: str, ours: str) -> list[tuple[str, str, str]] | None:
    """Per algorithm (label, the paper's value, ours) when both texts list ``Label value`` items;
    ours without a paper value (another algorithm, published evidence) follow with ``—``. None when
    either text is not such a list."""
    papers = [_labelled(item) for item in split_items(paper)]
    if not papers or None in papers:
        return None
    mine: dict[str, str] = {}
    for item in split_items(ours):
        if item == "no data":
            continue
        found = _labelled(item)
        if found is None:
            return None
        mine[found[0]] = found[1]
    rows = [(name, value, mine.pop(name, MISSING)) for name, value in papers if name]  # type: ignore[misc]
    return rows + [(name, MISSING, value) for name, value in mine.items()]


# ---------------------------------------------------------------------------------------------
# What ran


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def _runs_facts(run_dirs: Sequence[str]) -> dict[str, set]:
    """Hosts, devices, SLURM jobs and start times of the runs' attempts."""
    facts: dict[str, set] = {"hosts": set(), "devices": set(), "started": set(), "slurm": set()}
    for run_dir in run_dirs:
        try:
            status, config = read_status(Path(run_dir)), read_config(Path(run_dir)) or {}
        except (RunDirectoryError, OSError):
            continue
        for attempt in status.get("attempts") or []:
            if attempt.get("host"):
                facts["hosts"].add(str(attempt["host"]))
            if attempt.get("slurm_job_id"):
                facts["slurm"].add(str(attempt["slurm_job_id"]))
            if isinstance(attempt.get("started"), int | float):
                facts["started"].add(float(attempt["started"]))
        if config.get("device"):
            facts["devices"].add(str(config["device"]))
    return facts


def _when(stamp: float) -> str:
    return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def run_info(
    results_dir: Path, compute: pd.DataFrame, excluded: pd.DataFrame, reps: int, profile: str | None = None
) -> list[tuple[str, str]]:
    """What ran, as (label, text) pairs: profile, commit, date, machine, runs, bootstrap."""
    commit = _git("rev-parse", "--short=10", "HEAD")
    when = _git("log", "-1", "--format=%cd", "--date=format:%Y-%m-%d")
    if commit and _git("status", "--porcelain", "--untracked-files=no"):
        commit += " with uncommitted changes"
    facts = _runs_facts([str(r) for r in compute["run_dir"]]) if len(compute) else _runs_facts([])
    started = sorted(facts["started"])
    period = ""
    if started:
        first, last = _when(started[0]), _when(started[-1])
        period = first if first == last else f"{first} to {last}"
    trained = [
        period if started else "",
        f"on {', '.join(sorted(facts['hosts']))}" if facts["hosts"] else "",
        f"device {', '.join(sorted(facts['devices']))}" if facts["devices"] else "",
        f"{len(facts['slurm'])} SLURM jobs" if facts["slurm"] else "",
    ]
    machine = f"{host_description()}, {platform.system()}"  # described, not named: reports get published
    return [
        ("Profile", profile or Path(results_dir).resolve().name),
        ("Commit", f"{commit} ({when})" if commit and when else commit or MISSING),
        ("Report built", f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} on {machine}"),
        ("Runs", f"{len(compute)} finished, {len(excluded)} left out"),
        ("Trained", " · ".join(t for t in trained if t) or MISSING),
        ("Intervals", f"95% stratified bootstrap, {reps:,} repetitions, seeded"),
    ]


# ---------------------------------------------------------------------------------------------
# The page's parts


def _table(head: Sequence[str], body: Sequence[Sequence[str]], cls: str = "") -> str:
    """Cells are HTML already."""
    th = "".join(f"<th>{h}</th>" for h in head)
    tr = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in body)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{tr}</tbody></table>'


def frame_table(frame: pd.DataFrame, cls: str = "") -> str:
    """A DataFrame as an HTML table, each cell through :func:`fmt_cell` and escaped."""
    if frame.empty:
        return '<p class="none">(none)</p>'
    body = [[html.escape(fmt_cell(v)) for v in row] for row in frame.itertuples(index=False)]
    return _table([html.escape(str(c)) for c in frame.columns], body, cls)


def compute_summary(compute: pd.DataFrame) -> pd.DataFrame:
    """Per algorithm (M3PO first): runs, total wall-clock, median steps/s, peak memory, formatted."""
    columns = [
        "algorithm",
        "runs",
        "wall-clock (total)",
        "steps/s (median)",
        "peak memory",
        "peak GPU memory",
    ]
    if compute.empty:
        return pd.DataFrame(columns=columns)
    table = compute.groupby("algo").agg(
        runs=("run_dir", "count"),
        wall=("wall_clock", lambda s: s.sum(min_count=1)),
        sps=("sps", "median"),
        mem=("peak_memory", "max"),
        gpu=("peak_gpu_memory", "max"),
    )
    order = sorted(table.index, key=lambda algo: (algo != REFERENCE_ALGO, algo))
    rows = [
        [
            figures.label(a),
            str(int(r.runs)),
            fmt_duration(r.wall),
            fmt_sig(r.sps),
            fmt_gib(r.mem),
            fmt_gib(r.gpu),
        ]
        for a, r in table.loc[order].iterrows()
    ]
    return pd.DataFrame(rows, columns=columns)


def _figure_ids(figure: str) -> list[str]:
    return [f.strip() for f in re.split(r"[,+\s]+", str(figure)) if f.strip()]


def _stem_figure(stem: str) -> str:
    """``fig3a-intervals`` -> ``fig3a``; ``ablation-alpha0`` -> ``ablations``."""
    return "ablations" if stem.startswith("ablation") else stem.split("-")[0]


def judged_on(figure: str, results: Mapping[str, FigureResult], scores: pd.DataFrame) -> list[str]:
    """What a claim's verdict rests on, per figure: the step judged, the tasks and the seeds."""
    lines = []
    for fig in _figure_ids(figure):
        result = results.get(fig)
        if result is not None and result.algos:
            steps = {int(r.steps[-1]) for r in result.algos.values()}
            tasks = sorted({t for r in result.algos.values() for t in r.tasks})
            seeds = ", ".join(f"{figures.label(a)} {r.n_runs}" for a, r in result.algos.items())
            shown = ", ".join(tasks[:4]) + (f" and {len(tasks) - 4} more" if len(tasks) > 4 else "")
            lines.append(
                f"<b>{fig}</b>: at {' / '.join(fmt_steps(s) for s in sorted(steps))} agent steps · "
                f"{len(tasks)} task{'s' * (len(tasks) != 1)} ({html.escape(shown)}) · "
                f"seeds: {html.escape(seeds)}"
            )
        elif fig == "fig4" and len(scores):
            rows = scores[
                scores["algo"].isin([REFERENCE_ALGO, "tdmpc2"])
                & (scores["mode"] == "multi")
                & aggregate.in_env_sweep(scores["variant"])
            ]
            if rows.empty:
                lines.append(f"<b>{fig}</b>: no runs")
                continue
            # the task set run at the most env counts, as analysis.report.fig4_runs picks it
            spread = rows.groupby("task_set").agg(
                settings=("num_envs", "nunique"), runs=("run_dir", "nunique")
            )
            task_set = spread.sort_values(["settings", "runs"], ascending=False).index[0]
            rows = rows[rows["task_set"] == task_set]
            per = rows.groupby(["algo", "num_envs"])["seed"].nunique()
            seeds = "; ".join(
                f"{figures.label(a)} " + ", ".join(f"{s} at {n} envs" for (_, n), s in per[[a]].items())
                for a in per.index.get_level_values(0).unique()
            )
            lines.append(
                f"<b>{fig}</b>: at {fmt_steps(rows['step'].max())} agent steps · "
                f"{html.escape(task_set)} · seeds: {html.escape(seeds)}"
            )
        else:
            lines.append(f"<b>{html.escape(fig)}</b>: no runs")
    return lines


def _claim_card(
    row: Any,
    claim: Mapping[str, Any],
    results: Mapping[str, FigureResult],
    scores: pd.DataFrame,
    images: Mapping[str, Path],
) -> str:
    fields = dict(getattr(row, "__dict__", {}) or {})
    cid = str(fields.pop("claim", claim.get("id", "")))
    figure = str(fields.pop("figure", claim.get("figure", "")))
    verdict = str(fields.pop("verdict", ""))
    paper, ours, why = (str(fields.pop(k, "") or "") for k in ("paper", "ours", "why"))
    statement = claim.get("statement") or claim.get("metric") or ""
    title = html.escape(str(statement)) if statement else ""
    pairs = side_by_side(paper, ours)
    if pairs:
        at = claim.get("at_steps")
        head = ["", f"paper{f' (at {fmt_steps(at)} steps)' if at else ''}", "ours (mean, 95% CI)"]
        comparison = _table(head, [[html.escape(c) for c in pair] for pair in pairs], "compare")
    else:
        ours_items = "".join(f"<li>{html.escape(i)}</li>" for i in split_items(ours)) or f"<li>{MISSING}</li>"
        mine = f"<div><h4>ours</h4><ul>{ours_items}</ul></div>"
        if paper and paper == statement:  # the statement is the card's title already
            comparison = f'<div class="compare-text single">{mine}</div>'
        else:
            said = f"<div><h4>paper</h4><p>{html.escape(paper or MISSING)}</p></div>"
            comparison = f'<div class="compare-text">{said}{mine}</div>'
    # further fields of the row (scope, budget, ...): text ones are shown; structured ones (the
    # record behind claims.json) are data, not prose
    extra = "".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>"
        for k, v in fields.items()
        if isinstance(v, str | int | float) and not isinstance(v, bool) and not is_missing(v)
    )
    reading = (
        f"<p class='reading'>Reading: {html.escape(str(claim['reading']))}</p>"
        if claim.get("reading")
        else ""
    )
    why_html = f"<p class='why'><b>Deciding facts</b>: {html.escape(why)}</p>" if why else ""
    basis = extra + "".join(f"<li>{line}</li>" for line in judged_on(figure, results, scores))
    shown = [images[f] for f in _figure_ids(figure) if f in images]
    figs = "".join(_img(p, f"{p.stem}: the figure this claim reads") for p in shown)
    aside = (
        f'<div class="claim-figs">{figs}</div>'
        if figs
        else '<div class="claim-figs none">(no figure drawn)</div>'
    )
    return (
        f'<article class="claim" id="claim-{html.escape(cid)}">'
        f'<div class="claim-text"><header>{badge(verdict)}<h3>{html.escape(cid)}</h3>'
        f'<span class="fig-id">{html.escape(figure)}</span></header>'
        + (f"<p class='statement'>{title}</p>" if title else "")
        + comparison
        + f"<p class='basis-h'>Judged on</p><ul class='basis'>{basis}</ul>"
        + why_html
        + reading
        + f"</div>{aside}</article>"
    )


def _summary(rows: Sequence[Any]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[str(getattr(row, "verdict", ""))] = counts.get(str(getattr(row, "verdict", "")), 0) + 1
    chips = " ".join(f"{badge(v)}<span class='count'>× {n}</span>" for v, n in counts.items())
    links = "".join(
        f'<li><a href="#claim-{cid}">{cid}</a> {badge(r.verdict)}</li>'
        for r in rows
        for cid in [html.escape(str(r.claim))]
    )
    return f"<p class='chips'>{chips}</p><ul class='verdict-list'>{links}</ul>"


def _panel_order(path: Path) -> tuple[int, str]:
    """The curves first, then the interval and profile panels, then anything else."""
    kinds = ("", "-intervals", "-profiles")
    suffix = path.stem[len(_stem_figure(path.stem)) :] if path.stem.startswith("fig") else path.stem
    return (kinds.index(suffix) if suffix in kinds else len(kinds), path.stem)


def _figure_section(
    fig: str, paths: Sequence[Path], aggregate_rows: pd.DataFrame, improvement: pd.DataFrame
) -> str:
    imgs = "".join(_img(p, p.stem, natural=True) for p in sorted(paths, key=_panel_order))
    head = f'<section class="figure" id="fig-{fig}"><h3>{html.escape(fig)}</h3>'
    parts = [f'{head}<div class="fig-grid">{imgs}</div>']
    if len(aggregate_rows) and "figure" in aggregate_rows:
        rows = aggregate_rows[aggregate_rows["figure"] == fig].drop(columns="figure")
        if len(rows):
            title = "Aggregate metrics at the last step of each algorithm, over the tasks it ran (95% CI)"
            parts.append(f"<h4>{title}</h4>" + frame_table(rows))
    if len(improvement) and "figure" in improvement:
        rows = improvement[improvement["figure"] == fig].drop(columns="figure")
        if len(rows):
            title = (
                "Probability of improvement at the last step both evaluated, on the tasks both ran (95% CI)"
            )
            parts.append(f"<h4>{title}</h4>" + frame_table(rows))
    return "".join(parts) + "</section>"


# report.md's sections that this page draws in its own way; any other is an extra section.
OWN_SECTIONS = (
    "Claims of the paper against this suite",
    "Verdict rules",
    "Aggregate metrics at the last step",
    "Probability of improvement at the last step",
    "Compute",
    "Runs left out",
    "Figures",
)


def own_sections(title: str) -> bool:
    """Whether ``report.md``'s section ``title`` is one this page draws itself (by its start)."""
    return any(title == own or title.startswith(own + " ") for own in OWN_SECTIONS)


def default_figure_runs(scores: pd.DataFrame) -> dict[str, list[str]]:
    """Each of :data:`FIGURES`' M3PO runs (default variant), by the figure's suite and mode. A
    multi-task figure whose suite has no runs takes M3PO's default multi-task runs instead (the
    workflow's small grids run a stand-in task set for mt80, under its own suite name)."""
    if scores.empty:
        return {}
    out = {}
    for fig, spec in FIGURES.items():
        runs = aggregate.figure_rows(scores, spec, REFERENCE_ALGO)["run_dir"].unique().tolist()
        if not runs and spec.mode == "multi":
            rows = scores[
                (scores["algo"] == REFERENCE_ALGO)
                & (scores["mode"] == "multi")
                & (scores["variant"] == "default")
            ]
            runs = rows["run_dir"].unique().tolist()
        if runs:
            out[fig] = runs
    return out


def draw_diagnostics(
    figure_runs: Mapping[str, Sequence[str]], scores: pd.DataFrame, fig_dir: Path
) -> dict[str, Path | None]:
    """``figures/diagnostics-{figure}.png`` (and PDF) per figure with M3PO runs; None where its runs
    logged none of the diagnostics."""
    labels = {}
    if len(scores):
        first = scores.drop_duplicates("run_dir").set_index("run_dir")
        variant = first["variant"] if "variant" in first else pd.Series("default", index=first.index)
        labels = {
            r: f"{first.at[r, 'task_set']}"
            + ("" if variant[r] == "default" else f" {variant[r]}")
            + f" seed {first.at[r, 'seed']}"
            for r in first.index
        }  # the ablations' runs differ by variant only
    out: dict[str, Path | None] = {}
    for fig, runs in figure_runs.items():
        diag = figures.read_diagnostics(runs)
        if diag.empty:
            out[fig] = None
            continue
        n = diag["run_dir"].nunique()
        title = f"{fig}: off-policyness of M3PO's {n} run{'s' * (n != 1)}"
        paths = figures.plot_diagnostics(diag, labels, title, fig_dir / f"diagnostics-{fig}")
        out[fig] = paths[0]
    return out


STYLE = """
:root { --ink:#1d2330; --muted:#5b6475; --line:#dfe3ea; --bg:#f6f7f9; --card:#fff; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
  color:var(--ink); background:var(--bg); }
main { max-width:1280px; margin:0 auto; padding:24px 28px 64px; }
h1 { font-size:26px; margin:0 0 4px; }
h2 { font-size:21px; margin:40px 0 12px; padding-bottom:6px; border-bottom:2px solid var(--line); }
h3 { font-size:17px; margin:0; }
h4 { font-size:14px; margin:14px 0 6px; color:var(--muted); text-transform:uppercase; letter-spacing:.04em; }
.subtitle { color:var(--muted); margin:0 0 16px; }
dl.meta { display:grid; grid-template-columns:max-content 1fr; gap:4px 16px; margin:0; padding:14px 18px;
  background:var(--card); border:1px solid var(--line); border-radius:8px; }
dl.meta dt { color:var(--muted); } dl.meta dd { margin:0; }
nav.toc { margin:16px 0; padding:10px 18px; background:var(--card); border:1px solid var(--line);
  border-radius:8px; }
nav.toc ol { margin:4px 0; padding-left:20px; columns:2; } nav.toc a { color:#1f5fbf; text-decoration:none; }
.badge { display:inline-block; padding:2px 10px; border-radius:999px; font-size:12.5px; font-weight:600;
  white-space:nowrap; border:1px solid transparent; }
.badge-reproduced { background:#dcf5e3; color:#12652f; border-color:#9fd8b0; }
.badge-not-reproduced { background:#fde2e1; color:#a11d1d; border-color:#f3a7a4; }
.badge-inconclusive { background:#fff1cc; color:#8a5a00; border-color:#f0cf7a; }
.badge-not-judged { background:#e4e9f2; color:#3a4a66; border-color:#b9c4d8; }
.badge-other { background:#eee; color:#333; border-color:#ccc; }
.chips .count { margin:0 14px 0 4px; color:var(--muted); }
ul.verdict-list { list-style:none; padding:0; display:flex; flex-wrap:wrap; gap:6px 18px; }
ul.verdict-list a { color:var(--ink); font-family:ui-monospace,monospace; font-size:13.5px; }
article.claim { display:grid; grid-template-columns:minmax(0,1fr) minmax(0,1.1fr); gap:20px;
  background:var(--card); border:1px solid var(--line); border-radius:10px; padding:16px 18px;
  margin:14px 0; }
article.claim header { display:flex; align-items:center; gap:10px; flex-wrap:wrap; }
article.claim h3 { font-family:ui-monospace,monospace; }
.fig-id { color:var(--muted); font-size:13px; }
.statement { font-size:15.5px; margin:8px 0; }
table { border-collapse:collapse; margin:6px 0; font-size:13.5px; background:var(--card); }
th, td { border-bottom:1px solid var(--line); padding:4px 10px; text-align:left; vertical-align:top; }
th { color:var(--muted); font-weight:600; } td { font-variant-numeric:tabular-nums; }
table.compare td:first-child { font-weight:600; }
.compare-text { display:grid; grid-template-columns:1fr 1fr; gap:14px; }
.compare-text.single { grid-template-columns:1fr; }
.compare-text h4 { margin-top:4px; } .compare-text ul { padding-left:18px; margin:0; }
.basis-h { margin:12px 0 2px; color:var(--muted); font-size:13px; font-weight:600; text-transform:uppercase; }
ul.basis { margin:0; padding-left:18px; font-size:13.5px; }
.why, .reading { font-size:13.5px; color:var(--muted); margin:8px 0 0; }
figure { margin:0; }
figure img { width:100%; height:auto; border:1px solid var(--line); border-radius:6px; background:#fff; }
figcaption { font-size:12px; color:var(--muted); text-align:center; }
.claim-figs { display:flex; flex-direction:column; gap:10px; }
.fig-grid { display:flex; flex-wrap:wrap; gap:14px 22px; align-items:flex-start; }
.fig-grid figure { max-width:100%; }
section.figure { background:var(--card); border:1px solid var(--line); border-radius:10px;
  padding:14px 18px; margin:14px 0; }
section.figure table { width:auto; }
.rules { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:6px 20px; }
.rules li { margin:6px 0; } code { background:#eef1f5; padding:0 4px; border-radius:4px; font-size:90%; }
.none { color:var(--muted); font-style:italic; }
@media (max-width: 900px) { article.claim { grid-template-columns:1fr; } nav.toc ol { columns:1; } }
"""

# Runs before anything else: records script errors and console.error calls, then on load counts
# the images that did not decode and the verdict badges (tests/test_browser.py reads these).
CHECK_SCRIPT = """
(function () {
  var errors = [];
  window.addEventListener("error", function (e) {
    var what = e.target && (e.target.src || e.target.tagName);
    errors.push(e.message ? String(e.message) : "failed to load " + what);
  }, true);
  var consoleError = console.error;
  console.error = function () {
    errors.push(Array.prototype.join.call(arguments, " "));
    consoleError.apply(console, arguments);
  };
  window.addEventListener("load", function () {
    var images = Array.prototype.slice.call(document.images);
    var broken = images.filter(function (img) { return !(img.complete && img.naturalWidth > 0); });
    var body = document.body.dataset;
    body.images = images.length;
    body.imagesBroken = broken.length;
    body.badges = document.querySelectorAll("article.claim .badge").length;
    body.height = Math.ceil(document.documentElement.scrollHeight);
    body.errors = JSON.stringify(errors);
    body.checked = "1";
  });
})();
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def write_html(
    path: Path,
    *,
    rows: Sequence[Any],
    claims: Sequence[Mapping[str, Any]],
    results: Mapping[str, FigureResult],
    scores: pd.DataFrame,
    compute: pd.DataFrame,
    excluded: pd.DataFrame,
    figure_files: Sequence[Path],
    aggregate_rows: pd.DataFrame,
    improvement: pd.DataFrame,
    verdict_rules: str,
    compute_notes: str,
    reps: int,
    profile: str | None = None,
    figure_runs: Mapping[str, Sequence[str]] | None = None,
    extra_sections: Sequence[tuple[str, str | pd.DataFrame]] = (),
) -> Path:
    """Write the self-contained report page.

    :param path: ``report.html`` (its folder is the results directory; the diagnostics figures go
        to its ``figures/``)
    :param rows: the verdict rows (``claim``, ``figure``, ``paper``, ``ours``, ``verdict``, ``why``;
        any further field is shown in its card)
    :param claims: ``paper-claims.yaml``'s ``claims`` (statements, readings, steps), by ``id``
    :param results: figure id -> aggregates
    :param scores: the collected scores (tasks, seeds and run directories of each figure)
    :param compute: the collected compute table
    :param excluded: the runs left out
    :param figure_files: the figures' files (PNGs are embedded, grouped by figure id)
    :param aggregate_rows: the aggregate metrics table, with a ``figure`` column
    :param improvement: the probability-of-improvement table, with a ``figure`` column
    :param verdict_rules: the rules, as text with a little Markdown
    :param compute_notes: how compute was measured, likewise
    :param reps: bootstrap repetitions
    :param profile: the workflow's profile (default: the results directory's name)
    :param figure_runs: figure id -> its M3PO run directories, for the diagnostics (default: from
        the scores, by :data:`analysis.aggregate.FIGURES`)
    :param extra_sections: further (title, table or text) sections of ``report.md``, shown after
        the figures (:func:`own_sections` tells which of report.md's this page draws itself)
    """
    path = Path(path)
    results_dir = path.parent
    by_id = {str(c.get("id")): c for c in claims}
    pngs = [Path(p) for p in figure_files if Path(p).suffix == ".png" and Path(p).exists()]
    grouped: dict[str, list[Path]] = {}
    for p in pngs:
        grouped.setdefault(_stem_figure(p.stem), []).append(p)
    main_images = {fig: next((p for p in ps if p.stem == fig), ps[0]) for fig, ps in grouped.items()}
    runs_of = default_figure_runs(scores) if figure_runs is None else figure_runs
    diagnostics = draw_diagnostics(runs_of, scores, results_dir / "figures")

    toc = [
        ("summary", "Summary"),
        ("claims", "Claims of the paper against this suite"),
        ("figures", "Figures"),
    ]
    extras = [(f"extra-{i}", str(title), content) for i, (title, content) in enumerate(extra_sections)]
    toc += [(anchor, title) for anchor, title, _ in extras]
    toc += [("diagnostics", "Off-policyness of M3PO's runs"), ("compute", "Compute")]
    toc += [("excluded", "Runs left out"), ("rules", "Verdict rules")]
    info = run_info(results_dir, compute, excluded, reps, profile)
    head = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>M3PO reproduction: claims report ({html.escape(info[0][1])})</title>"
        f"<script>{CHECK_SCRIPT}</script><style>{STYLE}</style></head>"
    )
    body = [
        "<body><main>",
        "<h1>M3PO reproduction: claims report</h1>",
        "<p class='subtitle'>Each of the paper's claims beside what this suite measured, "
        "with the figure it reads.</p>",
        "<dl class='meta'>"
        + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in info)
        + "</dl>",
        "<nav class='toc'><b>Contents</b><ol>"
        + "".join(f'<li><a href="#{a}">{html.escape(t)}</a></li>' for a, t in toc)
        + "</ol></nav>",
        f"<h2 id='summary'>Summary</h2>{_summary(rows)}",
        "<h2 id='claims'>Claims of the paper against this suite</h2>",
    ]
    body += [
        _claim_card(r, by_id.get(str(getattr(r, "claim", "")), {}), results, scores, main_images)
        for r in rows
    ]
    body.append("<h2 id='figures'>Figures</h2>")
    order = [f for f in (*FIGURES, "fig4", "ablations") if f in grouped] + [
        f for f in grouped if f not in (*FIGURES, "fig4", "ablations")
    ]
    body += [_figure_section(f, grouped[f], aggregate_rows, improvement) for f in order] or [
        "<p class='none'>(no figure drawn)</p>"
    ]
    for anchor, title, content in extras:
        shown = frame_table(content) if isinstance(content, pd.DataFrame) else prose(str(content))
        body.append(f"<h2 id='{anchor}'>{html.escape(title)}</h2>{shown}")
    body.append(
        "<h2 id='diagnostics'>Off-policyness of M3PO's runs</h2><p>M3PO acts with its planner but "
        "trains its prior with PPO on those actions. Per figure, what its runs logged at each update: "
        "the mean log-density <code>log π_old</code> of the executed actions under the prior (lower: "
        "the planner picked actions the prior finds unlikely), PPO's clip fraction, and the mean "
        "distance |a − prior mean| between the planner's action and the prior's per action dimension. "
        "A planner that strays from the prior shows as falling <code>log π_old</code> and rising "
        "distance and clip fraction.</p>"
    )
    for fig, img in diagnostics.items():
        if img is None:
            body.append(f"<p class='none'>{html.escape(fig)}: its M3PO runs logged no diagnostics.</p>")
        else:
            shown = _img(img, f"{fig}: off-policyness diagnostics", natural=True)
            body.append(f'<section class="figure"><div class="fig-grid">{shown}</div></section>')
    if not diagnostics:
        body.append("<p class='none'>(no M3PO runs)</p>")
    body.append(f"<h2 id='compute'>Compute</h2>{frame_table(compute_summary(compute))}{prose(compute_notes)}")
    left_out = excluded.copy()
    if len(left_out) and "run_dir" in left_out:
        left_out["run_dir"] = [_relative(r, results_dir) for r in left_out["run_dir"]]
    body.append(f"<h2 id='excluded'>Runs left out (not finished, or unreadable)</h2>{frame_table(left_out)}")
    body.append(
        f"<h2 id='rules'>Verdict rules</h2><div class='rules'>{prose(verdict_rules)}"
        f"<p>Bootstrap repetitions: {reps:,}; seeded, so a rerun gives the same intervals.</p></div>"
    )
    body.append("</main></body></html>")
    path.write_text(head + "\n".join(body), encoding="utf-8")
    return path


def _relative(run_dir: Any, results_dir: Path) -> str:
    try:
        return str(Path(str(run_dir)).resolve().relative_to(results_dir.resolve()))
    except ValueError:
        return str(run_dir)
