"""Golden replays: every package under replays/ and every scenario replays identically."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sreagent.replay import Replayer
from tests.conftest import REPO

GOLDENS = sorted(p.parent for p in (REPO / "replays").glob("*/manifest.json"))


def test_there_are_golden_replays() -> None:
    assert len(GOLDENS) >= 5, "replays/ should hold the golden packages (see replays/README.md)"


@pytest.mark.parametrize("package", GOLDENS, ids=lambda p: p.name)
def test_golden_replays_identically(package: Path) -> None:
    result = Replayer().replay(package)
    assert result.identical, (
        f"{package.name} diverged:\n{result.first_divergence.describe()}\n"  # type: ignore[union-attr]
        "If the role logic changed on purpose, run `sreagent replay --all replays "
        "--update-goldens`, review the printed decision diffs, and commit them."
    )


@pytest.mark.slow
@pytest.mark.timeout(1900)  # the two subprocesses below may take up to 900 s each
def test_every_scenario_records_and_replays_identically(tmp_path: Path) -> None:
    recorded = subprocess.run(
        [sys.executable, "-m", "sreagent", "lab", "record", "--all", "-o", str(tmp_path),
         "--resolution", "5"], capture_output=True, text=True, timeout=900)
    assert recorded.returncode == 0, recorded.stderr
    scenarios = sorted(p.name for p in (REPO / "fixtures" / "scenarios").iterdir()
                       if (p / "scenario.yaml").exists())
    assert sorted(p.name for p in tmp_path.iterdir()) == scenarios
    replayed = subprocess.run(
        [sys.executable, "-m", "sreagent", "replay", "--all", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=900)
    assert replayed.returncode == 0, replayed.stdout[-3000:] + replayed.stderr[-3000:]
    results = [json.loads(line) for line in replayed.stdout.splitlines()]
    assert len(results) == len(scenarios) and all(r["identical"] for r in results)
