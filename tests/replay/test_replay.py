"""The replay engine: identity, divergence reports, what-if decision diffs, bad packages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sreagent.chain import ChainConfig
from sreagent.errors import BadInput, CorruptFile
from sreagent.evidence import EvidencePackage, write_package
from sreagent.replay import Replayer, apply_overrides, parse_override
from sreagent.replay._lab import record_scenario


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scenario 01 (a runaway process) recorded at 5 s resolution."""
    path = tmp_path_factory.mktemp("replay") / "r01"
    record_scenario("01", path, resolution_s=5)
    return path


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sreagent", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


def test_a_recorded_run_replays_identically(recorded: Path) -> None:
    result = Replayer().replay(recorded)
    assert result.identical and result.divergences == ()
    assert [a.artifact_id for a in result.replayed] == [a.artifact_id for a in result.recorded]
    assert len(result.recorded) == 8  # an incident: the whole chain ran


@pytest.mark.slow
def test_identical_in_a_fresh_process_under_another_time_zone_and_locale(recorded: Path) -> None:
    result = run_cli("replay", str(recorded), "--json",
                     env={"TZ": "Pacific/Chatham", "LC_ALL": "C", "LANG": "C"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["identical"] is True


def test_identical_when_batches_arrive_in_another_order(recorded: Path, tmp_path: Path) -> None:
    package = EvidencePackage(recorded)
    rng = np.random.default_rng(5)
    shuffled = {}
    for name in ("batches", "samples", "processes", "events"):
        table = package.table(name)
        shuffled[name] = table.take(pa.array(rng.permutation(table.num_rows))) \
            if table.num_rows else table
    copy = tmp_path / "shuffled"
    write_package(copy, run_id=package.run_id, source="lab", config=package.config,
                  tables=shuffled, artifacts=package.artifacts, activities=package.activities,
                  window=(package.manifest.window_start_ns, package.manifest.window_end_ns))
    assert (copy / "samples.parquet").read_bytes() != (recorded / "samples.parquet").read_bytes()
    assert Replayer().replay(copy).identical


def test_a_changed_threshold_names_the_first_changed_artifact_and_field(recorded: Path) -> None:
    result = Replayer(overrides={"detection.z_open": 7.5}).replay(recorded)
    assert not result.identical
    first = result.first_divergence
    assert first is not None
    assert first.kind == "anomaly_finding" and first.position == 1
    assert first.inputs_identical  # the observation before it matched
    assert any(f.path.startswith("payload.findings") for f in first.fields)
    assert first.recorded_id == result.recorded[1].artifact_id
    assert "anomaly_finding" in first.describe()


def test_collect_all_lists_every_divergence(recorded: Path) -> None:
    fast = Replayer(overrides={"runbooks_per_hypothesis": 0}).replay(recorded)
    every = Replayer(overrides={"runbooks_per_hypothesis": 0}, collect_all=True).replay(recorded)
    assert len(fast.divergences) == 1
    assert len(every.divergences) > 1
    assert every.divergences[0] == fast.divergences[0]
    assert fast.first_divergence is not None and fast.first_divergence.kind == "root_cause_hypothesis"
    assert not every.divergences[1].inputs_identical  # later ones were fed by the first


def test_what_if_turns_a_blocked_action_into_an_allowed_one(recorded: Path) -> None:
    what_if = Replayer(overrides={"posture.target_allowlist": ["process/*"],
                                  "posture.dry_run": False,
                                  "posture.require_approval": False}).replay(recorded)
    assert what_if.decisions is not None
    changes = {(c.action, c.target): (c.before, c.after) for c in what_if.decisions.actions}
    assert changes[("renice_process", "process/1500")] == ("blocked", "allowed")
    assert ("kill_process", "process/1500") not in changes  # destructive stays blocked
    result = next(a for a in what_if.replayed if a.kind.value == "execution_result")
    renice = [r for r in result.payload.results if "renice" in r.command]  # type: ignore[union-attr]
    assert renice and renice[0].outcome == "failed" and "what-if" in renice[0].output  # never run


def test_what_if_threshold_removes_a_false_positive_incident(tmp_path: Path) -> None:
    # A control scenario (only benign bursts) recorded with over-sensitive detection opens an
    # incident; the default thresholds, as a what-if, remove it.
    sensitive = apply_overrides(ChainConfig(), {"detection.z_open": 1.0, "detection.z_close": 0.5,
                                                "detection.min_relative_change": 0.0,
                                                "detection.min_risk_to_open": 0.05,
                                                "detection.recurring_min_bursts": 50})
    path = tmp_path / "control"
    record_scenario("29", path, resolution_s=5, config=sensitive)
    assert Replayer().replay(path).identical
    defaults = ChainConfig().detection.model_dump()
    what_if = Replayer(overrides={f"detection.{k}": v for k, v in defaults.items()}).replay(path)
    assert what_if.decisions is not None
    assert what_if.decisions.incident_before is True
    assert what_if.decisions.incident_after is False
    assert "incident closed (no longer opened)" in what_if.decisions.summary()


def test_a_corrupted_package_fails_before_replay(recorded: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(recorded), str(broken)], check=True)
    victim = broken / "samples.parquet"
    victim.write_bytes(victim.read_bytes()[:-64])
    with pytest.raises(CorruptFile):
        Replayer().replay(broken)
    result = run_cli("replay", str(broken))
    assert result.returncode == 2 and "samples.parquet" in result.stderr


def test_cli_exit_codes(recorded: Path) -> None:
    assert run_cli("replay", str(recorded)).returncode == 0
    bad_key = run_cli("replay", str(recorded), "--set", "detection.nope=1")
    assert bad_key.returncode == 2 and "detection.nope" in bad_key.stderr
    assert run_cli("replay").returncode == 2


def test_overrides_parse_json_values() -> None:
    assert parse_override("posture.dry_run=false") == ("posture.dry_run", False)
    assert parse_override("detection.z_open=7") == ("detection.z_open", 7)
    assert parse_override("llm.model=tiny") == ("llm.model", "tiny")
    with pytest.raises(BadInput):
        parse_override("no-equals")
    with pytest.raises(BadInput) as caught:
        apply_overrides(ChainConfig(), {"detection.z_open": -1})
    assert caught.value.field == "detection.z_open"


def test_a_telemetry_only_package_says_what_to_do(tmp_path: Path) -> None:
    from tests.test_evidence import make_package

    package = make_package(tmp_path / "pkg")
    with pytest.raises(BadInput, match="records no chain run"):
        Replayer().replay(package)
