"""``sreagent app``: the marimo apps (docs/notebooks.md).

``sreagent app [--evidence-dir DIR]`` and ``sreagent app postmortem PACKAGE`` start the
postmortem app; ``sreagent app ops --url URL`` the operations app against a running controller
(token from ``$SREAGENT_TOKEN``, never on the command line where ``ps`` would show it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

from sreagent.cli import app
from sreagent.errors import BadInput

app_app = typer.Typer(
    name="app",
    help="The marimo apps: the postmortem app (default) and the operations app.",
    invoke_without_command=True,
)
app.add_typer(app_app, name="app")

HostOption = typer.Option("127.0.0.1", "--host", help="Address the app listens on.")
PortOption = typer.Option(2718, "--port", help="Port the app listens on.")
HeadlessOption = typer.Option(False, "--headless", help="Do not open a browser.")


def _marimo(
    notebook: str,
    *,
    host: str,
    port: int,
    headless: bool,
    args: list[str],
    env: dict[str, str] | None = None,
) -> None:
    from sreagent.reports import notebooks_dir

    path = notebooks_dir() / notebook
    command = [
        sys.executable,
        "-m",
        "marimo",
        "run",
        str(path),
        "--host",
        host,
        "--port",
        str(port),
    ]
    if headless:
        command.append("--headless")
    if args:
        command += ["--", *args]
    # marimo serves until interrupted; its exit status is ours.
    raise typer.Exit(subprocess.call(command, env={**os.environ, **(env or {})}))


@app_app.callback()
def app_default(
    ctx: typer.Context,
    evidence_dir: Path | None = typer.Option(
        None,
        "--evidence-dir",
        envvar="SREAGENT_EVIDENCE_DIR",
        help="Pick packages from this folder.",
    ),
    host: str = HostOption,
    port: int = PortOption,
    headless: bool = HeadlessOption,
) -> None:
    """With no subcommand: the postmortem app, picking packages from --evidence-dir."""
    if ctx.invoked_subcommand is not None:
        return
    if evidence_dir is None:
        raise BadInput(
            "give --evidence-dir DIR (or use `sreagent app postmortem PACKAGE`)",
            field="--evidence-dir",
        )
    if not evidence_dir.is_dir():
        raise BadInput("no such evidence directory", path=str(evidence_dir), field="--evidence-dir")
    _marimo(
        "postmortem_app.py",
        host=host,
        port=port,
        headless=headless,
        args=["--evidence-dir", str(evidence_dir.resolve())],
    )


@app_app.command("postmortem")
def postmortem_app(
    package: Path = typer.Argument(..., help="Evidence package folder of a recorded run."),
    evidence_dir: Path | None = typer.Option(
        None, "--evidence-dir", help="Also offer the packages in this folder."
    ),
    host: str = HostOption,
    port: int = PortOption,
    headless: bool = HeadlessOption,
) -> None:
    """The postmortem app on one package: timeline, artifact chain, hypotheses, what-if."""
    from sreagent.reports import load_postmortem

    load_postmortem(package)  # a bad package fails here with exit 2, naming the file
    args = ["--package", str(package.resolve())]
    if evidence_dir is not None:
        args += ["--evidence-dir", str(evidence_dir.resolve())]
    _marimo("postmortem_app.py", host=host, port=port, headless=headless, args=args)


@app_app.command("ops")
def ops_app(
    url: str = typer.Option("http://127.0.0.1:8080", "--url", help="The controller's base URL."),
    host: str = HostOption,
    port: int = PortOption,
    headless: bool = HeadlessOption,
) -> None:
    """The operations app: hosts, open incidents, runs, artifact chains, approvals.
    The token comes from $SREAGENT_TOKEN (read scope; approve scope to decide approvals)."""
    if not url.startswith(("http://", "https://")):
        raise BadInput("the controller URL must start with http:// or https://", field="--url")
    if not os.environ.get("SREAGENT_TOKEN"):
        raise BadInput(
            "set $SREAGENT_TOKEN to a controller token (read and approve scopes)",
            field="SREAGENT_TOKEN",
        )
    _marimo("ops_app.py", host=host, port=port, headless=headless, args=["--url", url])
