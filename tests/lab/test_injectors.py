"""Each live injector makes its fault for real (seen through kernel files and tools, not
through sreagent), and leaves nothing behind. Faults last a few seconds and are capped to
what a shared 2-core machine can spare."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from sreagent.lab.live import run_injection
from sreagent.lab.live._cgroup_throttle import CgroupThrottle
from sreagent.lab.live._io_saturation import IoSaturation
from sreagent.lab.live._memory_oom import MemoryOom
from sreagent.lab.live._net_loss import NetLoss
from tests.conftest import require_binary, requires_root

from . import observe as ob

pytestmark = [requires_root, pytest.mark.slow, pytest.mark.root]

CPU = ob.CGROUP / "cpu"
CPUACCT = ob.CGROUP / "cpuacct"
MEMORY = ob.CGROUP / "memory"


def test_cpu_hog_burns_cpu_in_one_process(nothing_left: list[str]) -> None:
    with run_injection("cpu-hog", 8) as inj:
        nothing_left.append(inj.tag)
        pid = int(inj.injected_entity.removeprefix("process/"))
        threads = os.cpu_count() or 1
        # Measure once every spinning thread exists (interpreter start-up is slow under load).
        assert ob.poll(lambda: len(os.listdir(f"/proc/{pid}/task")) > threads, 5.0)
        busy0, idle0 = ob.host_busy_idle()
        cpu0, demand0 = ob.process_cpu_seconds(pid), ob.demanded_cpu_seconds(pid)
        time.sleep(2.0)
        used = ob.process_cpu_seconds(pid) - cpu0
        demanded = ob.demanded_cpu_seconds(pid) - demand0
        busy1, idle1 = ob.host_busy_idle()
        assert inj.plan.fault_class == "cpu_saturation"
    # Every thread is always running or runnable (on other engineers' busy machines the
    # waiting part is large, so the on-CPU share alone would not be a fair test).
    assert demanded > 0.8 * threads * 2.0, f"the hog asked for only {demanded:.2f} CPU-s in 2 s"
    assert used > 0.3, f"the hog used only {used:.2f} CPU-s in 2 s"
    assert (busy1 - busy0) / (busy1 - busy0 + idle1 - idle0) > 0.5
    assert inj.cleanup is not None and inj.cleanup.ok, inj.cleanup
    assert not Path(f"/proc/{pid}").exists()


def test_cgroup_throttle_is_throttled_at_its_quota(nothing_left: list[str]) -> None:
    with run_injection("cgroup-throttle", 3, options={"quota_cores": 0.2}) as inj:
        nothing_left.append(inj.tag)
        assert isinstance(inj.injector, CgroupThrottle)
        rel = inj.injector.cgroup_path()
        assert inj.injected_entity == f"cgroup/{rel}"
        stat = CPU / rel / "cpu.stat"
        assert (CPU / rel / "cpu.cfs_quota_us").read_text().strip() == "20000"
        first = ob.flat_keyed(stat)
        usage0 = int((CPUACCT / rel / "cpuacct.usage").read_text())
        start = time.monotonic()
        throttled = ob.poll(
            lambda: ob.flat_keyed(stat)["nr_throttled"] - first["nr_throttled"] >= 5, 3.0
        )
        time.sleep(max(0.0, 1.0 - (time.monotonic() - start)))
        usage = (int((CPUACCT / rel / "cpuacct.usage").read_text()) - usage0) / 1e9
        elapsed = time.monotonic() - start
        last = ob.flat_keyed(stat)
    assert throttled, f"nr_throttled did not grow: {first} -> {last}"
    assert last["throttled_time"] > first["throttled_time"]
    # The quota holds: at most 0.2 CPU (one extra period of slack for the edges).
    assert usage <= 0.2 * elapsed + 0.1, (
        f"{usage:.2f} CPU-s in {elapsed:.2f} s under a 0.2-core quota"
    )
    assert inj.cleanup is not None and inj.cleanup.ok, inj.cleanup
    assert not (CPU / rel).exists() and not (CPUACCT / rel).exists()


def test_memory_oom_is_killed_by_the_memcg_oom_killer(nothing_left: list[str]) -> None:
    kmsg = ob.Kmsg()
    ooms0 = ob.vmstat("oom_kill")
    try:
        with run_injection("memory-oom", 5, options={"limit_mib": 32, "leak_mib_per_s": 64}) as inj:
            nothing_left.append(inj.tag)
            assert isinstance(inj.injector, MemoryOom)
            pid = int(inj.injected_entity.removeprefix("process/"))
            rel = inj.plan.run_name
            assert (MEMORY / rel / "memory.limit_in_bytes").read_text().strip() == str(32 << 20)
            assert inj.wait(timeout_s=5.0), "the leaker was not killed within 5 s"
            oom_control = ob.flat_keyed(MEMORY / rel / "memory.oom_control")
            failcnt = int((MEMORY / rel / "memory.failcnt").read_text())
            killed_by_signal = inj.injector.oom_killed()
        records = "".join(ob.poll(kmsg.read, 2.0))
    finally:
        kmsg.close()
    assert killed_by_signal
    assert failcnt > 0
    assert oom_control["oom_kill"] >= 1
    assert ob.vmstat("oom_kill") > ooms0
    assert f"Killed process {pid} " in records, records[-2000:]
    assert f"oom_memcg=/{rel}" in records
    assert inj.cleanup is not None and inj.cleanup.ok, inj.cleanup
    assert not (MEMORY / rel).exists()


def test_io_saturation_drives_the_disk(nothing_left: list[str]) -> None:
    require_binary("fio")
    with run_injection("io-saturation", 3, options={"size_mib": 64}) as inj:
        nothing_left.append(inj.tag)
        assert isinstance(inj.injector, IoSaturation)
        dev = inj.injected_entity.removeprefix("disk/")
        assert Path(f"/sys/block/{dev}").exists()
        time.sleep(0.5)  # fio lays out its file first
        before = ob.block_stat(dev)
        in_flight = []
        for _ in range(20):
            in_flight.append(ob.block_stat(dev)[8])
            time.sleep(0.1)
        after = ob.block_stat(dev)
        files = list((inj.injector.host.tmp / f"{inj.plan.run_name}-io").iterdir())
    ios = (after[0] - before[0]) + (after[4] - before[4])
    busy_ms = after[9] - before[9]
    assert ios > 500, f"only {ios} IOs completed on {dev} in 2 s"
    assert max(in_flight) >= 8, f"in flight on {dev}: {in_flight}"
    assert busy_ms > 1000, f"{dev} was busy only {busy_ms} ms of 2000"
    assert [f.name for f in files] == ["load"]
    assert inj.cleanup is not None and inj.cleanup.ok, inj.cleanup
    assert not files[0].parent.exists()


@pytest.mark.parametrize("topology", ["netns-pair", "host-peer"])
def test_net_loss_makes_tcp_retransmit(topology: str, nothing_left: list[str]) -> None:
    require_binary("nft")
    host_before = ob.snmp_tcp(None, "RetransSegs")
    # Generous bounds: worker start-up is slow on a loaded 2-core CI machine.
    with run_injection("net-loss", 10, options={"loss_percent": 20, "topology": topology}) as inj:
        nothing_left.append(inj.tag)
        assert isinstance(inj.injector, NetLoss)
        ns_a = inj.injector.sender_netns()
        start = ob.snmp_tcp(ns_a, "RetransSegs")
        grew = ob.poll(lambda: ob.snmp_tcp(ns_a, "RetransSegs") - start >= 20, 8.0)
        retrans = ob.snmp_tcp(ns_a, "RetransSegs") - start
        mechanism = inj.injector.mechanism
        if mechanism == "nftables+tbf":
            table = subprocess.run(
                [*inj.injector.netns_exec("b"), "nft", "list", "table", "inet", inj.plan.run_name],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            qdisc = subprocess.run(
                [*inj.injector.netns_exec("a"), "tc", "qdisc", "show", "dev", inj.injector.if_a],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert "numgen random mod 100 < 20" in table and "drop" in table
            assert "packets 0 " not in table  # the drop counter counted
            assert "tbf" in qdisc
    assert grew, f"only {retrans} retransmits ({mechanism})"
    if topology == "host-peer":  # the host's own counters see it, so a host collector does
        assert ob.snmp_tcp(None, "RetransSegs") - host_before >= 20
    assert inj.cleanup is not None and inj.cleanup.ok, inj.cleanup


def test_fd_leak_fills_the_descriptor_table(nothing_left: list[str]) -> None:
    with run_injection(
        "fd-leak", 8, options={"limit": 1024, "fill": 0.95, "fds_per_s": 2000}
    ) as inj:
        nothing_left.append(inj.tag)
        pid = int(inj.injected_entity.removeprefix("process/"))
        full = ob.poll(lambda: ob.fd_count(pid) >= 0.9 * 1024, 5.0)
        count, limit = ob.fd_count(pid), ob.max_open_files(pid)
        targets = {
            Path(os.readlink(fd)).name for fd in sorted(Path(f"/proc/{pid}/fd").iterdir())[-5:]
        }
    assert limit == 1024
    assert full, f"{count} of {limit} descriptors open"
    assert count <= limit
    assert targets == {"leaked"}
    assert inj.cleanup is not None and inj.cleanup.ok, inj.cleanup


def test_noisy_neighbour_starves_the_victim(nothing_left: list[str]) -> None:
    with run_injection("noisy-neighbour", 4, options={"shared_cores": 1.0}) as inj:
        nothing_left.append(inj.tag)
        run = inj.plan.run_name
        aggressor, victim = f"{run}/aggressor", f"{run}/victim"
        assert inj.injected_entity == f"cgroup/{aggressor}"
        unified = ob.CGROUP / "unified"
        usage = lambda rel: int((CPUACCT / rel / "cpuacct.usage").read_text())  # noqa: E731
        a0, v0 = usage(aggressor), usage(victim)
        p0 = ob.pressure_total_us(unified / victim / "cpu.pressure")
        time.sleep(2.5)
        a1, v1 = usage(aggressor), usage(victim)
        p1 = ob.pressure_total_us(unified / victim / "cpu.pressure")
        quota = (CPU / run / "cpu.cfs_quota_us").read_text().strip()
    # The victim wants 0.4 CPU; under an 8:1 weight it gets a fraction of that, and waits.
    assert a1 - a0 > 3 * (v1 - v0), (
        f"aggressor {(a1 - a0) / 1e9:.2f} s vs victim {(v1 - v0) / 1e9:.2f} s"
    )
    assert (v1 - v0) / 1e9 < 0.4 * 2.5, "the victim got all the CPU it wanted"
    assert p1 - p0 > 250_000, f"victim cpu pressure grew only {(p1 - p0) / 1e3:.0f} ms"
    # Whether the shared quota itself throttles depends on how busy the rest of the host is
    # (it does on an idle 2-core machine); the split between the neighbours does not.
    assert quota == "100000"
    assert inj.cleanup is not None and inj.cleanup.ok, inj.cleanup
