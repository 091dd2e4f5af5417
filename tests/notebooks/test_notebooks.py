"""The notebooks themselves: nbval on the papermill notebooks, marimo check and export."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

NOTEBOOKS = REPO / "notebooks"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", ["postmortem.ipynb", "regression.ipynb"])
def test_nbval_reproduces_the_stored_outputs(notebook: str) -> None:
    # Strict nbval (not --nbval-lax): every stored output must come back; only SVG bodies and
    # temporary paths are sanitised (notebooks/nbval_sanitize.cfg).
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--nbval",
         str(NOTEBOOKS / notebook), "--nbval-sanitize-with", str(NOTEBOOKS / "nbval_sanitize.cfg")],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout


@pytest.mark.parametrize("app", ["postmortem_app.py", "ops_app.py"])
def test_marimo_check_is_clean(app: str) -> None:
    run = subprocess.run([sys.executable, "-m", "marimo", "check", str(NOTEBOOKS / app)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "", run.stdout + run.stderr


@pytest.mark.slow
def test_marimo_export_html_of_the_postmortem_app(lab_package: Path, tmp_path: Path) -> None:
    out = tmp_path / "app.html"
    run = subprocess.run(
        [sys.executable, "-m", "marimo", "export", "html", str(NOTEBOOKS / "postmortem_app.py"),
         "-o", str(out), "--", "--package", str(lab_package)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    html = out.read_text()
    # the cells ran: the run's top hypothesis and the what-if diff are in the page
    assert "Packet loss and TCP retransmits on nic/eth0" in html
    assert "Decision diff" in html
