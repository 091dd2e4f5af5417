"""``sreagent report``: the postmortem HTML (checked, then opened offline in Chromium) and the
regression report failing on a degraded figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sreagent.reports import load_postmortem
from tests.conftest import REPO


def sreagent(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sreagent", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def postmortem_html(lab_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    run = sreagent("report", "postmortem", str(lab_package), "-o", str(out))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return out


@pytest.mark.slow
def test_postmortem_report_holds_hypothesis_plot_and_verdict(postmortem_html: Path, lab_package: Path) -> None:
    html = postmortem_html.read_text()
    pm = load_postmortem(lab_package)
    top = pm.hypotheses.hypotheses[0]
    assert top.title in html and f"{top.fault_class} at {top.entity}" in html
    assert html.count('data-mime-type="image/svg+xml"') >= 2  # timeline + evidence plots
    assert f"verification verdict: {pm.verification}" in html
    assert "nothing_executed" in html
    # self-contained: nothing to fetch (no script or stylesheet from elsewhere)
    assert "<script src=" not in html and 'rel="stylesheet" href="http' not in html
    summary = json.loads(postmortem_html.with_suffix(".summary.json").read_text())
    assert summary["top_hypothesis"] == pm.top_hypothesis and summary["incident"] is True


@pytest.mark.slow
@pytest.mark.browser
def test_postmortem_report_renders_its_plots_with_networking_disabled(postmortem_html: Path, browser: Any, tmp_path: Path) -> None:
    context = browser.new_context(offline=True)
    requested: list[str] = []
    context.route("**/*", lambda route: (requested.append(route.request.url),
                                         route.continue_() if route.request.url.startswith(("file:", "data:"))
                                         else route.abort()))
    page = context.new_page()
    page.goto(postmortem_html.as_uri(), wait_until="load", timeout=60_000)
    plots = page.locator('[data-mime-type="image/svg+xml"] img')
    assert plots.count() >= 2
    for i in range(plots.count()):
        size = plots.nth(i).evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
        assert size[0] and size[1] > 100 and size[2] > 100, f"plot {i} did not render: {size}"
    assert [u for u in requested if not u.startswith(("file:", "data:"))] == []
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000
    context.close()


@pytest.mark.slow
def test_regression_report_fails_when_a_figure_drops(lab_package: Path, tmp_path: Path) -> None:
    # Two scenarios and one replay keep it short; the baseline is made by a healthy run of the
    # same set, then a degraded chain (no incident may open) must fall below it.
    subset = ["--scenario", "12_packet_loss", "--scenario", "29_control_web_cron_backup",
              "--replays", str(lab_package.parent)]
    baseline = tmp_path / "baseline.json"
    healthy = sreagent("report", "regression", "-o", str(tmp_path / "healthy.html"), *subset,
                       "--no-baseline", "--write-baseline", str(baseline))
    assert healthy.returncode == 0, healthy.stdout[-3000:] + healthy.stderr[-3000:]
    figures = json.loads(baseline.read_text())["figures"]
    assert figures["detection.recall"] == 1.0 and figures["rca.ac1.packet_loss"] == 1.0

    degraded = sreagent("report", "regression", "-o", str(tmp_path / "degraded.html"), *subset,
                        "--baseline", str(baseline), "--set", "detection.min_risk_to_open=1.0",
                        "--json", str(tmp_path / "degraded.json"))
    assert degraded.returncode == 1, degraded.stdout[-3000:] + degraded.stderr[-3000:]
    assert "detection.recall: 0 (baseline 1)" in degraded.stderr
    assert "rca.ac1.packet_loss: 0 (baseline 1)" in degraded.stderr
    assert "WORSE" in (tmp_path / "degraded.html").read_text()
    result = json.loads((tmp_path / "degraded.json").read_text())
    assert result["figures"]["detection.false_positives"] == 0.0  # the control still stays quiet

    mismatched = sreagent("report", "regression", "-o", str(tmp_path / "x.html"), *subset[:2],
                          "--replays", str(lab_package.parent), "--baseline", str(baseline))
    assert mismatched.returncode == 2 and "do not compare" in mismatched.stderr


@pytest.mark.slow
@pytest.mark.browser
def test_pdf_is_the_html_printed_by_headless_chromium(postmortem_html: Path, tmp_path: Path) -> None:
    from sreagent.reports import html_to_pdf
    from tests.conftest import require_binary

    require_binary("chromium")
    pdf = tmp_path / "report.pdf"
    html_to_pdf(postmortem_html, pdf)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert data.count(b"/Type /Page") >= 2 or data.count(b"/Type/Page") >= 2  # a multi-page report
