"""The command line: help everywhere, documented exit codes, named errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from sreagent.cli import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, _register, app, exit_code_for, main
from sreagent.errors import BadInput, CheckFailed, CorruptFile, NotLanded
from tests.test_evidence import make_package


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sreagent", *args], capture_output=True,
                          text=True, timeout=120)


def command_paths() -> list[list[str]]:
    _register()
    paths: list[list[str]] = []
    for command in app.registered_commands:
        paths.append([command.name or command.callback.__name__])  # type: ignore[union-attr]
    for group in app.registered_groups:
        sub: typer.Typer = group.typer_instance  # type: ignore[assignment]
        paths.append([group.name])  # type: ignore[list-item]
        paths.extend([group.name, c.name or c.callback.__name__]  # type: ignore[list-item,union-attr]
                     for c in sub.registered_commands)
    return paths


def test_the_issue_commands_exist() -> None:
    names = {p[0] for p in command_paths()}
    assert {"collect", "serve", "replay", "lab", "report", "eval", "evidence", "version",
            "demo"} <= names


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p))
def test_every_command_has_help(path: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage" in out and path[-1] in out


def test_exit_codes_follow_the_documented_mapping() -> None:
    assert exit_code_for(CheckFailed("divergent")) == EXIT_CHECK_FAILED == 1
    assert exit_code_for(BadInput("bad")) == EXIT_BAD_INPUT == 2
    assert exit_code_for(CorruptFile("truncated")) == 2
    assert exit_code_for(NotLanded("later")) == 2


def test_version_json() -> None:
    result = run_cli("version", "--json")
    assert result.returncode == 0
    info = json.loads(result.stdout)
    assert info["batch"] == "sreagent.batch/v1" and info["evidence"] == "sreagent.evidence/v1"


def test_unknown_option_is_bad_input() -> None:
    result = run_cli("version", "--colour")
    assert result.returncode == 2
    assert "--colour" in result.stderr


def test_evidence_verify_exit_codes(tmp_path: Path) -> None:
    package = make_package(tmp_path / "pkg")
    good = run_cli("evidence", "verify", str(package), "--json")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["rows"]["samples.parquet"] == 10
    victim = package / "events.parquet"
    victim.write_bytes(victim.read_bytes()[:20])
    bad = run_cli("evidence", "verify", str(package))
    assert bad.returncode == 2
    assert "corrupt_file" in bad.stderr and "events.parquet" in bad.stderr
    missing = run_cli("evidence", "verify", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "not a directory" in missing.stderr


def test_evidence_show_prints_the_chain(tmp_path: Path) -> None:
    package = make_package(tmp_path / "pkg")
    result = run_cli("evidence", "show", str(package))
    assert result.returncode == 0, result.stderr
    for kind in ("observation_summary", "incident_report"):
        assert kind in result.stdout


@pytest.mark.slow
def test_demo_runs_and_prints_its_outputs(tmp_path: Path) -> None:
    result = run_cli("demo", "--out", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    printed = [line.split(": ", 1)[1] for line in result.stdout.splitlines() if ": " in line
               and line.split(": ", 1)[1].startswith(str(tmp_path))]
    assert printed, result.stdout
    assert all(Path(p).exists() for p in printed)
