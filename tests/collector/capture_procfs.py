"""Capture the procfs/sysfs files the collector reads into ``fixtures/procfs/<case>/``.

Used to build the captured fixtures (the test suite never runs it):

    python tests/collector/capture_procfs.py fixtures/procfs/debian12-vm-t0 \
        --pid 1 --cgroup sreagent-fixture

Only regular files that can be read are copied. The ``device`` links the inventory follows
are recreated as links to a local ``_device`` folder holding a ``driver`` link with the real
target, so ``readlink`` gives the real driver name. Hand-edited cases are described in
fixtures/procfs/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

PROC_FILES = (
    "stat",
    "loadavg",
    "meminfo",
    "vmstat",
    "sys/fs/file-nr",
    "sys/kernel/task_delayacct",
    "pressure/cpu",
    "pressure/memory",
    "pressure/io",
    "diskstats",
    "self/mounts",
    "filesystems",
    "net/dev",
    "net/snmp",
    "net/netstat",
    "net/tcp",
    "net/tcp6",
    "cpuinfo",
)
PID_FILES = ("stat", "io", "cmdline", "cgroup", "limits", "schedstat")
SYS_FILES = ("devices/system/cpu/online",)
BLOCK_FILES = ("stat", "size", "queue/rotational")
NET_FILES = ("mtu", "carrier", "carrier_changes", "speed")
HIERARCHIES = ("cpu", "cpuacct", "memory", "blkio", "unified")
CGROUP_FILES = frozenset(
    {
        "cpu.stat",
        "cpu.cfs_quota_us",
        "cpu.cfs_period_us",
        "cpuacct.usage",
        "memory.usage_in_bytes",
        "memory.limit_in_bytes",
        "memory.failcnt",
        "memory.oom_control",
        "blkio.throttle.io_service_bytes",
        "cpu.pressure",
        "memory.pressure",
        "io.pressure",
        "cpu.max",
        "memory.current",
        "memory.max",
        "memory.events",
        "io.stat",
    }
)
"""The cgroup files the collector reads; the others are left out of the fixtures."""


def copy_file(src: Path, dst: Path) -> None:
    try:
        data = src.read_bytes()
    except OSError:
        return  # write-only control files, EINVAL on a virtual NIC's speed
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data)


def copy_device_link(src: Path, dst: Path) -> None:
    device = src / "device"
    if not device.is_symlink():
        return
    local = dst / "_device"
    local.mkdir(parents=True, exist_ok=True)
    (dst / "device").symlink_to("_device")
    driver = device / "driver"
    if driver.is_symlink():
        (local / "driver").symlink_to(os.readlink(driver))
    copy_file(device / "vendor", local / "vendor")


def copy_dir_files(src: Path, dst: Path) -> None:
    for entry in os.scandir(src):
        if entry.is_file(follow_symlinks=False) and entry.name in CGROUP_FILES:
            copy_file(Path(entry.path), dst / entry.name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dest", type=Path)
    parser.add_argument("--pid", action="append", default=[])
    parser.add_argument("--cgroup", action="append", default=[])
    parser.add_argument("--disk", action="append", default=["vda"])
    parser.add_argument("--nic", action="append", default=["eth0", "lo"])
    args = parser.parse_args()
    dest: Path = args.dest
    if dest.exists():
        shutil.rmtree(dest)
    for name in PROC_FILES:
        copy_file(Path("/proc") / name, dest / "proc" / name)
    for pid in args.pid:
        for name in PID_FILES:
            copy_file(Path("/proc") / pid / name, dest / "proc" / pid / name)
    for name in SYS_FILES:
        copy_file(Path("/sys") / name, dest / "sys" / name)
    for disk in args.disk:
        for name in BLOCK_FILES:
            copy_file(Path("/sys/block") / disk / name, dest / "sys/block" / disk / name)
        copy_device_link(Path("/sys/block") / disk, dest / "sys/block" / disk)
    for nic in args.nic:
        for name in NET_FILES:
            copy_file(Path("/sys/class/net") / nic / name, dest / "sys/class/net" / nic / name)
        copy_device_link(Path("/sys/class/net") / nic, dest / "sys/class/net" / nic)
    for hierarchy in HIERARCHIES:
        root = Path("/sys/fs/cgroup") / hierarchy
        copy_dir_files(root, dest / "sys/fs/cgroup" / hierarchy)
        for child in args.cgroup:
            if (root / child).is_dir():
                copy_dir_files(root / child, dest / "sys/fs/cgroup" / hierarchy / child)


if __name__ == "__main__":
    main()
