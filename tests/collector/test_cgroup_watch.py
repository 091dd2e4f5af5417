"""The cgroup source sees new and removed cgroups and written limits at the next read.

The walk is re-done when inotify reports a change (sreagent/collector/_cgroup.py); the pure
decision is tested on hand-built events, the whole path on real cgroups as root.
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import pytest

from sreagent.collector import Roots
from sreagent.collector._cgroup import CgroupSource, needs_walk
from sreagent.collector._inotify import (
    IN_CREATE,
    IN_DELETE,
    IN_ISDIR,
    IN_MODIFY,
    IN_Q_OVERFLOW,
    InotifyEvent,
    parse_events,
)
from tests.conftest import requires_root

MIB = 1024 * 1024


def _raw_event(wd: int, mask: int, name: bytes) -> bytes:
    padded = name + b"\0" * (16 - len(name) % 16) if name else b""
    return struct.pack("=iIII", wd, mask, 0, len(padded)) + padded


def test_parse_events_reads_names_and_stops_at_a_truncated_tail() -> None:
    raw = _raw_event(3, IN_CREATE | IN_ISDIR, b"pod-a") + _raw_event(4, IN_MODIFY, b"cpu.max")
    events = parse_events(raw + _raw_event(5, IN_DELETE, b"x")[:10])
    assert events == [
        InotifyEvent(3, IN_CREATE | IN_ISDIR, b"pod-a"),
        InotifyEvent(4, IN_MODIFY, b"cpu.max"),
    ]


@pytest.mark.parametrize(
    ("event", "leaves", "walk"),
    [
        (InotifyEvent(1, IN_CREATE | IN_ISDIR, b"new"), set(), True),
        (InotifyEvent(1, IN_DELETE | IN_ISDIR, b"old"), set(), True),
        # a directory at max_depth: its children are never read, no walk for them
        (InotifyEvent(1, IN_CREATE | IN_ISDIR, b"deeper"), {1}, False),
        (InotifyEvent(1, IN_MODIFY, b"cpu.cfs_quota_us"), set(), True),
        (InotifyEvent(1, IN_MODIFY, b"memory.max"), {1}, True),
        # moving tasks and the kernel's own event counters change nothing the walk found
        (InotifyEvent(1, IN_MODIFY, b"cgroup.procs"), set(), False),
        (InotifyEvent(1, IN_MODIFY, b"memory.events"), set(), False),
        # a file (not a directory) appearing is not a cgroup
        (InotifyEvent(1, IN_CREATE, b"cpu.max"), set(), False),
        (InotifyEvent(-1, IN_Q_OVERFLOW, b""), set(), True),
    ],
)
def test_needs_walk_decides_from_the_event(
    event: InotifyEvent, leaves: set[int], walk: bool
) -> None:
    assert needs_walk([event], leaves) is walk


def _by_entity(source: CgroupSource) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for s in source.read(time.time_ns()).samples:
        out.setdefault(s.entity, {})[s.metric] = s.value
    return out


@requires_root
def test_a_new_cgroup_its_limit_and_its_removal_are_seen_at_the_next_read() -> None:
    parent = Path("/sys/fs/cgroup/memory")
    if not (parent / "memory.usage_in_bytes").exists():
        pytest.skip("no cgroup v1 memory controller on this host")
    # The periodic walk is pushed out of reach: only inotify can make these reads walk.
    source = CgroupSource(Roots(), max_depth=2, rewalk_every=10**6)
    child = parent / f"sreagent-watch-{os.getpid()}"
    nested = child / "inner"
    entity = f"cgroup/{child.name}"
    try:
        before = _by_entity(source)
        assert entity not in before
        assert source.capability().reason.endswith("seen at the next read (inotify)")
        child.mkdir()
        try:
            got = _by_entity(source)
            assert entity in got
            assert "cgroup_memory_limit_bytes" not in got[entity]  # no limit yet
            (child / "memory.limit_in_bytes").write_text(str(48 * MIB))
            got = _by_entity(source)
            assert got[entity]["cgroup_memory_limit_bytes"] == 48 * MIB
            nested.mkdir()
            assert f"{entity}/inner" in _by_entity(source)
        finally:
            if nested.exists():
                nested.rmdir()
            child.rmdir()
        after = _by_entity(source)
        assert entity not in after
        assert f"{entity}/inner" not in after
    finally:
        source.close()


@requires_root
def test_a_new_v2_cgroup_is_seen_at_the_next_read() -> None:
    source = CgroupSource(Roots(), max_depth=1, rewalk_every=10**6)
    v2 = source.hierarchies.v2
    if v2 is None or not (v2 / "cgroup.procs").exists():
        source.close()
        pytest.skip("no cgroup2 mount on this host")
    child = v2 / f"sreagent-watch2-{os.getpid()}"
    try:
        assert f"/{child.name}" not in source.readings()
        child.mkdir()
        try:
            assert f"/{child.name}" in source.readings()
        finally:
            child.rmdir()
        assert f"/{child.name}" not in source.readings()
    finally:
        source.close()
