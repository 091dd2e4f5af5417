"""Sources against the live kernel of this machine.

As root every kernel interface must answer (`kernel` mode); the raw netlink readers are
checked against pyroute2, an independent implementation, by sandwiching its reading between
two of ours. As the unprivileged user ``nobody`` the sampler must stay up and name its
fallbacks.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sreagent.collector import Roots, Sampler, SamplerOptions
from sreagent.collector._cgroup import CgroupSource
from sreagent.collector._netlink import NetlinkSource
from sreagent.collector._perf import PerfSource
from sreagent.collector._procs import ProcessSource
from sreagent.collector._psi import PsiSource
from sreagent.collector._sockdiag import LISTEN_ONLY, SockDiagSource
from sreagent.collector._taskstats import TaskstatsSource
from tests.conftest import REPO, requires_root

pytestmark = requires_root


@pytest.fixture
def delay_accounting() -> Iterator[None]:
    """Turn kernel.task_delayacct on for one test and put the old value back."""
    path = Path("/proc/sys/kernel/task_delayacct")
    if not path.exists():
        yield  # kernels before 5.14 account delays unconditionally
        return
    before = path.read_text().strip()
    path.write_text("1\n")
    try:
        yield
    finally:
        path.write_text(before + "\n")


def test_kernel_interfaces_answer_as_root() -> None:
    with Sampler(options=SamplerOptions(disabled=frozenset({"nvml", "scrape"}))) as sampler:
        sampler.sample(time.time_ns())  # modes after a real read, not only at start-up
        modes = {c.source: (c.mode, c.reason) for c in sampler.capabilities()}
    for name in (
        "netlink",
        "sock_diag",
        "taskstats",
        "perf",
        "psi",
        "cgroup",
        "cpu",
        "memory",
        "disk",
        "tcp",
        "processes",
    ):
        assert modes[name][0] == "kernel", (name, modes[name])


def test_rtnetlink_counters_agree_with_pyroute2() -> None:
    from pyroute2 import IPRoute

    source = NetlinkSource(Roots())
    try:
        assert "RTM_GETSTATS" in source.capability().reason
        source._links()  # the first read lists the links; the next ones take RTM_GETSTATS
        before = {x.name: x for x in source._links()}
        with IPRoute() as ipr:
            theirs = {
                link.get_attr("IFLA_IFNAME"): link.get_attr("IFLA_STATS64")
                for link in ipr.get_links()
            }
        after = {x.name: x for x in source._links()}
    finally:
        source.close()
    assert set(before) == set(theirs) == set(after)
    for name, stats in theirs.items():
        for field in ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "rx_dropped"):
            assert getattr(before[name], field) <= stats[field] <= getattr(after[name], field), (
                name,
                field,
            )


def test_links_are_listed_again_only_when_the_kernel_says_they_changed() -> None:
    """Counters come from RTM_GETSTATS; a link added, renamed or removed is named at the
    next read because the kernel's link notification makes the source list links again."""
    ip = "/usr/sbin/ip" if Path("/usr/sbin/ip").exists() else "ip"
    tag = os.getpid() % 10000
    name, renamed, peer = f"sn{tag}x", f"sn{tag}y", f"sn{tag}p"

    def run(*args: str) -> None:
        subprocess.run([ip, "link", *args], check=True, timeout=30)

    source = NetlinkSource(Roots(), relist_every=10**6)
    try:
        now = time.time_ns()

        def entities(step: int) -> set[str]:
            return {s[2] for s in source.read(now + step * 10**9).rows}

        assert "nic/lo" in entities(0)
        quiet_before = source.relists
        for step in range(1, 21):
            entities(step)
        # Other tests may change links meanwhile; without the stats path every read lists.
        assert source.relists - quiet_before < 20
        run("add", name, "type", "veth", "peer", "name", peer)  # this kernel has no dummy
        try:
            assert f"nic/{name}" in entities(30)
            run("set", name, "name", renamed)
            got = entities(31)
            assert f"nic/{renamed}" in got and f"nic/{name}" not in got
        finally:
            subprocess.run([ip, "link", "del", renamed], timeout=30)
            subprocess.run([ip, "link", "del", name], timeout=30, capture_output=True)
        assert f"nic/{renamed}" not in entities(32)
    finally:
        source.close()


def test_the_v2_root_cgroup_pressure_is_the_system_pressure() -> None:
    """What the cgroup source relies on to skip the root's pressure files: on this kernel
    the real root's cpu.pressure and /proc/pressure/cpu are the same PSI group (read back to
    back; avg10 moves every 2 s, so a pair straddling an update is read again)."""
    source = CgroupSource(Roots())
    v2 = source.hierarchies.v2
    source.close()
    # The project's machines mount cgroup v2 (hybrid) with PSI (docs/collector.md).
    assert v2 is not None and (v2 / "cpu.pressure").exists()
    assert not (v2 / "cgroup.events").exists(), "the mounted v2 root is the real root here"
    for _ in range(20):
        system = Path("/proc/pressure/cpu").read_text()
        root = (v2 / "cpu.pressure").read_text()
        if system.split()[1] == root.split()[1]:
            break
        time.sleep(0.1)
    assert system.split()[1:4] == root.split()[1:4]
    with Sampler(options=SamplerOptions(enabled=frozenset({"psi", "cgroup"}))) as sampler:
        out = sampler.sample(time.time_ns())
    host = {s.labels["resource"]: s.value for s in out.samples if s.metric == "pressure_some_ratio"}
    rooted = {
        s.labels["resource"]: s.value
        for s in out.samples
        if s.metric == "cgroup_pressure_some_ratio" and s.entity == "cgroup/"
    }
    assert rooted == host and set(host) == {"cpu", "memory", "io"}


def test_sock_diag_sees_an_exact_accept_queue() -> None:
    """Three connections wait on a listener with backlog 5: queue length 3, fill 3/5."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    clients = []
    source = SockDiagSource(Roots())
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        port = listener.getsockname()[1]
        for _ in range(3):
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            clients.append(client)
        deadline = time.monotonic() + 5
        while True:
            mine = [s for s in source.sockets(LISTEN_ONLY) if s.local_port == port]
            if (mine and mine[0].rqueue == 3) or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert [(s.rqueue, s.wqueue) for s in mine] == [(3, 5)]
        samples = source.read(time.time_ns()).samples
        got = {(s.metric, s.labels.get("port")): s.value for s in samples}
        assert got[("tcp_listen_queue_length", str(port))] == 3
        assert got[("tcp_listen_backlog_ratio", str(port))] == pytest.approx(3 / 5)
        states = {s.labels["state"]: s.value for s in samples if s.metric == "tcp_sockets"}
        assert states["established"] >= 6  # both ends of the three connections
    finally:
        for client in clients:
            client.close()
        listener.close()
        source.close()


def test_taskstats_agrees_with_pyroute2_and_accounts_block_io(delay_accounting: None) -> None:
    from pyroute2 import TaskStats

    source = TaskstatsSource(Roots())
    try:
        assert source.capability().mode == "kernel"
        assert "task_delayacct=0" not in source.capability().reason
        pid = os.getpid()
        before = source.delays([pid], 100)[pid]
        with TaskStats() as ts:
            ts.bind()
            msg = ts.get_pid_stat(pid)[0]
            stats = msg.get_attr("TASKSTATS_TYPE_AGGR_PID").get_attr("TASKSTATS_TYPE_STATS")
        after = source.delays([pid], 100)[pid]
    finally:
        source.close()
    assert before.cpu is not None and after.cpu is not None
    assert before.cpu <= stats["cpu_delay_total"] / 1e9 <= after.cpu
    assert before.blkio is not None  # accounted now that the sysctl is on
    assert before.blkio <= stats["blkio_delay_total"] / 1e9 <= (after.blkio or 0)


@pytest.mark.parametrize("grouped", [True, False], ids=["group-read", "one-fd-per-counter"])
def test_perf_counts_context_switches_like_proc_stat(
    grouped: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """perf's system-wide software counter and /proc/stat ctxt count the same switches,
    read as one group per CPU and, where a kernel refuses the group, one fd per counter."""
    from sreagent.collector._perf import PerfCounters

    if not grouped:

        def refuse(self: PerfCounters, cpus: list[int]) -> None:
            raise OSError(22, "Invalid argument")

        monkeypatch.setattr(PerfCounters, "_open_groups", refuse)
    source = PerfSource(Roots())
    assert source.capability().mode == "kernel"
    want = "one group per CPU" if grouped else "one fd per counter"
    assert want in source.capability().reason
    try:
        assert source._perf is not None

        def ctxt() -> int:
            for line in Path("/proc/stat").read_text().splitlines():
                if line.startswith("ctxt "):
                    return int(line.split()[1])
            raise AssertionError("no ctxt line")

        perf0, proc0 = source._perf.read()["context_switches_per_second"], ctxt()
        # Ping-pong over a pipe: thousands of switches in a fraction of a second.
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import os\nr,w=os.pipe()\nr2,w2=os.pipe()\n"
                "if os.fork()==0:\n"
                "    for _ in range(3000): os.read(r,1); os.write(w2,b'x')\n"
                "    os._exit(0)\n"
                "for _ in range(3000): os.write(w,b'x'); os.read(r2,1)\n"
                "os.wait()\n",
            ],
            check=True,
            timeout=60,
        )
        perf1, proc1 = source._perf.read()["context_switches_per_second"], ctxt()
    finally:
        source.close()
    perf_delta, proc_delta = perf1 - perf0, proc1 - proc0
    assert proc_delta >= 6000
    # Stated tolerance: 10 % (the two reads are not simultaneous).
    assert perf_delta == pytest.approx(proc_delta, rel=0.10)


def test_psi_is_read_from_the_kernel() -> None:
    source = PsiSource(Roots())
    assert source.capability().mode == "kernel"
    resources = {s.labels["resource"] for s in source.read(time.time_ns()).samples}
    assert resources == {"cpu", "memory", "io"}


def _cpu_stat(cgroup: Path) -> dict[str, int]:
    pairs = (line.split() for line in (cgroup / "cpu.stat").read_text().splitlines())
    return {key: int(value) for key, value in pairs}


def _poll(check: Callable[[], bool], timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > end:
            return False
        time.sleep(0.1)
    return True


def test_cgroup_v1_throttling_of_a_real_cgroup() -> None:
    """A busy loop in a 0.2-core cgroup is throttled and its limits read back exactly."""
    name = f"sreagent-test-{os.getpid()}"
    cpu = Path("/sys/fs/cgroup/cpu") / name
    memory = Path("/sys/fs/cgroup/memory") / name
    cpuacct = Path("/sys/fs/cgroup/cpuacct") / name  # usage lives in its own hierarchy here
    if not Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists():
        pytest.skip("no cgroup v1 cpu controller on this host")
    # On hosts that co-mount cpu,cpuacct both names lead to one directory.
    dirs = list(dict.fromkeys(p.parent.resolve() / name for p in (cpu, memory, cpuacct)))
    for d in dirs:
        d.mkdir()
    busy = None
    source = CgroupSource(Roots(), max_depth=1)
    try:
        (cpu / "cpu.cfs_period_us").write_text("100000")
        (cpu / "cpu.cfs_quota_us").write_text("20000")
        (memory / "memory.limit_in_bytes").write_text(str(96 * 1024 * 1024))
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for d in dirs:
            (d / "cgroup.procs").write_text(str(busy.pid))
        # On a loaded machine the loop may wait a while for its first slice: measure once the
        # kernel has throttled it, and compare with the kernel's own counters over the window.
        assert _poll(lambda: _cpu_stat(cpu)["nr_throttled"] > 0, 15.0), "never throttled"
        before = _cpu_stat(cpu)
        source.read(time.time_ns())
        time.sleep(2.0)
        samples = source.read(time.time_ns()).samples
        after = _cpu_stat(cpu)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
        for d in dirs:
            d.rmdir()
    got = {s.metric: s.value for s in samples if s.entity == f"cgroup/{name}"}
    assert got["cgroup_cpu_limit_cores"] == pytest.approx(0.2)
    assert got["cgroup_memory_limit_bytes"] == 96 * 1024 * 1024
    # A loop that always wants a CPU exhausts its 20 ms per 100 ms period and is throttled;
    # how often depends on how busy the two CPUs are, so the oracle is the kernel's cpu.stat
    # over (almost) the same window.
    kernel_ratio = (after["nr_throttled"] - before["nr_throttled"]) / max(
        1, after["nr_periods"] - before["nr_periods"]
    )
    assert kernel_ratio > 0
    assert 0 < got["cgroup_cpu_throttled_ratio"] == pytest.approx(kernel_ratio, abs=0.2)
    assert got["cgroup_cpu_throttled_seconds_per_second"] > 0
    # Stated tolerance: usage may not exceed the 0.2-core quota by more than 0.1 core.
    assert 0 < got["cgroup_cpu_usage_ratio"] <= 0.3


def test_process_scan_finds_a_known_child() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "marker-7321"])
    try:
        source = ProcessSource(Roots(), top_n=500)
        rows = {r.pid: r for r in source.read(time.time_ns()).processes}
    finally:
        child.kill()
        child.wait()
    row = rows[child.pid]
    assert row.ppid == os.getpid()
    assert row.uid == os.geteuid()
    assert all(
        r.uid == os.stat(f"/proc/{pid}").st_uid
        for pid, r in rows.items()
        if os.path.exists(f"/proc/{pid}")
    )
    assert row.cmdline.endswith("marker-7321")
    assert row.fds is not None and row.fds >= 3
    assert row.rss_bytes > 1024 * 1024


UNPRIVILEGED = """
import json, time
from sreagent.collector import Sampler, SamplerOptions
s = Sampler(options=SamplerOptions(process_every=1, disabled=frozenset({"nvml", "scrape"})))
first = s.sample(time.time_ns())
time.sleep(0.2)
second = s.sample(time.time_ns())
print(json.dumps({
    "caps": {c.source: [c.mode, c.reason] for c in s.capabilities()},
    "metrics": sorted({x.metric for x in second.samples}),
    "processes": len(second.processes),
}))
s.close()
"""


@pytest.mark.slow
def test_unprivileged_sampler_stays_up_and_names_its_fallbacks() -> None:
    setpriv = "/usr/bin/setpriv"
    if not Path(setpriv).exists():
        pytest.skip("setpriv (util-linux) not installed")
    result = subprocess.run(
        [
            setpriv,
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-c",
            UNPRIVILEGED,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    caps = report["caps"]
    # perf_event_paranoid >= 1 forbids system-wide counters without CAP_PERFMON.
    paranoid = int(Path("/proc/sys/kernel/perf_event_paranoid").read_text())
    if paranoid >= 1:
        assert caps["perf"][0] == "fallback"
        assert "perf_event_open: EACCES" in caps["perf"][1] or "EPERM" in caps["perf"][1]
    # TASKSTATS_CMD_GET needs CAP_NET_ADMIN.
    assert caps["taskstats"][0] == "fallback"
    assert "EPERM" in caps["taskstats"][1]
    # Other users' /proc/<pid>/io is unreadable: the scan says so.
    assert caps["processes"][0] == "fallback"
    assert "unreadable" in caps["processes"][1]
    assert report["processes"] > 10
    for metric in (
        "cpu_utilisation_ratio",
        "memory_used_bytes",
        "context_switches_per_second",
        "network_receive_bytes_per_second",
        "disk_in_flight",
    ):
        assert metric in report["metrics"]


def test_kernel_paths_that_break_while_running_fall_back() -> None:
    """A netlink socket or perf fd that dies mid-run: the source carries on from procfs."""
    netlink = NetlinkSource(Roots())
    diag = SockDiagSource(Roots())
    perf = PerfSource(Roots())
    try:
        assert netlink._sock is not None and diag._sock is not None and perf._perf is not None
        netlink._sock._sock.close()  # the kernel side is gone: every send fails with EBADF
        diag._sock._sock.close()
        # Close the counters properly, then leave numbers no process can hold (2**30 is far
        # above any RLIMIT_NOFILE here), so nothing reused is read or closed by mistake.
        perf._perf.close()
        perf._perf.fds = {name: [2**30] for name in ("context_switches_per_second",)}
        net_out = netlink.read(time.time_ns())
        diag_out = diag.read(time.time_ns())
        perf_out = perf.read(time.time_ns())
        for source in (netlink, diag, perf):
            cap = source.capability()
            assert (cap.mode, "failed while running: EBADF" in cap.reason) == ("fallback", True)
        assert any(s.entity == "nic/lo" for s in net_out.samples)
        assert any(s.metric == "tcp_sockets" for s in diag_out.samples)
        assert perf_out.samples == []  # first fallback reading: a rate needs two
        assert [s.metric for s in perf.read(time.time_ns() + 10**9).samples] == [
            "context_switches_per_second",
            "page_faults_per_second",
        ]
    finally:
        netlink.close()
        diag.close()
        perf.close()


@pytest.mark.parametrize("use_netlink", [True, False], ids=["rtnetlink", "sysfs"])
def test_carrier_changes_of_a_veth_pair_become_events(use_netlink: bool) -> None:
    """A veth end has carrier only while its peer is up: toggling the peer is a real
    link down / link up, seen through rtnetlink and through the sysfs fallback."""
    ip = "/usr/sbin/ip" if Path("/usr/sbin/ip").exists() else "ip"
    a, b = f"sa{os.getpid() % 10000}a", f"sa{os.getpid() % 10000}b"

    def run(*args: str) -> None:
        subprocess.run([ip, "link", *args], check=True, timeout=30)

    run("add", a, "type", "veth", "peer", "name", b)
    source = NetlinkSource(Roots(), use_netlink=use_netlink)
    try:
        run("set", a, "up")  # peer down: no carrier
        now = time.time_ns()

        def events(step: int) -> list[tuple[str, str]]:
            time.sleep(0.05)  # carrier changes are applied by the kernel's link watch
            out = source.read(now + step * 10**9)
            return [(e.kind, e.entity) for e in out.events if e.entity == f"nic/{a}"]

        assert events(0) == []
        run("set", b, "up")
        deadline = time.monotonic() + 5
        got = events(1)
        while not got and time.monotonic() < deadline:
            got = events(2)
        assert got == [("link_up", f"nic/{a}")]
        run("set", b, "down")
        got = events(3)
        while not got and time.monotonic() < deadline:
            got = events(4)
        assert got == [("link_down", f"nic/{a}")]
        samples = source.read(now + 5 * 10**9).samples
        changes = [
            s.value
            for s in samples
            if s.metric == "network_carrier_changes_total" and s.entity == f"nic/{a}"
        ]
        assert changes and changes[0] >= 2
    finally:
        source.close()
        subprocess.run([ip, "link", "del", a], check=False, timeout=30)


def test_a_removed_cgroup_is_dropped_at_once_despite_kept_descriptors() -> None:
    """cgroupfs answers ENODEV on a removed cgroup's open files: the source notices and
    re-walks on the next read instead of waiting for its periodic walk (without inotify,
    which would see the removal first: tests/collector/test_cgroup_watch.py)."""
    parent = Path("/sys/fs/cgroup/memory")
    if not (parent / "memory.usage_in_bytes").exists():
        pytest.skip("no cgroup v1 memory controller on this host")
    child = parent / f"sreagent-gone-{os.getpid()}"
    child.mkdir()
    source = CgroupSource(Roots(), max_depth=1, rewalk_every=1000, watch=False)
    entity = f"cgroup/{child.name}"
    try:
        assert entity in {s.entity for s in source.read(time.time_ns()).samples}
    finally:
        child.rmdir()
    try:
        first = {s.entity for s in source.read(time.time_ns()).samples}
        assert entity not in first
        assert source._stale  # the vanished files were seen
        source.read(time.time_ns())
        assert not source._stale
        assert all(child.name not in r.d for _, _, r in source._layout or [])
    finally:
        source.close()
