"""The smoke profile's report.html as a reader opens it: headless Chromium (Debian's ``chromium``,
which ``.ci/run`` installs; ``make test-browser`` runs this alone).

The report is built from synthetic run records shaped like the smoke profile
(``tests/test_report_html.py``), then only ``report.html`` is copied to a folder of its own, as if
mailed, and opened there. The page's inline script marks ``<body>`` on load (images, broken
images, verdict badges, script errors); Chromium's log gives every console message, a
Content-Security-Policy refusal (anything the page would fetch from outside itself) included. A
screenshot of the whole page is written (``$M3PO_REPORT_SCREENSHOT``, else the test's temporary
folder). Where Chromium is missing or does not start, the test fails saying so: it never passes
without having looked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import pytest
from test_report_html import smoke_report

from analysis import html_report

pytestmark = [pytest.mark.browser]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WIDTH = 1400


def _chromium() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "Chromium is not installed, so the report cannot be checked in a browser: install Debian's "
        "`chromium` (apt-get install chromium; .ci/run does it as root)",
        pytrace=False,
    )


def _open(browser: str, page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--hide-scrollbars", "--no-first-run", "--enable-logging=stderr", "--v=0",
        f"--user-data-dir={profile}", *args, page.as_uri(),
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"Chromium did not finish in 120 s: {' '.join(command)}", pytrace=False)
        raise AssertionError from err
    if done.returncode != 0:
        pytest.fail(f"Chromium failed ({done.returncode}): {done.stderr[-2000:]}", pytrace=False)
    return done


def _console(stderr: str) -> list[str]:
    """Chromium's log lines of the page's console (errors, warnings, CSP refusals)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


class _Body(HTMLParser):
    """The ``data-*`` attributes of ``<body>`` and each badge's class and verdict."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str] = {}
        self.badges: list[tuple[str, str]] = []
        self._depth_article = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = {k.removeprefix("data-"): v for k, v in values.items() if k.startswith("data-")}
        if tag == "article" and "claim" in values.get("class", "").split():
            self._depth_article += 1
        if tag == "span" and "badge" in values.get("class", "").split() and self._depth_article:
            self.badges.append((values["class"], values.get("data-verdict", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "article" and self._depth_article:
            self._depth_article -= 1


def test_the_smoke_report_renders_in_chromium(tmp_path: Path) -> None:
    browser = _chromium()
    built = smoke_report(tmp_path / "results")
    mailed = tmp_path / "mailed" / "report.html"  # the page alone, away from results/ and its figures
    mailed.parent.mkdir()
    shutil.copy(built, mailed)
    source = _Body()
    source.feed(mailed.read_text())
    claims = len(re.findall(r'<article class="claim"', mailed.read_text()))
    images = mailed.read_text().count("<img ")

    dom = _open(browser, mailed, tmp_path / "profile", f"--window-size={WIDTH},1000", "--dump-dom")
    assert _console(dom.stderr) == [], "the page logged to the console"
    seen = _Body()
    seen.feed(dom.stdout)
    marks = seen.body
    assert marks.get("checked") == "1", f"the page's check script did not run: {marks}"
    assert json.loads(marks["errors"]) == []
    assert int(marks["images"]) == images >= 12
    assert int(marks["images-broken"]) == 0, f"{marks['images-broken']} of {images} images did not load"
    # every claim has its badge, each of a known class or the neutral one, as the source has them
    assert int(marks["badges"]) == claims == 7
    assert seen.badges == source.badges and len(seen.badges) == claims
    known = {f"badge badge-{cls}" for cls in (*html_report.BADGES.values(), html_report.NEUTRAL_BADGE)}
    assert {cls for cls, _ in seen.badges} <= known and all(verdict for _, verdict in seen.badges)

    shot = Path(os.environ.get("M3PO_REPORT_SCREENSHOT") or tmp_path / "report.png").resolve()
    shot.parent.mkdir(parents=True, exist_ok=True)
    height = min(int(marks["height"]), 16_000)
    taken = _open(
        browser, mailed, tmp_path / "profile", f"--window-size={WIDTH},{height}", f"--screenshot={shot}"
    )
    assert _console(taken.stderr) == []
    image = matplotlib.image.imread(shot)
    assert image.shape[1] == WIDTH and image.shape[0] >= 1000
    assert image[..., :3].std() > 0.05, "the screenshot is blank"
    print(f"screenshot: {shot}")
