"""cgroup source: v1 controllers and the v2 hierarchy, side by side on hybrid hosts.

Hierarchies are found in ``/proc/self/mounts`` (type ``cgroup`` with the controllers in the
options, or ``cgroup2``). Every cgroup down to ``max_depth`` levels is read, at most
``max_cgroups`` of them per hierarchy, and the figures of one cgroup path are merged across
hierarchies into one entity ``cgroup/<path>``.

Files read (Documentation/admin-guide/cgroup-v1/*.rst, cgroup-v2.rst):

- CPU: v1 ``cpu.stat`` (nr_periods, nr_throttled, throttled_time in ns), ``cpu.cfs_quota_us``
  and ``cpu.cfs_period_us``, ``cpuacct.usage`` (ns); v2 ``cpu.stat`` (usage_usec,
  nr_periods, nr_throttled, throttled_usec) and ``cpu.max``.
- Memory: v1 ``memory.usage_in_bytes``, ``memory.limit_in_bytes``, ``memory.failcnt``,
  ``memory.oom_control`` (oom_kill since 4.13); v2 ``memory.current``, ``memory.max`` and
  ``memory.events`` (``max``: times usage hit the limit, the v2 analogue of failcnt;
  ``oom_kill``).
- IO: v1 ``blkio.throttle.io_service_bytes`` (Read/Write per device); v2 ``io.stat``
  (rbytes/wbytes per device).
- Pressure: v2 ``{cpu,memory,io}.pressure``.

Container and Kubernetes pod identity is parsed from the cgroup path (cgroupfs and systemd
drivers; Docker, containerd, CRI-O, Podman) into labels.

The directory walk is re-done only when something changed: every walked directory carries an
inotify watch, so a cgroup created or removed (``mkdir``/``rmdir`` in a directory above
``max_depth``) or a limit file written (``cpu.cfs_quota_us``, ``memory.max``...) is seen at the
next read, for one non-blocking read of the inotify descriptor per sample. A periodic walk
(``rewalk_every`` reads) stays as a safety net, and is the only way when inotify is refused
(``fs.inotify.max_user_watches`` exhausted); the capability reason says which applies.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sreagent.collector._common import (
    Counters,
    Interval,
    KeptFiles,
    capability,
    os_reason,
    pick_values,
    read_optional,
)
from sreagent.collector._disk import unescape_mount
from sreagent.collector._inotify import (
    IN_CREATE,
    IN_DELETE,
    IN_ISDIR,
    IN_MODIFY,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
    IN_Q_OVERFLOW,
    Inotify,
    InotifyEvent,
)
from sreagent.collector._psi import pressure_lines
from sreagent.collector._source import Roots, SampleRow, SourceOutput
from sreagent.telemetry import SourceCapability

UNLIMITED = 1 << 62
"""v1 reports "no limit" as PAGE_COUNTER_MAX pages (9223372036854771712 with 4 KiB pages);
anything this large is no limit."""
V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "blkio")
LIMIT_FILES = frozenset(
    {
        b"cpu.cfs_quota_us",
        b"cpu.cfs_period_us",
        b"memory.limit_in_bytes",
        b"cpu.max",
        b"memory.max",
    }
)
"""The files read only at a walk: a write to one of them makes the next read walk again."""
_WATCH_MASK = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_MODIFY | IN_ONLYDIR
_TREE_CHANGE = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO


def needs_walk(events: list[InotifyEvent], leaf_watches: set[int]) -> bool:
    """Whether inotify events change what the walk found: a cgroup directory created,
    removed or renamed in a directory that is not at ``max_depth`` (``leaf_watches``: their
    children are not read anyway), a limit file written, or a queue overflow (events lost).
    Other writes (``cgroup.procs``) and the kernel's own updates (``memory.events``) do not.
    """
    for event in events:
        if event.mask & IN_Q_OVERFLOW:
            return True
        if event.mask & IN_ISDIR and event.mask & _TREE_CHANGE:
            if event.wd not in leaf_watches:
                return True
        elif event.mask & IN_MODIFY and event.name in LIMIT_FILES:
            return True
    return False


@dataclass(frozen=True)
class Hierarchies:
    v1: dict[str, Path] = field(default_factory=dict)
    """Controller name -> mount point (combined mounts appear under each controller)."""
    v2: Path | None = None


def parse_cgroup_mounts(raw: bytes, sys_root: Path) -> Hierarchies:
    """cgroup mounts from /proc/self/mounts, with ``/sys`` mapped onto the injected sysfs root."""
    v1: dict[str, Path] = {}
    v2: Path | None = None
    for line in raw.splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[2] not in (b"cgroup", b"cgroup2"):
            continue
        mount_point = unescape_mount(parts[1])
        if mount_point == "/sys" or mount_point.startswith("/sys/"):
            path = sys_root / mount_point[len("/sys/") :]
        else:
            path = Path(mount_point)
        if parts[2] == b"cgroup2":
            v2 = v2 or path
            continue
        for option in parts[3].decode().split(","):
            if option in V1_CONTROLLERS and option not in v1:
                v1[option] = path
    return Hierarchies(v1, v2)


def parse_flat_keyed(raw: bytes) -> dict[str, int]:
    """``key value`` lines (cpu.stat, memory.events, memory.oom_control)."""
    out = {}
    for line in raw.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0].decode()] = int(parts[1])
            except ValueError:
                continue
    return out


def parse_blkio_service_bytes(raw: bytes) -> tuple[int, int]:
    """(read, write) bytes summed over devices from blkio.throttle.io_service_bytes."""
    read = write = 0
    for line in raw.splitlines():
        parts = line.split()
        if len(parts) == 3:
            if parts[1] == b"Read":
                read += int(parts[2])
            elif parts[1] == b"Write":
                write += int(parts[2])
    return read, write


def parse_io_stat(raw: bytes) -> tuple[int, int]:
    """(read, write) bytes summed over devices from a v2 io.stat."""
    read = write = 0
    for line in raw.splitlines():
        for item in line.split()[1:]:
            key, _, value = item.partition(b"=")
            if key == b"rbytes":
                read += int(value)
            elif key == b"wbytes":
                write += int(value)
    return read, write


def parse_cpu_max(raw: bytes) -> float | None:
    """Cores allowed by a v2 cpu.max (``max 100000`` means no limit)."""
    quota, _, period = raw.strip().partition(b" ")
    if quota == b"max" or not period:
        return None
    return int(quota) / int(period)


_POD = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")
_SCOPED = re.compile(r"^(docker|cri-containerd|crio|libpod)-([0-9a-f]{64})\.scope$")
_CONTAINERD_SYSTEMD = re.compile(r":(cri-containerd|docker|crio):([0-9a-f]{64})$")
_BARE_ID = re.compile(r"^[0-9a-f]{64}$")
_RUNTIME = {"docker": "docker", "cri-containerd": "containerd", "crio": "cri-o", "libpod": "podman"}


def parse_cgroup_identity(path: str) -> dict[str, str]:
    """Container/pod labels a cgroup path carries, sorted by key (empty for host cgroups).

    Recognised shapes (the runtimes' documented cgroup layouts):
    ``/docker/<id>``, ``/system.slice/docker-<id>.scope``,
    ``/kubepods/burstable/pod<uid>/<id>`` (cgroupfs driver),
    ``/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice/
    cri-containerd-<id>.scope`` (systemd driver), ``crio-<id>.scope``, ``libpod-<id>.scope``.
    """
    labels: dict[str, str] = {}
    parts = [p for p in path.split("/") if p]
    if not parts:
        return labels
    last = parts[-1]
    runtime = container = None
    match = _SCOPED.match(last) or _CONTAINERD_SYSTEMD.search(last)
    if match:
        runtime, container = _RUNTIME[match.group(1)], match.group(2)
    elif _BARE_ID.match(last):
        container = last
        if "docker" in parts[:-1]:
            runtime = "docker"
    if "kubepods" in path:
        pod = _POD.search(path)
        if pod:
            labels["pod_uid"] = pod.group(1).replace("_", "-")
        if "besteffort" in path:
            labels["pod_qos"] = "besteffort"
        elif "burstable" in path:
            labels["pod_qos"] = "burstable"
        elif pod:
            labels["pod_qos"] = "guaranteed"
    if container:
        labels["container_id"] = container
    if runtime:
        labels["container_runtime"] = runtime
    return dict(sorted(labels.items()))


def walk_cgroups(
    root: Path, max_depth: int, limit: int
) -> Iterator[tuple[str, str, frozenset[str]]]:
    """(relative path starting with ``/``, directory, its file names), breadth-first, bounded.

    The file names come from the same directory listing that finds the children, so the
    readers open only files that exist (a failed open costs as much as a read).
    """
    queue = [("/", str(root), 0)]
    seen = 0
    while queue and seen < limit:
        rel, absolute, depth = queue.pop(0)
        seen += 1
        try:
            with os.scandir(absolute) as it:
                entries = list(it)
        except OSError:
            continue
        files = frozenset(e.name for e in entries if not e.is_dir(follow_symlinks=False))
        yield rel, absolute, files
        if depth >= max_depth:
            continue
        children = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
        for child in children:
            queue.append(((rel.rstrip("/") + "/" + child), f"{absolute}/{child}", depth + 1))


class _Reading:
    """One cgroup's figures of one read. Class-level defaults: a reading sets only what its
    files had (a v1 memory cgroup sets 3 of the 12), which is cheaper than a dataclass
    ``__init__`` setting all of them for every cgroup at every read."""

    usage_ns: int | None = None
    periods: int | None = None
    throttled: int | None = None
    throttled_ns: int | None = None
    limit_cores: float | None = None
    mem_used: int | None = None
    mem_limit: int | None = None
    failcnt: int | None = None
    oom_kills: int | None = None
    io: tuple[int, int] | None = None
    pressure: dict[str, tuple[float, float | None]] = {}  # noqa: RUF012 - only ever replaced


def _merge(labels: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """Identity labels plus a sample's own, sorted by key as samples require."""
    return dict(sorted({**labels, **extra}.items())) if labels else extra


def _int(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        return None


class _Reader:
    """Reads files of one cgroup directory that its listing showed; notes vanished ones."""

    __slots__ = ("d", "files", "kept", "paths", "vanished")

    def __init__(self, d: str, files: frozenset[str], kept: KeptFiles) -> None:
        self.d = d
        self.files = files
        self.kept = kept
        self.vanished = False
        self.paths = {name: f"{d}/{name}" for name in files}
        """Full path of every file the listing showed (absent names: not there)."""

    def __call__(self, name: str) -> bytes | None:
        path = self.paths.get(name)
        if path is None:
            return None
        raw = self.kept.read(path)
        if raw is None:
            self.vanished = True  # the cgroup was removed since the walk
        return raw


_V1_CPU_STAT = (b"nr_periods ", b"nr_throttled ", b"throttled_time ")


def _value_after(raw: bytes, key: bytes) -> int | None:
    """The integer after ``key`` (which starts with a newline and ends with its separator, so
    ``oom_kill`` cannot match ``oom_kill_disable`` on the first line): memory.oom_control has
    three lines, and one ``find`` is all this needs."""
    start = raw.find(key)
    if start < 0:
        return None
    start += len(key)
    end = raw.find(b"\n", start)
    try:
        return int(raw[start : end if end >= 0 else len(raw)])
    except ValueError:
        return None


def read_v1(reading: _Reading, controller: str, read: _Reader, *, limits: bool) -> None:
    """One v1 controller's files; the limit files only when ``limits`` (they rarely change)."""
    if controller == "cpu":
        raw = read("cpu.stat")
        if raw is not None:
            stat = pick_values(raw, _V1_CPU_STAT)
            reading.periods = stat.get(b"nr_periods ")
            reading.throttled = stat.get(b"nr_throttled ")
            reading.throttled_ns = stat.get(b"throttled_time ")
        if limits:
            quota = _int(read("cpu.cfs_quota_us"))
            period = _int(read("cpu.cfs_period_us"))
            if quota is not None and quota > 0 and period:
                reading.limit_cores = quota / period
    elif controller == "cpuacct":
        usage = _int(read("cpuacct.usage"))
        if usage is not None:
            reading.usage_ns = usage
    elif controller == "memory":
        reading.mem_used = _int(read("memory.usage_in_bytes"))
        if limits:
            limit = _int(read("memory.limit_in_bytes"))
            reading.mem_limit = limit if limit is not None and limit < UNLIMITED else None
        reading.failcnt = _int(read("memory.failcnt"))
        raw = read("memory.oom_control")
        if raw is not None:
            reading.oom_kills = _value_after(raw, b"\noom_kill ")
    elif controller == "blkio":
        raw = read("blkio.throttle.io_service_bytes")
        if raw is not None:
            reading.io = parse_blkio_service_bytes(raw)


_PRESSURE_FILES = (("cpu", "cpu.pressure"), ("memory", "memory.pressure"), ("io", "io.pressure"))


HostPressure = Mapping[str, Mapping[str, tuple[float, int]]]
"""Per resource, ``pressure_lines`` of /proc/pressure/<resource> (the psi source's reading)."""


def read_v2(
    reading: _Reading, read: _Reader, *, limits: bool, host_pressure: HostPressure | None = None
) -> None:
    """A v2 cgroup's files; the limit files only when ``limits``. ``host_pressure`` stands
    for the pressure files of the hierarchy's real root (see :class:`CgroupSource`)."""
    raw = read("cpu.stat")
    if raw is not None:
        stat = parse_flat_keyed(raw)
        if "usage_usec" in stat:
            reading.usage_ns = stat["usage_usec"] * 1000
        if "nr_periods" in stat:
            reading.periods = stat["nr_periods"]
            reading.throttled = stat.get("nr_throttled")
            reading.throttled_ns = stat.get("throttled_usec", 0) * 1000
    if limits:
        raw = read("cpu.max")
        if raw is not None:
            reading.limit_cores = parse_cpu_max(raw)
    current = _int(read("memory.current"))
    if current is not None:
        reading.mem_used = current
        if limits:
            limit = _int(read("memory.max"))  # "max" parses as None: no limit
            reading.mem_limit = limit if limit is not None and limit < UNLIMITED else None
        raw = read("memory.events")
        if raw is not None:
            events = parse_flat_keyed(raw)
            reading.failcnt = events.get("max")
            reading.oom_kills = events.get("oom_kill")
    raw = read("io.stat")
    if raw is not None:
        reading.io = parse_io_stat(raw)
    pressure = {}
    for resource, name in _PRESSURE_FILES:
        if host_pressure is not None:
            if name not in read.files:
                continue  # as when reading: a file the listing did not show gives nothing
            p = host_pressure[resource]
        else:
            raw = read(name)
            if not raw:
                continue
            p = pressure_lines(raw)
        if "some" in p:
            full = p["full"][0] / 100 if "full" in p else None
            pressure[resource] = (p["some"][0] / 100, full)
    if pressure:
        reading.pressure = pressure


class _Names:
    """What a cgroup's samples are named with, built once per cgroup instead of per read:
    the entity, its identity labels, the label dicts with ``direction``/``resource`` added
    (shared by the samples: they are frozen models and nothing mutates labels), and the
    counter keys."""

    __slots__ = (
        "_pressure",
        "entity",
        "io_keys",
        "io_labels",
        "labels",
        "periods_key",
        "throttled_key",
        "throttled_ns_key",
        "usage_key",
    )

    def __init__(self, rel: str) -> None:
        self.entity = f"cgroup{rel}"
        self.labels = parse_cgroup_identity(rel)
        self.usage_key = (rel, "usage")
        self.periods_key = (rel, "periods")
        self.throttled_key = (rel, "throttled")
        self.throttled_ns_key = (rel, "throttled_ns")
        self.io_keys = ((rel, "read"), (rel, "write"))
        self.io_labels = (
            _merge(self.labels, {"direction": "read"}),
            _merge(self.labels, {"direction": "write"}),
        )
        self._pressure: dict[str, dict[str, str]] = {}

    def pressure_labels(self, resource: str) -> dict[str, str]:
        labels = self._pressure.get(resource)
        if labels is None:
            labels = self._pressure[resource] = _merge(self.labels, {"resource": resource})
        return labels


class CgroupSource:
    """``cgroup``: CPU throttling, memory against limits, OOM kills, IO and PSI per cgroup."""

    name = "cgroup"
    optional = True

    def __init__(
        self,
        roots: Roots,
        *,
        max_depth: int = 4,
        max_cgroups: int = 200,
        rewalk_every: int = 30,
        watch: bool = True,
        host_pressure: Callable[[int], HostPressure | None] | None = None,
    ) -> None:
        """``watch=False`` leaves inotify out: changes are then seen at the periodic walk,
        or at once when a read finds a listed cgroup gone.

        ``host_pressure(now_ns)`` (the psi source's ``pressure_at``) gives /proc/pressure as
        read in the same sample. The v2 hierarchy's root, when it is the kernel's real root
        cgroup, serves its ``*.pressure`` files from the same system-wide PSI group
        (kernel/cgroup/cgroup.c, ``cgroup_psi``), so those three files are not read again.
        The real root is told by the absence of ``cgroup.events``, a file the kernel gives
        every cgroup but the root (CFTYPE_NOT_ON_ROOT): under a cgroup namespace the mounted
        root is an ordinary cgroup with its own pressure, and its files are read."""
        self._host_pressure = host_pressure
        self._roots = roots
        self._rewalk_every = rewalk_every
        self._layout: list[tuple[str | None, str, _Reader]] | None = None
        self._limits: dict[str, tuple[float | None, int | None]] = {}
        self._files = KeptFiles(limit=256)
        self._reads = 0
        self._stale = False
        self._max_depth = max_depth
        self._max_cgroups = max_cgroups
        raw = read_optional(roots.proc / "self/mounts")
        self.hierarchies = parse_cgroup_mounts(raw, roots.sys) if raw else Hierarchies()
        self._counters = Counters()
        self._interval = Interval()
        self._name_cache: dict[str, _Names] = {}
        """Entity, labels and counter keys of every cgroup of the last read."""
        self._truncated = False
        self._watch: Inotify | None = None
        self._leaf_watches: set[int] = set()
        self._watch_error: str | None = None if watch else "disabled"
        self._changed = False
        """inotify saw a change that the layout or the limits do not reflect yet."""

    def capability(self) -> SourceCapability:
        h = self.hierarchies
        if not h.v1 and h.v2 is None:
            return capability(self.name, "off", "no cgroup or cgroup2 mount in /proc/self/mounts")
        parts = []
        if h.v1:
            parts.append("v1 " + ",".join(f"{c}" for c in sorted(h.v1)))
        if h.v2 is not None:
            parts.append(f"v2 at {h.v2}")
        if self._truncated:
            parts.append(f"truncated to {self._max_cgroups} cgroups per hierarchy")
        if self._watch_error is not None:
            parts.append(
                f"new cgroups and limit changes seen within {self._rewalk_every} reads "
                f"(inotify: {self._watch_error})"
            )
        elif self._watch is not None:
            parts.append("new cgroups and limit changes seen at the next read (inotify)")
        return capability(self.name, "kernel", "; ".join(parts))

    def _walk(self) -> None:
        """List the cgroups to read (bounded) and remember each directory's file names."""
        # Descriptors of files no longer listed are closed (removed cgroups); the others are
        # kept, so the periodic safety-net walk does not reopen every file.
        layout_files: set[str] = set()
        layout: list[tuple[str | None, str, _Reader]] = []
        truncated = False
        limit = self._max_cgroups
        roots: list[tuple[str | None, Path]] = []
        if self.hierarchies.v2 is not None:
            roots.append((None, self.hierarchies.v2))
        # v1 controllers after v2: on a hybrid host they are the ones that enforce limits.
        roots.extend(self.hierarchies.v1.items())
        for controller, root in roots:
            for count, (rel, d, files) in enumerate(
                walk_cgroups(root, self._max_depth, limit + 1), start=1
            ):
                if count > limit:
                    truncated = True
                    break
                reader = _Reader(d, files, self._files)
                layout_files.update(reader.paths.values())
                layout.append((controller, rel, reader))
        self._files.forget_unless(layout_files.__contains__)
        self._layout = layout
        self._truncated = truncated
        self._arm_watches(layout)

    def _arm_watches(self, layout: list[tuple[str | None, str, _Reader]]) -> None:
        """Watch every walked directory with a fresh inotify instance.

        The old instance stays open until the new one is armed and is drained last, so a
        cgroup created while the walk ran is still noticed at the next read.
        """
        old, old_leaves = self._watch, self._leaf_watches
        self._watch = None
        self._leaf_watches = set()
        if self._watch_error == "disabled":
            return
        try:
            watch = Inotify()
        except OSError as err:
            self._watch_error = os_reason(err)
        else:
            try:
                for _, rel, reader in layout:
                    wd = watch.add_watch(reader.d, _WATCH_MASK)
                    depth = 0 if rel == "/" else rel.count("/")
                    if depth >= self._max_depth:
                        self._leaf_watches.add(wd)
            except OSError as err:
                watch.close()
                self._leaf_watches = set()
                self._watch_error = os_reason(err)
            else:
                self._watch = watch
                self._watch_error = None
        if old is not None:
            self._changed = needs_walk(list(old.pending()), old_leaves)
            old.close()

    def _tree_changed(self) -> bool:
        if self._watch is None:
            return False
        return needs_walk(list(self._watch.pending()), self._leaf_watches)

    def readings(self, now_ns: int | None = None) -> dict[str, _Reading]:
        """One reading per cgroup path, merged across hierarchies.

        The directory walk and the limit files (quota, memory limit) are refreshed when
        inotify saw a cgroup created or removed or a limit written, when a listed cgroup has
        vanished, and every ``rewalk_every`` reads; the counters are read every time.
        """
        refresh = (
            self._layout is None
            or self._reads % self._rewalk_every == 0
            or self._stale
            or self._changed
            or self._tree_changed()
        )
        self._changed = False
        self._reads += 1
        if refresh:
            self._walk()
            self._limits = {}
        out: dict[str, _Reading] = {}
        stale = False
        for controller, rel, reader in self._layout or []:
            reading = out.setdefault(rel, _Reading())
            if controller is None:
                host = None
                if (
                    rel == "/"
                    and now_ns is not None
                    and self._host_pressure is not None
                    and "cgroup.events" not in reader.files
                ):
                    host = self._host_pressure(now_ns)
                read_v2(reading, reader, limits=refresh, host_pressure=host)
            else:
                read_v1(reading, controller, reader, limits=refresh)
            stale = stale or reader.vanished
            reader.vanished = False
        for rel, reading in out.items():
            if refresh:
                self._limits[rel] = (reading.limit_cores, reading.mem_limit)
            else:
                reading.limit_cores, reading.mem_limit = self._limits.get(rel, (None, None))
        self._stale = stale
        return out

    def _names(self, rel: str) -> _Names:
        names = self._name_cache.get(rel)
        if names is None:
            names = self._name_cache[rel] = _Names(rel)
        return names

    def read(self, now_ns: int) -> SourceOutput:
        seconds = self._interval.advance(now_ns)
        delta = self._counters.delta
        out: list[SampleRow] = []
        readings = self.readings(now_ns)
        for rel, r in readings.items():
            n = self._names(rel)
            entity = n.entity
            labels = n.labels
            if r.usage_ns is not None:
                d = delta(n.usage_key, r.usage_ns, 64)
                if d is not None and seconds:
                    out.append(
                        (now_ns, "cgroup_cpu_usage_ratio", entity, labels, d / 1e9 / seconds)
                    )
            if r.periods is not None and r.throttled is not None:
                dp = delta(n.periods_key, r.periods, 64)
                dt = delta(n.throttled_key, r.throttled, 64)
                if dp and dt is not None:
                    out.append((now_ns, "cgroup_cpu_throttled_ratio", entity, labels, dt / dp))
            if r.throttled_ns is not None:
                d = delta(n.throttled_ns_key, r.throttled_ns, 64)
                if d is not None and seconds:
                    out.append(
                        (
                            now_ns,
                            "cgroup_cpu_throttled_seconds_per_second",
                            entity,
                            labels,
                            d / 1e9 / seconds,
                        )
                    )
            if r.limit_cores is not None:
                out.append((now_ns, "cgroup_cpu_limit_cores", entity, labels, r.limit_cores))
            if r.mem_used is not None:
                out.append((now_ns, "cgroup_memory_used_bytes", entity, labels, r.mem_used))
                if r.mem_limit:
                    out.append((now_ns, "cgroup_memory_limit_bytes", entity, labels, r.mem_limit))
                    out.append(
                        (
                            now_ns,
                            "cgroup_memory_used_ratio",
                            entity,
                            labels,
                            r.mem_used / r.mem_limit,
                        )
                    )
            if r.failcnt is not None:
                out.append((now_ns, "cgroup_memory_failcnt_total", entity, labels, r.failcnt))
            if r.oom_kills is not None:
                out.append((now_ns, "cgroup_oom_kills_total", entity, labels, r.oom_kills))
            if r.io is not None:
                for key, value, io_labels in zip(n.io_keys, r.io, n.io_labels, strict=True):
                    d = delta(key, value, 64)
                    if d is not None and seconds:
                        out.append(
                            (now_ns, "cgroup_io_bytes_per_second", entity, io_labels, d / seconds)
                        )
            for resource, (some, full) in r.pressure.items():
                pressure_labels = n.pressure_labels(resource)
                out.append((now_ns, "cgroup_pressure_some_ratio", entity, pressure_labels, some))
                if full is not None:
                    out.append(
                        (now_ns, "cgroup_pressure_full_ratio", entity, pressure_labels, full)
                    )
        if len(self._name_cache) != len(readings):
            self._counters.forget_unless(lambda key: key[0] in readings)
            self._name_cache = {k: v for k, v in self._name_cache.items() if k in readings}
        return SourceOutput(rows=out)

    def close(self) -> None:
        self._files.close()
        if self._watch is not None:
            self._watch.close()
            self._watch = None
