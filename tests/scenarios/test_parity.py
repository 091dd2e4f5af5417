"""The lab emits what the real collector emits: names, label keys, label values, entities.

Two comparisons: against ``sreagent.telemetry.names`` (the one list of names), and against a
live ``sreagent collect --once --json`` on this machine, so the lab and the collector cannot
drift apart.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

from sreagent.scenarios import ScenarioDefinition, builtin_profile_names, generate
from sreagent.telemetry.names import METRICS, METRICS_BY_NAME

REPO = Path(__file__).resolve().parents[2]

NOT_SYNTHESISED = {
    "scrape_up": "scrape targets are whatever a user configures; the lab has none",
    "scrape_duration_seconds": "as scrape_up",
    "collector_source_errors_total": "only reported for a source that raised",
}
"""Names in names.py the lab does not emit, and why."""

CONDITIONAL_LIVE = {
    "cgroup_cpu_limit_cores": "only for cgroups with a CPU quota",
    "cgroup_cpu_throttled_ratio": "only for cgroups with a CPU quota, from the second sample",
    "cgroup_memory_limit_bytes": "only for cgroups with a memory limit",
    "cgroup_memory_used_ratio": "only for cgroups with a memory limit",
    "collector_ack_mismatches_total": "the daemon's transport; --once has none",
    "collector_batches_delivered_total": "the daemon's transport; --once has none",
    "collector_dead_letters_total": "the daemon's transport; --once has none",
    "collector_transport_errors_total": "the daemon's transport; --once has none",
    "collector_interval_seconds": "the daemon's self-protection; --once has none",
    "collector_sources_shed": "the daemon's self-protection; --once has none",
    "collector_spool_bytes": "the daemon's spool; --once has none",
    "collector_spool_corrupt_total": "the daemon's spool; --once has none",
    "collector_spool_dropped_total": "the daemon's spool; --once has none",
    "collector_spool_records": "the daemon's spool; --once has none",
    "disk_await_seconds": "an average over IOs completed in the interval: absent when none did",
    "disk_request_latency_seconds": "eBPF: only when block requests completed in the interval",
    "disk_io_errors_total": "only where the device exposes an ioerr_cnt",
    "packet_drops_per_second": "eBPF: only for drop reasons seen in the interval",
    "process_pss_bytes": "smaps_rollup is read every few intervals, not on the first",
    "tcp_retransmit_ratio": "a rate: needs a previous sample and sent segments",
    "tcp_sockets": "sock_diag states are counted every few intervals, not on the first",
}
"""Metrics the lab emits for entity kinds this machine has, which a one-shot collect may
legitimately lack (each with the condition)."""

CLOSED_LABELS = {"mode", "resource", "kind", "direction", "state", "quantile"}
"""Labels whose values form a fixed vocabulary (not pids, ports, links or devices)."""


def _control(profile: str) -> ScenarioDefinition:
    return ScenarioDefinition.model_validate({
        "id": "90_parity", "title": "parity", "profile": profile, "seed": 1,
        "start": "2026-03-02T14:00:00Z", "duration_s": 240,
        "ground_truth": {"incident": False},
    })


@cache
def _lab() -> tuple[dict[str, set[tuple[str, tuple[str, ...]]]], dict[tuple[str, str], set[str]]]:
    shapes: dict[str, set[tuple[str, tuple[str, ...]]]] = defaultdict(set)
    values: dict[tuple[str, str], set[str]] = defaultdict(set)
    for profile in builtin_profile_names():
        for metric, entity, labels in generate(_control(profile)).series.keys:
            shapes[metric].add((entity.split("/", 1)[0], tuple(k for k, _ in labels)))
            for key, value in labels:
                values[(metric, key)].add(value)
    return shapes, values


def test_lab_emits_every_name_with_its_declared_labels_and_entity_kind() -> None:
    shapes, _ = _lab()
    assert set(shapes) == set(METRICS_BY_NAME) - set(NOT_SYNTHESISED)
    for metric, seen in shapes.items():
        spec = METRICS_BY_NAME[metric]
        assert seen == {(spec.entity, tuple(sorted(spec.labels)))}, metric
    assert set(NOT_SYNTHESISED) <= {m.name for m in METRICS}


def _live_batch() -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "sreagent", "collect", "--once", "--json"],
        capture_output=True, text=True, timeout=180, cwd=REPO,
    )
    if done.returncode == 2 and "not_landed" in done.stderr:
        pytest.xfail("`sreagent collect` is not built yet: the live comparison is pending")
    assert done.returncode == 0, done.stderr
    batch: dict[str, object] = json.loads(done.stdout)
    return batch


@pytest.mark.slow  # runs the real collector
def test_lab_matches_a_live_collect_on_this_machine() -> None:
    live = _live_batch()
    samples = live["samples"]
    assert isinstance(samples, list) and samples
    shapes, values = _lab()
    live_shapes: dict[str, set[tuple[str, tuple[str, ...]]]] = defaultdict(set)
    for s in samples:
        live_shapes[s["metric"]].add((s["entity"].split("/", 1)[0], tuple(sorted(s["labels"]))))
        for key, value in s["labels"].items():
            if key in CLOSED_LABELS:
                assert value in values[(s["metric"], key)], (
                    f"live {s['metric']}{{{key}={value!r}}} is a label value the lab never emits")
    # Everything the live collector emits, the lab emits in the same shape.
    missing = sorted(set(live_shapes) - set(shapes) - set(NOT_SYNTHESISED))
    assert not missing, f"the live collector emits {missing}, the lab does not"
    for metric, seen in live_shapes.items():
        if metric in shapes:
            assert seen <= shapes[metric], (metric, seen, shapes[metric])
    # And what the lab emits for the kinds of entity this machine has, the live collector
    # emits too, unless it is one of the documented conditional metrics.
    kinds = {kind for seen in live_shapes.values() for kind, _ in seen}
    lab_only = sorted(m for m, seen in shapes.items()
                      if m not in live_shapes and {k for k, _ in seen} <= kinds)
    unexplained = [m for m in lab_only if m not in CONDITIONAL_LIVE]
    assert not unexplained, f"the lab emits {unexplained}; a live collect does not"
    # Capability report: the lab's source names are the collector's.
    lab_sources = {c.source for c in generate(_control("web-vm")).frames[0].header.capabilities}
    live_sources = {c["source"] for c in live["capabilities"]}  # type: ignore[union-attr]
    assert lab_sources <= live_sources | {"ebpf"}, lab_sources - live_sources
