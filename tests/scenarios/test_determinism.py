"""Same seed, same bytes: across runs, processes and time zones; different seeds differ."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sreagent.scenarios import ScenarioDefinition, generate

REPO = Path(__file__).resolve().parents[2]

# Short, but with everything that could break determinism: bursts, a restart (new pid, reset
# counters), a leak ending in an OOM kill with kmsg and restart events, and 5 s resolution.
SMALL = {
    "id": "90_determinism_probe", "title": "determinism probe", "profile": "k8s-node",
    "seed": 7, "start": "2026-03-02T23:30:00+01:00", "duration_s": 900, "resolution_s": 5,
    "baseline": {
        "bursts": [{"kind": "cron", "every_s": 120, "offset_s": 10, "duration_s": 20},
                   {"kind": "backup", "every_s": 300, "offset_s": 60, "duration_s": 40}],
        "restarts": [{"at_s": 200, "target": "cgroup/kubepods/burstable/pod-worker-5f7c1"}],
    },
    "faults": [{"class": "memory_leak_oom", "target": "process/2501", "onset_s": 300,
                "ramp_s": 300, "params": {"restart_after_s": 10}}],
    "ground_truth": {"incident": True, "causes": [
        {"entity": "process/2501", "fault_class": "memory_leak_oom",
         "remediation": "restart_leaking_process",
         "cited_metrics": ["process_rss_bytes", "cgroup_oom_kills_total"]}]},
}


def _write_definition(root: Path, seed: int) -> Path:
    folder = root / "scenarios" / SMALL["id"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scenario.yaml").write_text(yaml.safe_dump({**SMALL, "seed": seed}))
    return root / "scenarios"


def _tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _generate_in_subprocess(scenarios: Path, out: Path, tz: str) -> None:
    env = {**os.environ, "TZ": tz, "PYTHONHASHSEED": "random"}
    subprocess.run(
        [sys.executable, "-m", "sreagent", "lab", "generate", SMALL["id"], "-o", str(out),
         "--scenarios", str(scenarios), "--wire"],
        check=True, env=env, cwd=REPO, capture_output=True, timeout=300,
    )


@pytest.mark.slow  # two real `sreagent lab generate` processes
def test_byte_identical_across_processes_and_time_zones(tmp_path: Path) -> None:
    scenarios = _write_definition(tmp_path, 7)
    _generate_in_subprocess(scenarios, tmp_path / "a", "UTC")
    _generate_in_subprocess(scenarios, tmp_path / "b", "Pacific/Chatham")
    a, b = _tree_hashes(tmp_path / "a"), _tree_hashes(tmp_path / "b")
    assert len(a) > 180  # journal, package, truth and one wire file per batch
    assert a == b
    # The run contains what makes determinism hard: events, a restart, an OOM kill.
    truth = (tmp_path / "a" / "truth.json").read_text()
    assert '"visible_ns":' in truth and '"memory_leak_oom"' in truth


def test_same_seed_same_frames_different_seed_different_frames() -> None:
    definition = ScenarioDefinition.model_validate(SMALL)
    first, second = generate(definition), generate(definition)
    assert first.samples.equals(second.samples)
    assert [f.header for f in first.frames] == [f.header for f in second.frames]
    other = generate(ScenarioDefinition.model_validate({**SMALL, "seed": 8}))
    assert not first.samples.column("value").equals(other.samples.column("value"))
    assert first.frames[0].header.producer_epoch != other.frames[0].header.producer_epoch
    # Same shape and truth: only the noise differs.
    assert first.samples.num_rows == other.samples.num_rows
    assert first.truth.causes[0].onset_ns == other.truth.causes[0].onset_ns
