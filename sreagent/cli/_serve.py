"""``sreagent serve``: the controller service on uvicorn (docs/controller.md)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

from sreagent.cli import app
from sreagent.errors import BadInput


@app.command("serve")
def serve_command(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="YAML or TOML config file (docs/controller.md)."
    ),
    host: str | None = typer.Option(None, help="Listen address (config key host)."),
    port: int | None = typer.Option(None, help="Listen port (config key port)."),
    data_dir: Path | None = typer.Option(None, help="Journal, run store and packages."),
    tls_cert: Path | None = typer.Option(None, help="TLS certificate (PEM); needs --tls-key."),
    tls_key: Path | None = typer.Option(None, help="TLS private key (PEM)."),
    insecure_dev: bool = typer.Option(
        False,
        "--insecure-dev",
        help="Serve WITHOUT authentication (logs a warning). Development only.",
    ),
    hash_token: bool = typer.Option(
        False,
        "--hash-token",
        help="Read a token on stdin, print the sha256 to put in auth.tokens, and exit.",
    ),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
) -> None:
    """Run the controller: ingest, hot state, incidents, workflow runs and the HTTP API."""
    from sreagent.controller.settings import hash_token as _hash
    from sreagent.controller.settings import load_settings

    if hash_token:
        token = sys.stdin.read().strip()
        if not token:
            raise BadInput("no token on standard input")
        typer.echo(_hash(token))
        return
    overrides: dict[str, object] = {}
    for key, value in (("host", host), ("port", port), ("data_dir", data_dir)):
        if value is not None:
            overrides[key] = value
    if insecure_dev:
        overrides["insecure_dev"] = True
    if tls_cert or tls_key:
        overrides["tls"] = {"certfile": tls_cert, "keyfile": tls_key}
    settings = load_settings(config, **overrides)
    if (settings.tls.certfile is None) != (settings.tls.keyfile is None):
        raise BadInput("TLS needs both a certificate and a key", field="tls")
    if not settings.insecure_dev and not settings.auth.tokens:
        raise BadInput(
            "no bearer tokens configured (auth.tokens); add one (see `sreagent serve "
            "--hash-token`) or start with --insecure-dev for development",
            field="auth.tokens",
        )
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import uvicorn

    from sreagent.api import create_app
    from sreagent.controller.service import tune_gc_for_serving

    app = create_app(settings)
    tune_gc_for_serving()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.tls.certfile) if settings.tls.certfile else None,
        ssl_keyfile=str(settings.tls.keyfile) if settings.tls.keyfile else None,
        log_level=log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=10,
    )
