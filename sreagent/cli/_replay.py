"""``sreagent replay``: re-run recorded chain runs and prove they are identical."""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import Progress

from sreagent.cli import app
from sreagent.errors import BadInput, CheckFailed

console = Console(soft_wrap=True, stderr=True)


def _replay_one(path: str, overrides: dict[str, Any], collect_all: bool) -> dict[str, Any]:
    from sreagent.errors import SreagentError
    from sreagent.replay import Replayer

    try:
        result = Replayer(overrides=overrides, collect_all=collect_all).replay(path)
    except SreagentError as err:
        return {"package": path, "error": err.to_dict()}
    out = result.to_json()
    out["describe"] = [d.describe() for d in result.divergences]
    out["summary"] = result.decisions.summary() if result.decisions else None
    return out


def _packages(paths: list[Path], all_dir: Path | None) -> list[Path]:
    found = list(paths)
    if all_dir is not None:
        if not all_dir.is_dir():
            raise BadInput("not a directory", path=str(all_dir), field="--all")
        found += sorted(p.parent for p in all_dir.rglob("manifest.json"))
    if not found:
        raise BadInput("name evidence packages to replay, or a folder with --all")
    return found


@app.command("replay")
def replay_command(
    paths: list[Path] = typer.Argument(None, help="Evidence packages of recorded chain runs."),
    all_dir: Path | None = typer.Option(None, "--all", help="Replay every package under DIR."),
    overrides: list[str] = typer.Option(
        [],
        "--set",
        help="What-if: KEY=VALUE of the chain "
        "configuration (e.g. posture.dry_run=false); repeatable.",
    ),
    collect_all: bool = typer.Option(
        False, "--collect-all", help="List every divergence, not only the first."
    ),
    workers: int = typer.Option(0, help="Parallel replays (default: one per core)."),
    update_goldens: bool = typer.Option(
        False,
        "--update-goldens",
        help="Re-record divergent "
        "packages with the current code and print their "
        "decision diffs for review.",
    ),
    json_output: bool = typer.Option(False, "--json", help="One JSON object per package."),
) -> None:
    """Replay packages: exit 0 when all are identical, 1 when any diverged, 2 on bad input.

    With --set the replay is a what-if: it prints the decision diff (incidents, hypothesis
    ranking, actions allowed or blocked, verification) and exits 0 unless replay failed.
    """
    from sreagent.replay import parse_override

    parsed = dict(parse_override(o) for o in overrides)
    if parsed:
        from sreagent.chain import ChainConfig
        from sreagent.replay import apply_overrides

        apply_overrides(ChainConfig(), parsed)  # name a bad key before any work
    packages = _packages(paths or [], all_dir)
    jobs = workers or min(len(packages), os.cpu_count() or 1)
    results: list[dict[str, Any]] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("replaying", total=len(packages))
        if jobs <= 1 or len(packages) == 1:
            for package in packages:
                results.append(_replay_one(str(package), parsed, collect_all))
                progress.advance(task)
        else:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(_replay_one, str(p), parsed, collect_all) for p in packages]
                for future in futures:
                    results.append(future.result())
                    progress.advance(task)
    failed = diverged = 0
    for result in results:
        if json_output:
            typer.echo(
                json.dumps(
                    {k: v for k, v in result.items() if k != "describe"},
                    sort_keys=True,
                    default=str,
                )
            )
        if "error" in result:
            failed += 1
            if not json_output:
                error = result["error"]
                console.print(
                    f"[red]error[/] {result['package']}: ({error['code']}) "
                    f"{error['path'] or ''} {error['field'] or ''} {error['message']}",
                    highlight=False,
                )
            continue
        if parsed:
            if not json_output:
                typer.echo(f"{result['package']}: what-if {parsed}")
                for line in result["summary"] or []:
                    typer.echo(f"  {line}")
            continue
        if result["identical"]:
            if not json_output:
                typer.echo(f"identical {result['package']} ({result['artifacts']} artifacts)")
            continue
        diverged += 1
        if not json_output:
            typer.echo(f"DIVERGED {result['package']}")
            for text in result["describe"]:
                typer.echo("  " + text.replace("\n", "\n  "))
        if update_goldens:
            from sreagent.replay._update import rerecord

            for line in rerecord(Path(result["package"])):
                typer.echo(f"  updated: {line}")
    if failed:
        raise BadInput(f"{failed} of {len(results)} packages could not be replayed")
    if diverged and not update_goldens:
        raise CheckFailed(f"{diverged} of {len(results)} packages diverged")
