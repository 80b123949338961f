"""The HTML report in a real headless browser (Debian's chromium).

It renders with no console message at all (a script error, a blocked
resource or a Content-Security-Policy violation would each log one), shows
what the summary holds, and looks right: the screenshot in docs/report.png
comes from ``tests/report_support.py``, the same code as here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aiinvariants._report import write_report
from report_support import browser, evidence, png_size, render, screenshot

if browser() is None:
    if os.environ.get("CI"):
        pytest.fail(
            "chromium is required in CI (.ci/run installs it: apt-get install "
            "chromium)",
            pytrace=False,
        )
    pytest.skip(
        "chromium is not installed (apt-get install chromium); the report's "
        "browser test needs it",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    log, stats, key = evidence(folder)
    page = folder / "report.html"
    assert write_report(log, page, stats=stats, public_key=key.public_key()).ok
    return page


def test_the_console_check_sees_errors(tmp_path: Path) -> None:
    # The negative control: without it, an empty console proves nothing.
    page = tmp_path / "noisy.html"
    page.write_text(
        "<!DOCTYPE html><html><body><script>console.error('boom-17')</script>"
        "</body></html>"
    )
    assert any("boom-17" in line for line in render(page).console)


def test_the_report_renders_without_console_messages(report: Path) -> None:
    rendered = render(report)
    assert rendered.console == []
    dom = rendered.dom
    assert "Chain intact" in dom
    assert "Ed25519-signed checkpoints verified" in dom
    assert "Statistical evidence (I14)" in dom
    assert "system prompt never revealed" in dom
    assert dom.count("<svg") >= 14 + 2 + 3  # timelines, bar charts, rate bars
    assert "<script" not in dom


def test_a_csp_violation_would_be_seen(report: Path, tmp_path: Path) -> None:
    # The report's own policy blocks an injected script and says so.
    html = report.read_text(encoding="utf-8")
    tainted = tmp_path / "tainted.html"
    tainted.write_text(html.replace("</main>", "<script>1</script></main>"))
    assert any("Content Security Policy" in line for line in render(tainted).console)


def test_screenshot(report: Path, tmp_path: Path) -> None:
    png = tmp_path / "report.png"
    screenshot(report, png)
    assert png_size(png) == (1200, 1900)
    assert png.stat().st_size > 50_000  # a rendered page, not a blank one
