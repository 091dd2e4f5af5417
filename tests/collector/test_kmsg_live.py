"""The kmsg source against the real ``/dev/kmsg`` of this machine.

Root writes test lines into the kernel log (``/dev/kmsg`` accepts ``<level>text`` lines from
root; they appear with facility ``user``), and the source must classify them, start at the
end, resume after a restart without re-reading or losing lines, and count sequence gaps.
Each line carries a random pid and command name so parallel runs and other kernel chatter
cannot be mistaken for it. Writers are ratelimited per open file (10 lines per 5 s), so every
write opens its own file.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sreagent.collector._kmsg import STATE_FILE, KmsgSource, kmsg_source, parse_record
from sreagent.collector._source import Roots, Source
from tests.conftest import REPO, requires_root

pytestmark = [requires_root, pytest.mark.root]


def _oom_line(pid: int, comm: str) -> str:
    return (
        f"sreagent-test: Out of memory: Killed process {pid} ({comm}) total-vm:123456kB, "
        f"anon-rss:65432kB, file-rss:8kB, shmem-rss:0kB, UID:0 pgtables:400kB oom_score_adj:0"
    )


def _write_kmsg(text: str, level: int = 3) -> None:
    with open("/dev/kmsg", "w") as kmsg:
        kmsg.write(f"<{level}>{text}\n")


def _victim() -> tuple[int, str]:
    return 3_000_000 + secrets.randbelow(1_000_000), f"sreagent-{secrets.token_hex(4)}"


def _oom_pids(source: KmsgSource) -> set[str]:
    out = source.read(time.time_ns())
    return {e.entity for e in out.events if e.kind == "oom_kill"}


def test_source_protocol_and_capability(tmp_path: Path) -> None:
    source = kmsg_source(Roots(), tmp_path)
    try:
        assert isinstance(source, Source)
        cap = source.capability()
        assert cap.mode == "kernel", cap.reason
        assert "first run: starting at the end" in cap.reason
    finally:
        source.close()


def test_live_line_is_classified_with_wall_clock_time(tmp_path: Path) -> None:
    source = KmsgSource(Roots(), tmp_path)
    try:
        source.read(time.time_ns())
        pid, comm = _victim()
        before = time.time_ns()
        _write_kmsg(_oom_line(pid, comm))
        out = source.read(time.time_ns())
        mine = [e for e in out.events if e.entity == f"process/{pid}"]
        assert len(mine) == 1, out.events
        event = mine[0]
        assert (event.kind, event.source, event.severity) == ("oom_kill", "kmsg", "error")
        assert event.attributes["comm"] == comm
        assert event.attributes["level"] == "err"
        # The kernel stamps the record; placed on the wall clock it lands around the write.
        assert before - 1_000_000_000 < event.ts_ns < time.time_ns() + 1_000_000_000
        lost = [s for s in out.samples if s.metric == "collector_kmsg_lost_records_total"]
        assert [s.value for s in lost] == [0.0]
    finally:
        source.close()


def test_first_run_starts_at_the_end(tmp_path: Path) -> None:
    pid, comm = _victim()
    _write_kmsg(_oom_line(pid, comm))
    source = KmsgSource(Roots(), tmp_path)
    try:
        assert f"process/{pid}" not in _oom_pids(source)
        assert json.loads((tmp_path / STATE_FILE).read_text())["seq"] >= 0
    finally:
        source.close()


def test_restart_never_rereads_and_never_loses(tmp_path: Path) -> None:
    first = KmsgSource(Roots(), tmp_path)
    pid_a, comm_a = _victim()
    pid_b, comm_b = _victim()
    try:
        _write_kmsg(_oom_line(pid_a, comm_a))
        assert f"process/{pid_a}" in _oom_pids(first)
    finally:
        first.close()
    # Written while no collector runs: must be reported by the next one, exactly once.
    _write_kmsg(_oom_line(pid_b, comm_b))
    second = KmsgSource(Roots(), tmp_path)
    try:
        assert "resuming after seq" in second.capability().reason
        seen = _oom_pids(second)
        assert f"process/{pid_b}" in seen
        assert f"process/{pid_a}" not in seen
        assert second.lost_records == 0
        assert f"process/{pid_b}" not in _oom_pids(second)
    finally:
        second.close()


def _oldest_seq() -> int:
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        while True:
            try:
                return parse_record(os.read(fd, 16384)).seq
            except BrokenPipeError:
                continue
    finally:
        os.close(fd)


def _ring_bytes() -> int:
    # syslog(SYSLOG_ACTION_SIZE_BUFFER): the size of the kernel's log ring.
    return int(ctypes.CDLL(None, use_errno=True).klogctl(10, None, 0))


def _fill_ring(tag: str) -> int:
    """Write enough ~900-byte OOM-shaped lines to wrap the ring once and a half; their pids
    are ``FILL_BASE + i``. Returns how many were written."""
    count = _ring_bytes() * 3 // 2 // 900
    for i in range(count):
        _write_kmsg(_oom_line(FILL_BASE + i, f"{tag}-{i}").ljust(900, "."), level=7)
    return count


FILL_BASE = 2_000_000


@pytest.mark.slow
def test_ring_overrun_is_counted_not_hidden(tmp_path: Path) -> None:
    source = KmsgSource(Roots(), tmp_path)
    try:
        source.read(time.time_ns())
        seq_before = json.loads((tmp_path / STATE_FILE).read_text())["seq"]
        written = _fill_ring(f"fill{secrets.token_hex(2)}")
        out = source.read(time.time_ns())
        seq_after = json.loads((tmp_path / STATE_FILE).read_text())["seq"]
        # Kernel lines others logged meanwhile (a shared machine): the sequence numbers tell.
        others = seq_after - seq_before - written
        assert others >= 0
        seen = sorted(
            int(e.entity.split("/")[1]) - FILL_BASE
            for e in out.events
            if e.kind == "oom_kill"
            and FILL_BASE <= int(e.entity.split("/")[1]) < FILL_BASE + written
        )
        missing_front = seen[0]
        # Everything from the first surviving line on is read, in order, without holes...
        assert seen == list(range(missing_front, written))
        # ...and the overwritten ones are counted: at least our missing lines, at most those
        # plus every other line logged between the two reads.
        assert missing_front > 0
        assert missing_front <= source.lost_records <= missing_front + others
    finally:
        source.close()


def test_sequence_gap_is_counted_as_lost(tmp_path: Path) -> None:
    # A saved position older than the oldest record the ring still holds is exactly what an
    # overrun leaves behind: the records in between are gone and must be counted.
    if _oldest_seq() < 6:
        _fill_ring(f"gap{secrets.token_hex(2)}")
    oldest = _oldest_seq()
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    (tmp_path / STATE_FILE).write_text(json.dumps({"boot_id": boot_id, "seq": oldest - 6}))
    source = KmsgSource(Roots(), tmp_path)
    try:
        out = source.read(time.time_ns())
        assert source.lost_records == 5
        assert [
            s.value for s in out.samples if s.metric == "collector_kmsg_lost_records_total"
        ] == [5.0]
    finally:
        source.close()


def test_state_from_another_boot_reads_this_boot_from_the_start(tmp_path: Path) -> None:
    pid, comm = _victim()
    _write_kmsg(_oom_line(pid, comm))
    fake_proc = tmp_path / "proc"
    (fake_proc / "sys/kernel/random").mkdir(parents=True)
    (fake_proc / "sys/kernel/random/boot_id").write_text("11111111-2222-3333-4444-555555555555\n")
    state = tmp_path / "state"
    state.mkdir()
    (state / STATE_FILE).write_text(json.dumps({"boot_id": "an-older-boot", "seq": 10**12}))
    source = KmsgSource(Roots(proc=fake_proc), state)
    try:
        assert "new boot" in source.capability().reason
        assert f"process/{pid}" in _oom_pids(source)
    finally:
        source.close()


def test_damaged_state_file_is_treated_as_a_first_run(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text("{not json")
    source = KmsgSource(Roots(), tmp_path)
    try:
        assert "first run" in source.capability().reason
        pid, comm = _victim()
        _write_kmsg(_oom_line(pid, comm))
        assert f"process/{pid}" in _oom_pids(source)
    finally:
        source.close()


UNPRIVILEGED = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_unprivileged_user_gets_off_with_the_real_error(tmp_path: Path) -> None:
    if Path("/proc/sys/kernel/dmesg_restrict").read_text().strip() != "1":
        pytest.skip("kernel.dmesg_restrict=0 lets anyone read the kernel log")
    tmp_path.chmod(0o777)
    code = (
        "import json; from pathlib import Path; from sreagent.collector._kmsg import kmsg_source; "
        f"s = kmsg_source(state_dir=Path({str(tmp_path)!r})); "
        "out = s.read(1); print(json.dumps(s.capability().model_dump())); s.close()"
    )
    done = subprocess.run(
        [*UNPRIVILEGED, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    cap = json.loads(done.stdout)
    assert cap["mode"] == "off"
    assert "/dev/kmsg" in cap["reason"]
    assert "Operation not permitted" in cap["reason"]
    assert "CAP_SYSLOG" in cap["reason"]
