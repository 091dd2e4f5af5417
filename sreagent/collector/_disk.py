"""Disk source: ``/sys/block/<dev>/stat`` (fallback ``/proc/diskstats``) and statvfs of mounts.

Field meanings: Documentation/admin-guide/iostats.rst (and Documentation/block/stat.rst).
The IO and sector counts are ``unsigned long`` (64-bit here); the millisecond tick counters
are printed as ``unsigned int`` (block/genhd.c), so they wrap at 2**32 ms (about 49.7 days)
and are tracked as 32-bit counters.

Filesystems: a mount is "real" when its source is a path (a block device) and its type is not
marked ``nodev`` in /proc/filesystems; each device is reported once (bind mounts and
subvolumes share the numbers), under its first mount point.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sreagent.collector._common import (
    NO_LABELS,
    Counters,
    Interval,
    KeptFiles,
    capability,
    read_int,
    read_optional,
)
from sreagent.collector._source import Roots, SampleRow, SourceOutput
from sreagent.telemetry import SourceCapability

SECTOR_BYTES = 512
"""The stat files count 512-byte sectors whatever the device's block size (iostats.rst)."""
SKIPPED_PREFIXES = ("loop", "ram", "fd", "sr")
MOUNTS_EVERY = 10
"""Reads between two parses of /proc/self/mounts."""
"""Loop, RAM disks, floppies and optical drives tell nothing about storage health."""


@dataclass(frozen=True)
class DiskStat:
    reads: int
    read_sectors: int
    read_ticks_ms: int
    writes: int
    write_sectors: int
    write_ticks_ms: int
    in_flight: int
    io_ticks_ms: int


def parse_block_stat(raw: bytes) -> DiskStat:
    """One ``/sys/block/<dev>/stat`` line (11, 15 or 17 fields)."""
    f = raw.split()
    if len(f) < 11:
        raise ValueError(f"expected at least 11 fields, got {len(f)}")
    return DiskStat(
        reads=int(f[0]),
        read_sectors=int(f[2]),
        read_ticks_ms=int(f[3]),
        writes=int(f[4]),
        write_sectors=int(f[6]),
        write_ticks_ms=int(f[7]),
        in_flight=int(f[8]),
        io_ticks_ms=int(f[9]),
    )


def parse_diskstats(raw: bytes) -> dict[str, DiskStat]:
    """/proc/diskstats: ``major minor name`` then the same fields as the sysfs stat file."""
    out = {}
    for line in raw.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4:
            out[parts[2].decode()] = parse_block_stat(parts[3])
    return out


def whole_disks(names: list[str]) -> list[str]:
    """Drop partitions from a diskstats name list when sysfs is not there to say which is which.

    ``sda1`` is a partition of ``sda`` and ``nvme0n1p2`` of ``nvme0n1``: a name equal to
    another name plus digits (optionally after ``p``) is a partition.
    """
    present = set(names)
    keep = []
    for name in names:
        stem = name.rstrip("0123456789")
        if stem != name and (stem in present or (stem.endswith("p") and stem[:-1] in present)):
            continue
        keep.append(name)
    return keep


def unescape_mount(field: bytes) -> str:
    r"""Mount fields escape space, tab, newline and backslash as octal (``\040``)."""
    if b"\\" not in field:
        return field.decode("utf-8", "replace")
    out = bytearray()
    i = 0
    while i < len(field):
        if field[i : i + 1] == b"\\" and field[i + 1 : i + 4].isdigit():
            out.append(int(field[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return out.decode("utf-8", "replace")


def parse_nodev_types(raw: bytes) -> set[str]:
    """Filesystem types /proc/filesystems marks ``nodev`` (not backed by a block device)."""
    return {
        line.split()[-1].decode()
        for line in raw.splitlines()
        if line.startswith(b"nodev") and line.split()
    }


def real_mounts(mounts: bytes, nodev_types: set[str]) -> list[tuple[str, str, str]]:
    """(device, mount point, type) of block-device mounts, one per device."""
    seen: set[str] = set()
    out = []
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        device, mount_point, fstype = (unescape_mount(p) for p in parts[:3])
        if not device.startswith("/") or fstype in nodev_types or device in seen:
            continue
        seen.add(device)
        out.append((device, mount_point, fstype))
    return out


def fs_usage(st: os.statvfs_result) -> tuple[float, int, float | None]:
    """(used ratio, bytes free to unprivileged users, inode used ratio) like ``df``.

    df's Use% divides by used + available, not by the size: blocks reserved for root are
    neither, and a filesystem at 100 % for users must read 100 %.
    """
    used = st.f_blocks - st.f_bfree
    denominator = used + st.f_bavail
    used_ratio = used / denominator if denominator > 0 else 0.0
    inode_ratio = (st.f_files - st.f_ffree) / st.f_files if st.f_files > 0 else None
    return used_ratio, st.f_bavail * st.f_frsize, inode_ratio


DEVICES_EVERY = 10
"""Reads between two listings of /sys/block: a disk added is reported within that many."""


class DiskSource:
    """``disk``: IOPS, throughput, await, utilisation, queue depth; filesystem space."""

    name = "disk"
    optional = False

    def __init__(
        self, roots: Roots, *, statvfs: Callable[[str], os.statvfs_result] = os.statvfs
    ) -> None:
        self._block = roots.sys / "block"
        self._diskstats = roots.proc / "diskstats"
        self._mounts = roots.proc / "self/mounts"
        self._filesystems = roots.proc / "filesystems"
        self._statvfs = statvfs
        self._counters = Counters()
        self._interval = Interval()
        self._use_sysfs = self._block.is_dir()
        self._nodev: set[str] | None = None
        self._mount_list: list[tuple[str, str, str]] | None = None
        self._files = KeptFiles()
        self._devices: set[str] = set()
        self._no_ioerr: set[str] = set()
        self._fs_reads = 0
        self._listing: list[str] | None = None
        self._stat_reads = 0

    def capability(self) -> SourceCapability:
        if self._use_sysfs:
            return capability(self.name, "kernel", f"{self._block}/*/stat, statvfs")
        if read_optional(self._diskstats) is not None:
            return capability(self.name, "fallback", f"{self._block} missing; {self._diskstats}")
        return capability(self.name, "off", f"neither {self._block} nor {self._diskstats}")

    def _read_stats(self) -> dict[str, DiskStat]:
        if self._use_sysfs:
            # The device list is re-read every DEVICES_EVERY reads (a listing costs five
            # syscalls), and at once when a listed device's stat file is gone.
            if self._listing is None or self._stat_reads % DEVICES_EVERY == 0:
                self._listing = [
                    n for n in os.listdir(self._block) if not n.startswith(SKIPPED_PREFIXES)
                ]
            self._stat_reads += 1
            stats = {}
            for name in self._listing:
                raw = self._files.read(f"{self._block}/{name}/stat")
                if raw is not None:
                    stats[name] = parse_block_stat(raw)
                else:
                    self._listing = None
            return stats
        all_stats = parse_diskstats(self._files.read_required(str(self._diskstats)))
        names = [k for k in all_stats if not k.startswith(SKIPPED_PREFIXES)]
        return {k: all_stats[k] for k in whole_disks(names)}

    def read(self, now_ns: int) -> SourceOutput:
        seconds = self._interval.advance(now_ns)
        out: list[SampleRow] = []
        stats = self._read_stats()
        deltas = self._counters.deltas
        for dev, s in stats.items():
            entity = f"disk/{dev}"
            out.append((now_ns, "disk_in_flight", entity, NO_LABELS, s.in_flight))
            # Two tuples per device: the 64-bit IO and sector counters and the 32-bit tick
            # counters (``unsigned int`` milliseconds, which wrap after 49.7 days of busy time).
            counts = deltas((dev, 64), (s.reads, s.writes, s.read_sectors, s.write_sectors), 64)
            times = deltas((dev, 32), (s.read_ticks_ms, s.write_ticks_ms, s.io_ticks_ms), 32)
            if not seconds or counts is None or times is None:
                continue
            reads, writes, rsect, wsect = counts
            rticks, wticks, busy = times
            if reads is not None:
                out.append((now_ns, "disk_reads_per_second", entity, NO_LABELS, reads / seconds))
            if writes is not None:
                out.append((now_ns, "disk_writes_per_second", entity, NO_LABELS, writes / seconds))
            if rsect is not None:
                out.append(
                    (
                        now_ns,
                        "disk_read_bytes_per_second",
                        entity,
                        NO_LABELS,
                        rsect * SECTOR_BYTES / seconds,
                    )
                )
            if wsect is not None:
                out.append(
                    (
                        now_ns,
                        "disk_write_bytes_per_second",
                        entity,
                        NO_LABELS,
                        wsect * SECTOR_BYTES / seconds,
                    )
                )
            if None not in (reads, writes, rticks, wticks):
                ios = reads + writes  # type: ignore[operator]
                # No completed IO means no await, not an await of zero.
                if ios > 0:
                    ticks = rticks + wticks  # type: ignore[operator]
                    out.append(
                        (now_ns, "disk_await_seconds", entity, NO_LABELS, ticks / ios / 1000)
                    )
            if busy is not None:
                out.append(
                    (
                        now_ns,
                        "disk_utilisation_ratio",
                        entity,
                        NO_LABELS,
                        min(1.0, busy / 1000 / seconds),
                    )
                )
        if self._use_sysfs:
            if stats.keys() != self._devices:
                # Devices came or went: forget their files and which of them lack ioerr_cnt.
                self._devices = set(stats)
                self._no_ioerr.clear()
                self._files.forget_unless(
                    lambda path: path.rsplit("/", 2)[-2] in stats or path == str(self._diskstats)
                )
            for dev in stats:
                # SCSI devices count failed commands; virtio and NVMe have no such file, and
                # a failed open each interval would cost as much as a read.
                if dev in self._no_ioerr:
                    continue
                errors = self._files.read(f"{self._block}/{dev}/device/ioerr_cnt")
                if errors is None:
                    self._no_ioerr.add(dev)
                if errors is not None:
                    out.append(
                        (
                            now_ns,
                            "disk_io_errors_total",
                            f"disk/{dev}",
                            NO_LABELS,
                            int(errors.strip(), 16),
                        )
                    )
        self._counters.forget_unless(lambda key: key[0] in stats)
        out.extend(self._filesystem_samples(now_ns))
        return SourceOutput(rows=out)

    def _real_mounts(self) -> list[tuple[str, str, str]]:
        """Block-device mounts, re-read every ``MOUNTS_EVERY`` reads (mounts rarely change)."""
        if self._mount_list is None or self._fs_reads % MOUNTS_EVERY == 0:
            if self._nodev is None:
                raw = read_optional(self._filesystems)
                self._nodev = parse_nodev_types(raw) if raw is not None else set()
            raw_mounts = read_optional(self._mounts)
            self._mount_list = real_mounts(raw_mounts, self._nodev) if raw_mounts else []
        self._fs_reads += 1
        return self._mount_list

    def _filesystem_samples(self, now_ns: int) -> list[SampleRow]:
        out = []
        for _device, mount_point, _fstype in self._real_mounts():
            try:
                st = self._statvfs(mount_point)
            except OSError:
                self._mount_list = None  # unmounted since the list was read: re-read next time
                continue
            used_ratio, free_bytes, inode_ratio = fs_usage(st)
            entity = f"fs/{mount_point}"
            out.append((now_ns, "filesystem_used_ratio", entity, NO_LABELS, used_ratio))
            out.append((now_ns, "filesystem_free_bytes", entity, NO_LABELS, free_bytes))
            if inode_ratio is not None:
                out.append((now_ns, "filesystem_inodes_used_ratio", entity, NO_LABELS, inode_ratio))
        return out

    def close(self) -> None:
        self._files.close()


def block_device_size(block: Path, name: str) -> int:
    """Size in bytes of a block device from sysfs (``size`` is in 512-byte sectors)."""
    sectors = read_int(block / name / "size")
    return (sectors or 0) * SECTOR_BYTES
