"""Oracle tests: the collector's readings against independent tools on the same machine.

Tolerances are stated per test. Where a counter only grows, the tool's reading is
sandwiched between two of ours (exact); where a value moves both ways (memory in use,
socket counts) the tolerance covers what other processes can change between the reads.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections import Counter

import psutil
import pytest

from sreagent.collector import Roots
from sreagent.collector._common import read_bytes
from sreagent.collector._cpu import CpuSource, parse_stat
from sreagent.collector._memory import MemorySource
from sreagent.collector._netlink import NetlinkSource, parse_net_dev
from sreagent.collector._sockdiag import STATES, SockDiagSource
from tests.conftest import require_binary, requires_root

CLOCK_TICKS = 100  # USER_HZ; psutil divides by the same sysconf value


def _ip_links() -> dict[str, dict[str, int]]:
    ip = require_binary("ip")
    data = json.loads(
        subprocess.run(
            [ip, "-s", "-j", "link"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    )
    return {
        link["ifname"]: {
            "rx_bytes": link["stats64"]["rx"]["bytes"],
            "tx_bytes": link["stats64"]["tx"]["bytes"],
            "rx_packets": link["stats64"]["rx"]["packets"],
            "tx_packets": link["stats64"]["tx"]["packets"],
        }
        for link in data
    }


@pytest.mark.parametrize("use_netlink", [True, False], ids=["rtnetlink", "proc-net-dev"])
def test_link_counters_agree_with_ip_s_link(use_netlink: bool) -> None:
    """Tolerance: none. ``ip -s link`` must lie between two of our reads, counter by counter."""
    if use_netlink and not psutil.LINUX:
        pytest.skip("rtnetlink is Linux only")
    source = NetlinkSource(Roots(), use_netlink=use_netlink)
    try:
        before = {x.name: x for x in source._links()}
        theirs = _ip_links()
        after = {x.name: x for x in source._links()}
    finally:
        source.close()
    assert set(theirs) <= set(before)
    for name, counters in theirs.items():
        for field, value in counters.items():
            assert getattr(before[name], field) <= value <= getattr(after[name], field), (
                name,
                field,
            )


def test_proc_net_dev_parser_agrees_with_psutil() -> None:
    """Tolerance: none (sandwich). psutil parses /proc/net/dev with its own code."""
    before = {x.name: x for x in parse_net_dev(read_bytes("/proc/net/dev"))}
    theirs = psutil.net_io_counters(pernic=True)
    after = {x.name: x for x in parse_net_dev(read_bytes("/proc/net/dev"))}
    for name, c in theirs.items():
        assert before[name].rx_bytes <= c.bytes_recv <= after[name].rx_bytes
        assert before[name].tx_packets <= c.packets_sent <= after[name].tx_packets


def test_memory_agrees_with_free_b() -> None:
    """Tolerance: total exact; used within 1 % of total (memory moves between the reads)."""
    free = require_binary("free")
    out = subprocess.run(
        [free, "-b"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    mem = next(line.split() for line in out.splitlines() if line.startswith("Mem:"))
    total, used = int(mem[1]), int(mem[2])
    samples = {s.metric: s.value for s in MemorySource(Roots()).read(time.time_ns()).samples}
    assert samples["memory_total_bytes"] == total
    assert abs(samples["memory_used_bytes"] - used) <= 0.01 * total
    swap = next(line.split() for line in out.splitlines() if line.startswith("Swap:"))
    assert abs(samples["swap_used_bytes"] - int(swap[2])) <= 0.01 * max(int(swap[1]), 1)


def test_proc_stat_counters_agree_with_psutil_cpu_times() -> None:
    """Tolerance: none (sandwich) for the per-mode counters, in seconds."""
    before = parse_stat(read_bytes("/proc/stat")).total
    theirs = psutil.cpu_times()
    after = parse_stat(read_bytes("/proc/stat")).total
    for mode in ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"):
        low, high = getattr(before, mode) / CLOCK_TICKS, getattr(after, mode) / CLOCK_TICKS
        # psutil rounds to 1/100 s already; allow float noise only.
        assert low - 1e-9 <= getattr(theirs, mode) <= high + 1e-9, mode


def test_cpu_utilisation_delta_agrees_with_psutil() -> None:
    """Tolerance: 0.05 of a CPU share over a 0.5 s interval (reads are microseconds apart,
    but a jiffy is 1 % of a CPU on a 2-CPU host over 0.5 s)."""
    source = CpuSource(Roots())
    source.read(time.time_ns())
    psutil.cpu_percent(interval=None)  # psutil keeps its own previous reading
    # Some work so that the share is not trivially 0 or 1.
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        sum(range(1000))
    theirs = psutil.cpu_percent(interval=None) / 100
    ours = {s.metric: s.value for s in source.read(time.time_ns()).samples}
    assert ours["cpu_utilisation_ratio"] == pytest.approx(theirs, abs=0.05)


@requires_root
def test_socket_counts_agree_with_ss() -> None:
    """Tolerance: per state, ss's count lies within the range of two of our dumps taken
    around it, widened by 2 for sockets other processes open or close in between.
    The accept queue of our own listener must match ``ss``'s Recv-Q exactly."""
    ss = require_binary("ss")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    clients = []
    source = SockDiagSource(Roots())
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(4)]
        time.sleep(0.05)
        first = Counter(STATES.get(s.state, "?") for s in source.sockets())
        text = subprocess.run(
            [ss, "-tanH"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
        second = Counter(STATES.get(s.state, "?") for s in source.sockets())
        ours_queue = [s.rqueue for s in source.sockets() if s.local_port == port and s.state == 10]
    finally:
        for c in clients:
            c.close()
        listener.close()
        source.close()
    ss_states = Counter()
    ss_queue = None
    names = {
        "ESTAB": "established",
        "LISTEN": "listen",
        "TIME-WAIT": "time_wait",
        "SYN-SENT": "syn_sent",
        "SYN-RECV": "syn_recv",
        "FIN-WAIT-1": "fin_wait1",
        "FIN-WAIT-2": "fin_wait2",
        "CLOSE-WAIT": "close_wait",
        "LAST-ACK": "last_ack",
        "CLOSING": "closing",
        "UNCONN": "close",
    }
    for line in text.splitlines():
        parts = line.split()
        ss_states[names.get(parts[0], parts[0])] += 1
        if parts[0] == "LISTEN" and parts[3] == f"127.0.0.1:{port}":
            ss_queue = int(parts[1])
    for state in ("established", "listen", "time_wait"):
        low = min(first[state], second[state]) - 2
        high = max(first[state], second[state]) + 2
        assert low <= ss_states[state] <= high, (
            state,
            first[state],
            ss_states[state],
            second[state],
        )
    assert ss_states["established"] >= 8
    assert ours_queue == [4]
    assert ss_queue == 4
