"""``sreagent collect``: the node collector (docs/cli.md, docs/collector.md)."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import typer

from sreagent.cli import app

collect_app = typer.Typer(
    name="collect",
    help="The node collector: run as a daemon, print one batch, or report capabilities.",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(collect_app, name="collect")

ConfigOption = typer.Option(
    None,
    "--config",
    "-c",
    envvar="SREAGENT_COLLECTOR_CONFIG",
    help="TOML config file (default /etc/sreagent/collector.toml when it exists).",
    dir_okay=False,
)


def _settings(config: Path | None, overrides: dict[str, Any]) -> Any:
    from sreagent.collector.config import DEFAULT_CONFIG_PATH, load_settings

    if config is None and DEFAULT_CONFIG_PATH.exists():
        config = DEFAULT_CONFIG_PATH
    return load_settings(config, overrides)


@collect_app.callback()
def collect(
    ctx: typer.Context,
    config: Path | None = ConfigOption,
    controller: list[str] | None = typer.Option(
        None, "--controller", help="Controller base URL; repeat for failover (overrides config)."
    ),
    interval: float | None = typer.Option(None, "--interval", help="Sampling interval, seconds."),
    state_dir: Path | None = typer.Option(
        None, "--state-dir", help="State directory (collector_id, spool, dead letters)."
    ),
    token_file: Path | None = typer.Option(
        None, "--token-file", help="File holding the ingest bearer token."
    ),
    once: bool = typer.Option(
        False, "--once", help="Sample once and print the batch; no spool, no controller."
    ),
    as_json: bool = typer.Option(False, "--json", help="With --once: print the batch as JSON."),
    window: float = typer.Option(
        1.0, "--window", min=0.0, help="With --once: seconds between priming and the reading."
    ),
    log_level: str | None = typer.Option(None, "--log-level", help="debug, info, warning, error."),
) -> None:
    """Run the collector daemon (default), or one sample with --once."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"config": config, "state_dir": state_dir}
        return
    overrides: dict[str, Any] = {
        "interval_seconds": interval,
        "state_dir": state_dir,
        "log_level": log_level,
        "transport": {"endpoints": controller or None, "token_file": token_file},
    }
    settings = _settings(config, overrides)
    _configure_logging(settings.log_level)
    if once:
        _once(settings, as_json, window)
        return
    if as_json:
        from sreagent.errors import BadInput

        raise BadInput("--json goes with --once (the daemon logs to standard error)")
    _daemon(settings)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _once(settings: Any, as_json: bool, window: float) -> None:
    from sreagent.collector.daemon import collect_once, make_sampler

    with make_sampler(settings, persist_state=False) as sampler:
        batch = collect_once(settings, sampler, window_s=window)
    if as_json:
        sys.stdout.write(batch.model_dump_json() + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"batch {batch.batch_id}")
    for column in ("source", "mode", "reason"):
        table.add_column(column)
    for cap in batch.capabilities:
        table.add_row(cap.source, cap.mode, cap.reason)
    console = Console()
    console.print(table)
    console.print(
        f"{len(batch.samples)} samples, {len(batch.processes)} processes, "
        f"{len(batch.events)} events"
    )


def _daemon(settings: Any) -> None:
    from sreagent.collector.daemon import CollectorDaemon, ensure_state_dir, make_sampler

    ensure_state_dir(settings.state_dir)  # before the sources start: fail fast and clearly
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        logging.getLogger("sreagent.collector").info(
            "%s: finishing the interval and sending what is spooled", signal.Signals(signum).name
        )
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    daemon = CollectorDaemon(settings, make_sampler(settings))
    daemon.run(stop)


@collect_app.command("capabilities")
def capabilities(
    ctx: typer.Context,
    config: Path | None = ConfigOption,
    state_dir: Path | None = typer.Option(None, "--state-dir", help="State directory."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """What each source can read on this host (kernel, fallback or off, and why), the spool."""
    parent = ctx.obj or {}
    settings = _settings(
        config or parent.get("config"), {"state_dir": state_dir or parent.get("state_dir")}
    )
    _configure_logging("warning")
    from sreagent.collector.daemon import make_sampler
    from sreagent.collector.spool import CURSOR_FILE

    with make_sampler(settings, persist_state=False) as sampler:
        caps = sampler.capabilities()
        shed_order = sampler.shed_order()
    spool: dict[str, Any] | None = None
    cursor = settings.spool_dir / CURSOR_FILE
    if settings.spool_dir.is_dir():
        segments = sorted(settings.spool_dir.glob("*.seg"))
        spool = {
            "dir": str(settings.spool_dir),
            "segments": len(segments),
            "bytes": sum(p.stat().st_size for p in segments),
            "max_bytes": settings.spool.max_bytes,
            "cursor": json.loads(cursor.read_text()) if cursor.exists() else None,
        }
    report = {
        "sources": [cap.model_dump(mode="json") for cap in caps],
        "shed_order": shed_order,
        "spool": spool,
        "endpoints": settings.transport.endpoints,
        "state_dir": str(settings.state_dir),
    }
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="collector sources")
    for column in ("source", "mode", "reason"):
        table.add_column(column)
    for cap in caps:
        table.add_row(cap.source, cap.mode, cap.reason)
    console = Console()
    console.print(table)
    console.print(f"shed order under CPU pressure: {', '.join(shed_order) or '(none)'}")
    console.print(f"controller endpoints: {', '.join(settings.transport.endpoints) or '(none)'}")
    if spool:
        console.print(
            f"spool {spool['dir']}: {spool['bytes']} of {spool['max_bytes']} bytes "
            f"in {spool['segments']} segments"
        )
