"""Running the papermill reports: execute a notebook, convert it to self-contained HTML.

The HTML opens with no network: nbconvert's lab template is used with its CDN scripts
(require.js, MathJax, mermaid) left out, and the notebooks draw their charts as inline SVG.
``pdf`` prints that HTML with headless Chromium (nbconvert's webpdf would download a browser).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from sreagent.atomic import atomic_write_bytes
from sreagent.errors import BadInput, CheckFailed

NOTEBOOKS_ENV = "SREAGENT_NOTEBOOKS"
"""Folder holding the notebooks, when not the checkout's ``notebooks/``."""

CHROMIUM_ENV = "SREAGENT_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
PDF_TIMEOUT_S = 120

# The lab template without anything fetched from a CDN; the notebooks need none of it
# (no widgets, no LaTeX, no mermaid diagrams).
_OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
"""


def notebooks_dir() -> Path:
    """Where the report notebooks and marimo apps live (``$SREAGENT_NOTEBOOKS`` or the
    checkout's ``notebooks/``)."""
    configured = os.environ.get(NOTEBOOKS_ENV)
    root = Path(configured) if configured else Path(__file__).resolve().parents[2] / "notebooks"
    if not (root / "postmortem.ipynb").is_file():
        raise BadInput(
            f"no report notebooks here (set ${NOTEBOOKS_ENV} to the folder holding postmortem.ipynb)",
            path=str(root),
        )
    return root


def execute_notebook(
    notebook: Path, parameters: dict[str, Any], *, executed: Path, cwd: Path | None = None
) -> None:
    """Run ``notebook`` with papermill into ``executed``. A failing cell raises CheckFailed
    naming the cell's error (papermill keeps the partial notebook at ``executed``)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    try:
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters=parameters,
            kernel_name="python3",
            cwd=str(cwd) if cwd else None,
            progress_bar=False,
        )
    except PapermillExecutionError as err:
        raise CheckFailed(
            f"{notebook.name} failed in cell {err.exec_count}: {err.ename}: {err.evalue}",
            path=str(executed),
        ) from None


def notebook_html(executed: Path) -> bytes:
    """The executed notebook as one self-contained HTML page, code cells hidden."""
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(  # type: ignore[no-untyped-call]
        template_name="lab",
        extra_loaders=[jinja2.DictLoader({"sreagent_offline.html.j2": _OFFLINE_TEMPLATE})],
        template_file="sreagent_offline.html.j2",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    notebook = nbformat.read(str(executed), as_version=4)  # type: ignore[no-untyped-call]
    body, _ = exporter.from_notebook_node(notebook)
    return body.encode()


def html_to_pdf(html: Path, pdf: Path, *, chromium: str | None = None) -> None:
    """Print ``html`` to ``pdf`` with headless Chromium (no network, own profile)."""
    browser = chromium or os.environ.get(CHROMIUM_ENV, DEFAULT_CHROMIUM)
    if shutil.which(browser) is None:
        raise BadInput("Chromium is needed for --pdf and is not installed", path=browser)
    with tempfile.TemporaryDirectory(prefix="sreagent-pdf-") as profile:
        tmp_pdf = Path(profile) / "out.pdf"
        command = [
            browser, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--disable-quic", f"--user-data-dir={profile}/profile",
            "--no-pdf-header-footer", f"--print-to-pdf={tmp_pdf}", html.resolve().as_uri(),
        ]  # fmt: skip
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=PDF_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise CheckFailed(
                f"Chromium did not print the PDF within {PDF_TIMEOUT_S} s", path=str(pdf)
            ) from None
        except subprocess.CalledProcessError as err:
            raise CheckFailed(
                f"Chromium failed printing the PDF: {err.stderr.decode(errors='replace')[-500:]}",
                path=str(pdf),
            ) from None
        if not tmp_pdf.is_file():
            raise CheckFailed("Chromium wrote no PDF", path=str(pdf))
        atomic_write_bytes(pdf, tmp_pdf.read_bytes())


def render_report(
    name: str,
    parameters: dict[str, Any],
    output: Path,
    *,
    pdf: bool = False,
    keep_notebook: Path | None = None,
) -> Path:
    """Execute ``notebooks/<name>.ipynb`` with ``parameters`` and write ``output`` (HTML,
    atomically); with ``pdf`` also ``output`` with the suffix ``.pdf``. Returns the HTML path."""
    notebook = notebooks_dir() / f"{name}.ipynb"
    if not notebook.is_file():
        raise BadInput(f"no report notebook {name!r}", path=str(notebook))
    output = Path(output)
    if output.is_dir():
        raise BadInput("the output is a folder; give a file name ending in .html", path=str(output))
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sreagent-report-") as tmp:
        executed = Path(tmp) / f"{name}.ipynb"
        try:
            execute_notebook(notebook, parameters, executed=executed, cwd=Path.cwd())
        finally:
            if keep_notebook is not None and executed.is_file():
                atomic_write_bytes(keep_notebook, executed.read_bytes())
        atomic_write_bytes(output, notebook_html(executed))
    if pdf:
        html_to_pdf(output, output.with_suffix(".pdf"))
    return output
