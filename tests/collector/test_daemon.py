"""The daemon loop, identity, self-metrics and self-protection, with real sources and a real
ingest server process."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from sreagent.collector import Sampler
from sreagent.collector.config import CollectorSettings, load_settings
from sreagent.collector.daemon import (
    CollectorDaemon,
    apply_shed,
    collect_once,
    load_collector_id,
    make_sampler,
    new_producer_epoch,
    sanitise_id,
)
from sreagent.collector.selfprotect import Governor, SelfMeter, SelfUsage, shed_sequence
from sreagent.collector.transport import SpooledBatch
from sreagent.errors import BadInput
from sreagent.telemetry import decode_batch
from sreagent.telemetry.names import METRICS_BY_NAME
from tests.collector.stubs import stub_server, wait_until

SMALL_SOURCES = ["cpu", "memory", "psi", "processes", "cgroup"]


def settings_for(tmp_path: Path, **overrides: Any) -> CollectorSettings:
    base: dict[str, Any] = {
        "state_dir": tmp_path / "state",
        "interval_seconds": 0.05,
        "sources": {"enabled": SMALL_SOURCES, "disabled": ["kmsg", "ebpf"]},
        "transport": {"backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.1},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return load_settings(None, base)


def self_values(batch: Any) -> dict[str, float]:
    return {s.metric: s.value for s in batch.samples if s.entity == "collector"}


# --------------------------------------------------------------------------- identity


def test_collector_id_is_generated_once_and_kept(tmp_path: Path) -> None:
    first, persisted = load_collector_id(tmp_path, None, "node a.example")
    again, _ = load_collector_id(tmp_path, None, "other-name")
    assert persisted and first == again
    assert first.startswith("node-a.example-")
    assert (tmp_path / "collector_id").read_text().strip() == first
    assert load_collector_id(tmp_path, "configured-1", "x") == ("configured-1", True)
    with pytest.raises(BadInput, match="collector_id"):
        load_collector_id(tmp_path, "bad id with spaces", "x")


def test_a_read_only_state_dir_gives_an_id_for_this_run_only(tmp_path: Path) -> None:
    # Nothing can be created under /proc, not even by root.
    collector_id, persisted = load_collector_id(Path("/proc/sreagent-no-such-dir"), None, "h")
    assert not persisted and collector_id.startswith("h-")


def test_epochs_differ_per_start_and_sort_by_start_time() -> None:
    assert new_producer_epoch(lambda: 10) != new_producer_epoch(lambda: 10)
    assert new_producer_epoch(lambda: 9) < new_producer_epoch(lambda: 10)
    assert sanitise_id("///") == "host"


# --------------------------------------------------------------------------- the loop


def test_step_spools_a_self_contained_batch_with_self_metrics(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    daemon = CollectorDaemon(settings, make_sampler(settings))
    try:
        batches = [daemon.step()[0].batch() for _ in range(3)]
        assert [b.seq for b in batches] == [1, 2, 3]
        assert len({b.producer_epoch for b in batches}) == 1
        for batch in batches:
            values = self_values(batch)
            for name in (
                "collector_cpu_seconds_per_second",
                "collector_rss_bytes",
                "collector_spool_bytes",
                "collector_spool_dropped_total",
                "collector_spool_corrupt_total",
                "collector_mode",
                "collector_interval_seconds",
            ):
                assert name in values, name
            assert values["collector_rss_bytes"] > 10 * 2**20
            assert {cap.source for cap in batch.capabilities} >= set(SMALL_SOURCES)
            assert all(s.metric in METRICS_BY_NAME for s in batch.samples), "names from names.py"
        # spool bytes reported in batch 3 include batches 1 and 2
        assert self_values(batches[2])["collector_spool_bytes"] > 0
        spool = daemon.spool
        for expected in batches:
            record = spool.peek()
            assert record is not None
            spooled = SpooledBatch.from_bytes(record.payload)
            frame = decode_batch(spooled.body, spooled.content_type)
            assert spooled.key.seq == frame.header.seq == expected.seq
            assert frame.header.collector_id == expected.collector_id
            assert frame.samples.num_rows == len(expected.samples)
            spool.commit(record)
    finally:
        daemon.close()


def test_drops_are_reported_in_the_next_batch_exactly(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, spool={"max_bytes": 48 * 1024, "segment_bytes": 8 * 1024})
    daemon = CollectorDaemon(settings, make_sampler(settings))
    try:
        seen = []
        for _ in range(40):
            before = daemon.spool.stats().dropped_total
            batch = daemon.step()[0].batch()
            seen.append(self_values(batch)["collector_spool_dropped_total"])
            assert seen[-1] == before, "a batch reports every drop made before it was built"
        final = daemon.spool.stats()
        assert final.dropped_total > 0
        assert final.records + final.dropped_total == 40
        assert seen == sorted(seen)
    finally:
        daemon.close()


@pytest.mark.slow
def test_the_daemon_delivers_every_batch_in_order_and_a_restart_keeps_the_id(
    tmp_path: Path,
) -> None:
    with stub_server(tmp_path / "server.jsonl") as server:
        settings = settings_for(tmp_path, transport={"endpoints": [server.url]})
        epochs = []
        for run_batches in (6, 3):
            daemon = CollectorDaemon(settings, make_sampler(settings))
            epochs.append(daemon.identity.producer_epoch)
            daemon.run(threading.Event(), max_batches=run_batches)
            assert daemon.spool.stats().records == 0, "shutdown sent what was spooled"
        requests = server.requests()
        assert {r["collector_id"] for r in requests} == {daemon.identity.collector_id}
        by_epoch = {e: [r["seq"] for r in requests if r["producer_epoch"] == e] for e in epochs}
        assert by_epoch == {epochs[0]: [1, 2, 3, 4, 5, 6], epochs[1]: [1, 2, 3]}
        assert all(r["outcome"] == "accepted" for r in requests)
        assert "collector_spool_bytes" in requests[0]["metrics"]


@pytest.mark.slow
def test_the_daemon_keeps_sampling_while_the_controller_is_down(tmp_path: Path) -> None:
    from tests.collector.stubs import free_port, start_stub

    port = free_port()
    settings = settings_for(tmp_path, transport={"endpoints": [f"http://127.0.0.1:{port}"]})
    daemon = CollectorDaemon(settings, make_sampler(settings))
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,))
    thread.start()
    try:
        assert wait_until(lambda: daemon.seq >= 10)
        assert daemon.sender is not None and daemon.sender.transport.counters.errors_total > 0
        server = start_stub(tmp_path / "server.jsonl", port=port)
        try:
            assert wait_until(lambda: len(server.accepted_seqs()) >= 12)
            stop.set()
            thread.join(timeout=20)
            accepted = server.accepted_seqs()
            assert accepted == list(range(1, len(accepted) + 1)), "nothing lost, in order"
            assert len(accepted) == daemon.seq
        finally:
            server.stop()
    finally:
        stop.set()
        thread.join(timeout=20)


def test_collect_once_needs_no_controller_and_reads_rates(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with make_sampler(settings, persist_state=False) as sampler:
        batch = collect_once(settings, sampler, window_s=0.2)
    assert batch.seq == 1
    metrics = {s.metric for s in batch.samples}
    assert "cpu_utilisation_ratio" in metrics, "the primed reading yields rates"
    assert "memory_used_bytes" in metrics
    assert batch.processes, "--once reads every source, the slow process scan too"
    assert not (tmp_path / "state" / "spool").exists()


# --------------------------------------------------------------------------- self-protection


def usage(cores: float, rss: int = 50 * 2**20) -> SelfUsage:
    return SelfUsage(cpu_cores=cores, cpu_seconds=cores, wall_seconds=1.0, rss_bytes=rss)


def governor(**kwargs: Any) -> Governor:
    defaults: dict[str, Any] = dict(
        base_interval_s=1.0,
        max_interval_s=10.0,
        cpu_budget_cores=0.05,
        rss_budget_bytes=100 * 2**20,
        optional_sources=["processes", "cgroup", "ebpf", "custom"],
        shed_order=["ebpf", "processes", "cgroup"],
        recover_after=2,
        cpu_window_s=1.0,  # judge each interval alone unless a test says otherwise
    )
    return Governor(**{**defaults, **kwargs})


def test_shed_sequence_follows_the_order_then_names() -> None:
    assert shed_sequence(["b", "x", "a", "cgroup"], ["cgroup", "a"]) == ["cgroup", "a", "b", "x"]


def test_over_cpu_budget_stretches_the_interval_and_sheds_in_order_then_recovers() -> None:
    gov = governor()
    first = gov.decide(usage(0.07), fill_ratio=0.0)
    assert first.mode == "pressure" and first.shed == ("ebpf",) and first.interval_s == 1.5
    second = gov.decide(usage(0.08), fill_ratio=0.0)
    assert second.shed == ("ebpf", "processes") and second.interval_s == 2.25
    assert "CPU" in second.reasons[0]
    calm = [gov.decide(usage(0.01), fill_ratio=0.0) for _ in range(4)]
    assert [d.mode for d in calm] == ["normal"] * 4
    assert calm[1].shed == ("ebpf",) and calm[3].shed == ()
    assert calm[3].interval_s == 1.0


def test_a_periodic_spike_is_judged_by_its_average_over_the_window() -> None:
    gov = governor(cpu_window_s=30.0)
    # the process scan: 0.06 cores one interval in fifteen, 0.01 otherwise (~0.013 average)
    spiky = [gov.decide(usage(0.06 if n % 15 == 14 else 0.01), 0.0) for n in range(60)]
    assert {d.mode for d in spiky} == {"normal"} and {d.shed for d in spiky} == {()}
    sustained = [gov.decide(usage(0.06), 0.0) for _ in range(40)]
    assert sustained[-1].mode == "pressure" and sustained[-1].shed


def test_interval_stretch_is_capped() -> None:
    gov = governor()
    decisions = [gov.decide(usage(0.09), fill_ratio=0.0) for _ in range(20)]
    assert decisions[-1].interval_s == 10.0
    assert decisions[-1].shed == ("ebpf", "processes", "cgroup", "custom")


def test_spool_fill_sets_the_mode_and_critical_sheds_everything() -> None:
    gov = governor()
    assert gov.decide(usage(0.01), fill_ratio=0.49).mode == "normal"
    pressure = gov.decide(usage(0.01), fill_ratio=0.5)
    assert (pressure.mode, pressure.interval_s, pressure.shed) == ("pressure", 2.0, ())
    critical = gov.decide(usage(0.01), fill_ratio=0.85)
    assert critical.mode == "critical" and critical.interval_s == 4.0
    assert critical.shed == ("ebpf", "processes", "cgroup", "custom")
    back = [gov.decide(usage(0.01), fill_ratio=0.1) for _ in range(8)]
    assert back[-1].mode == "normal" and back[-1].shed == () and back[-1].interval_s == 1.0


def test_twice_the_cpu_budget_is_critical_and_memory_over_budget_sheds_nothing() -> None:
    assert governor().decide(usage(0.1), 0.0).mode == "critical"
    gov = governor()
    for _ in range(3):
        fat = gov.decide(usage(0.01, rss=300 * 2**20), 0.0)
        assert fat.mode == "pressure" and fat.shed == () and fat.interval_s == 1.0
        assert "RSS" in fat.reasons[0]


def test_shedding_reaches_the_real_sampler_and_its_capability_report(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with make_sampler(settings) as sampler:
        assert isinstance(sampler, Sampler)
        apply_shed(sampler, ["processes"])
        modes = {c.source: (c.mode, c.reason) for c in sampler.capabilities()}
        assert modes["processes"][0] == "off" and "shed" in modes["processes"][1]
        assert not sampler.sample(time.time_ns(), full=True).processes
        apply_shed(sampler, [])
        assert sampler.shed_sources == []
        assert sampler.sample(time.time_ns(), full=True).processes


def test_self_meter_agrees_with_psutil_on_cpu_and_rss() -> None:
    meter = SelfMeter()
    me = psutil.Process()
    before = me.cpu_times()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # burn CPU in this process
        sum(range(1000))
    measured = meter.measure()
    after = me.cpu_times()
    oracle = (after.user + after.system) - (before.user + before.system)
    assert measured.cpu_seconds == pytest.approx(oracle, abs=0.03)
    assert measured.cpu_cores > 0.1
    assert measured.rss_bytes == pytest.approx(me.memory_info().rss, rel=0.1)
