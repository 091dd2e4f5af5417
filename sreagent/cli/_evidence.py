"""``sreagent evidence``: inspect and verify evidence packages."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from sreagent.cli import app

evidence_app = typer.Typer(help="Inspect and verify evidence packages.", no_args_is_help=True)
app.add_typer(evidence_app, name="evidence")
console = Console(soft_wrap=True)


@evidence_app.command("verify")
def verify(
    paths: list[Path] = typer.Argument(..., help="Evidence package folders."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object per package."),
) -> None:
    """Check manifests, file hashes, row counts, schemas and artifact ids.

    Exit 0 when every package is intact, 2 naming the first broken file otherwise.
    """
    from sreagent.evidence import verify_package

    for path in paths:
        report = verify_package(path)
        if json_output:
            typer.echo(
                json.dumps(
                    {
                        "path": str(path),
                        "ok": True,
                        "run_id": report.manifest.run_id,
                        "format": report.manifest.format,
                        "rows": report.rows,
                    },
                    sort_keys=True,
                )
            )
        else:
            rows = ", ".join(f"{n.removesuffix('.parquet')}={r}" for n, r in report.rows.items())
            console.print(f"[green]ok[/] {path} (run {report.manifest.run_id}): {rows}")


@evidence_app.command("show")
def show(path: Path = typer.Argument(..., help="Evidence package folder.")) -> None:
    """Print a package's manifest and its artifact chain."""
    from sreagent.evidence import EvidencePackage

    package = EvidencePackage(path)
    manifest = package.manifest
    console.print(
        f"run {manifest.run_id} from {manifest.source}, hosts {', '.join(manifest.hosts)}"
    )
    files = Table("file", "rows", "bytes", "sha256")
    for name, entry in manifest.files.items():
        files.add_row(
            name,
            str(entry.rows if entry.rows is not None else ""),
            str(entry.bytes),
            entry.sha256[:16],
        )
    console.print(files)
    chain = Table("#", "kind", "status", "artifact_id", "producer")
    for i, artifact in enumerate(package.artifacts):
        chain.add_row(
            str(i),
            artifact.kind.value,
            artifact.status.value,
            artifact.artifact_id[:16],
            artifact.producer,
        )
    console.print(chain)
