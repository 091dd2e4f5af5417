"""The fast-sample shortcuts (session 4) give exactly what the general code gives.

Each shortcut replaced a general parser or bookkeeping step on the fast-sample path; these
tests hold it to the general one on captured fixtures (fixtures/procfs/) and on the edge
cases the general code handles (resets, wraps, malformed lines), so a shortcut cannot drift.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sreagent.collector import Roots, _inotify
from sreagent.collector._cgroup import CgroupSource, _value_after
from sreagent.collector._common import Counters
from sreagent.collector._psi import parse_pressure, pressure_lines
from sreagent.errors import CorruptFile
from tests.collector.fixture_tree import PROCFS, SECOND, T0, Tree
from tests.conftest import requires_root


def _pressure_files() -> list[Path]:
    found = sorted(PROCFS.glob("*/proc/pressure/*")) + sorted(PROCFS.glob("**/*.pressure"))
    return [p for p in found if p.is_file() and p.stat().st_size > 0]


def test_pressure_lines_agrees_with_parse_pressure_on_every_fixture() -> None:
    files = _pressure_files()
    assert len(files) >= 6  # the host files of debian12-vm-t1 and the cgroup v2 trees
    for path in files:
        raw = path.read_bytes()
        general = {k: (p.avg10, p.total_us) for k, p in parse_pressure(raw).items()}
        assert pressure_lines(raw) == general, path


def test_pressure_lines_reads_the_figures_by_name_not_by_luck() -> None:
    raw = b"some avg10=1.79 avg60=0.85 avg300=0.41 total=11703868\nfull avg10=0.02 avg60=0.16 avg300=0.18 total=9636216\n"
    assert pressure_lines(raw) == {"some": (1.79, 11703868), "full": (0.02, 9636216)}
    # Another field order (or an extra field) is not read by position: the general parser
    # takes it and still finds avg10 and total by name.
    odd = b"some total=7 avg10=2.50 avg60=0 avg300=0\n"
    assert pressure_lines(odd) == {"some": (2.5, 7)}


def test_pressure_lines_rejects_garbage_like_parse_pressure() -> None:
    with pytest.raises(CorruptFile):
        pressure_lines(b"some avg10=x avg60=0 avg300=0 total=1\n")
    with pytest.raises(CorruptFile):
        pressure_lines(b"some avg10=1.0\n")


def test_value_after_reads_oom_kill_not_oom_kill_disable() -> None:
    raw = b"oom_kill_disable 1\nunder_oom 0\noom_kill 42\n"
    assert _value_after(raw, b"\noom_kill ") == 42
    assert _value_after(b"oom_kill_disable 1\nunder_oom 0\n", b"\noom_kill ") is None  # < 4.13
    assert _value_after(b"oom_kill_disable 0\noom_kill x\n", b"\noom_kill ") is None
    assert _value_after(b"oom_kill_disable 0\noom_kill 3", b"\noom_kill ") == 3  # no newline


def test_deltas_match_delta_per_counter_through_resets_and_wraps() -> None:
    span32 = 1 << 32
    readings = [
        (100, span32 - 10, 5),
        (150, 5, 7),  # second counter wrapped
        (20, 9, 7),  # first counter reset
        (30, 4, 8),  # second counter stepped back a little: a reset, not a wrap
    ]
    one_by_one = Counters()
    together = Counters()
    for values in readings:
        expected = [one_by_one.delta(("x", i), v, 32) for i, v in enumerate(values)]
        got = together.deltas("x", values, 32)
        if all(e is None for e in expected):
            assert got is None  # first reading
        else:
            assert got == expected
    assert together.resets == one_by_one.resets == 2


def test_deltas_start_over_when_the_number_of_counters_changes() -> None:
    c = Counters()
    assert c.deltas("k", (1, 2)) is None
    assert c.deltas("k", (3, 4, 5)) is None
    assert c.deltas("k", (4, 6, 9)) == [1, 2, 4]


def test_inotify_instances_after_the_first_start_no_subprocess(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ctypes.util.find_library runs ldconfig in a subprocess; the cgroup source makes a new
    # inotify instance at every walk, so the lookup must happen once per process only.
    _inotify.Inotify().close()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"subprocess started: {args!r}")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    for _ in range(3):
        watch = _inotify.Inotify()
        assert watch.fd >= 0
        watch.close()


def test_cgroup_walk_keeps_descriptors_of_files_still_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = Tree(tmp_path, "debian12-vm-t0")
    source = CgroupSource(tree.roots, rewalk_every=2, watch=False)
    try:
        source.read(T0)
        source.read(T0 + SECOND)
        kept = dict(source._files._fds)
        assert len(kept) >= 5  # the fixture's cgroup files are kept open
        opened: list[str] = []
        real_open = os.open

        def counting_open(path: str, *args: int, **kwargs: int) -> int:
            opened.append(str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", counting_open)
        source.read(T0 + 2 * SECOND)  # the periodic walk (every 2 reads) runs here
        assert source._files._fds == kept
        assert not [p for p in opened if p in kept]  # nothing listed was reopened
    finally:
        source.close()


@requires_root
def test_cgroup_v1_oom_kill_of_a_real_cgroup_is_counted() -> None:
    """A process that outgrows a 32 MiB v1 memory cgroup is OOM-killed; the kernel's
    ``oom_kill`` in memory.oom_control and the sample read through the shortcut agree."""
    memory = Path("/sys/fs/cgroup/memory")
    if not (memory / "memory.oom_control").exists():
        pytest.skip("no cgroup v1 memory controller on this host")
    name = f"sreagent-test-oom-{os.getpid()}"
    cgroup = memory / name
    cgroup.mkdir()
    hog = None
    source = CgroupSource(Roots(), max_depth=1)
    try:
        (cgroup / "memory.limit_in_bytes").write_text(str(32 * 1024 * 1024))
        with contextlib.suppress(OSError):  # absent without swap accounting
            (cgroup / "memory.memsw.limit_in_bytes").write_text(str(32 * 1024 * 1024))
        source.read(time.time_ns())
        # Blocks until it is moved into the cgroup (a line on stdin), then grows past the
        # limit one touched MiB at a time.
        hog = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; sys.stdin.readline()\nb=[]\nwhile True: b.append(bytearray(1<<20))",
            ],
            stdin=subprocess.PIPE,
        )
        (cgroup / "cgroup.procs").write_text(str(hog.pid))
        assert hog.stdin is not None
        hog.stdin.write(b"go\n")
        hog.stdin.close()
        assert hog.wait(timeout=60) == -signal.SIGKILL
        kernel = _value_after((cgroup / "memory.oom_control").read_bytes(), b"\noom_kill ")
        raw = (cgroup / "memory.oom_control").read_text()
        assert kernel is not None and kernel >= 1, raw
        assert f"\noom_kill {kernel}\n" in raw
        samples = source.read(time.time_ns()).samples
    finally:
        if hog is not None and hog.poll() is None:
            hog.kill()
            hog.wait()
        _rmdir_when_empty(cgroup)
    got = {s.metric: s.value for s in samples if s.entity == f"cgroup/{name}"}
    assert got["cgroup_oom_kills_total"] == kernel
    assert got["cgroup_memory_limit_bytes"] == 32 * 1024 * 1024


def _rmdir_when_empty(cgroup: Path) -> None:
    # The killed task leaves the cgroup asynchronously; poll instead of sleeping.
    deadline = time.monotonic() + 30
    while True:
        try:
            cgroup.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_perf_group_read_is_decoded() -> None:
    """PERF_FORMAT_GROUP without times or ids: u64 nr, then nr u64 values (perf_event.h)."""
    import struct

    from sreagent.collector._perf import parse_group_read

    raw = struct.pack("=4Q", 3, 123456789, 7, 2**40 + 5)
    assert parse_group_read(raw, 3) == (123456789, 7, 2**40 + 5)
    with pytest.raises(OSError, match="gave 2 counters, expected 3"):
        parse_group_read(struct.pack("=4Q", 2, 1, 2, 0), 3)
