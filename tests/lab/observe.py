"""Independent observation of live faults: kernel files and system tools read directly, never
through sreagent's collector or the lab's own bookkeeping."""

from __future__ import annotations

import glob
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

CGROUP = Path("/sys/fs/cgroup")


def poll(check: Callable[[], T], timeout_s: float, every_s: float = 0.1) -> T:
    """The first truthy result of ``check`` within ``timeout_s`` (else the last result)."""
    end = time.monotonic() + timeout_s
    result = check()
    while not result and time.monotonic() < end:
        time.sleep(every_s)
        result = check()
    return result


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def demanded_cpu_seconds(pid: int) -> float:
    """Seconds the process's threads spent on a CPU or waiting in a run queue for one
    (/proc/<pid>/task/*/schedstat): what it asked for, whatever else competes for the CPUs."""
    total = 0
    for schedstat in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            on_cpu, waiting, _ = Path(schedstat).read_text().split()
        except (OSError, ValueError):
            continue
        total += int(on_cpu) + int(waiting)
    return total / 1e9


def host_busy_idle() -> tuple[int, int]:
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in cpu[:8]]
    idle = values[3] + values[4]
    return sum(values) - idle, idle


def flat_keyed(path: Path) -> dict[str, int]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def pressure_total_us(path: Path, kind: str = "some") -> int:
    for line in path.read_text().splitlines():
        if line.startswith(kind):
            return int(line.rsplit("total=", 1)[1])
    raise AssertionError(f"no {kind} line in {path}")


def vmstat(key: str) -> int:
    return flat_keyed(Path("/proc/vmstat"))[key]


def block_stat(dev: str) -> list[int]:
    """reads completed, ..., writes completed, ..., io_ticks (Documentation/block/stat.rst)."""
    return [int(v) for v in Path(f"/sys/block/{dev}/stat").read_text().split()]


def snmp_tcp(netns: str | None, key: str) -> int:
    cmd = (["ip", "netns", "exec", netns] if netns else []) + ["cat", "/proc/net/snmp"]
    lines = [
        ln.split()
        for ln in subprocess.run(
            cmd, capture_output=True, text=True, check=True
        ).stdout.splitlines()
        if ln.startswith("Tcp:")
    ]
    return int(lines[1][lines[0].index(key)])


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def max_open_files(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no Max open files line")


class Kmsg:
    """/dev/kmsg records written after this object was made."""

    def __init__(self) -> None:
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)

    def read(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(os.read(self.fd, 8192).decode(errors="replace"))
            except BlockingIOError:
                return out
            except BrokenPipeError:  # overwritten records: keep reading
                continue

    def close(self) -> None:
        os.close(self.fd)


def everything_with_tag(tag: str) -> list[str]:
    """Independent search for anything named with the run tag: cgroup dirs, namespaces, links,
    nft tables, qdiscs on lab links, processes' environments and temp files."""
    name = f"sreagent-lab-{tag}"
    found: list[str] = []
    for root in CGROUP.iterdir():
        found += glob.glob(f"{root}/**/{name}*", recursive=True)
    run = lambda *a: subprocess.run(list(a), capture_output=True, text=True).stdout  # noqa: E731
    found += [f"netns {n}" for n in run("ip", "netns", "list").split() if tag in n]
    found += [
        f"link {ln}" for ln in run("ip", "-o", "link", "show").splitlines() if f"slab{tag}" in ln
    ]
    found += [f"nft {ln}" for ln in run("nft", "list", "tables").splitlines() if tag in ln]
    found += [f"qdisc {ln}" for ln in run("tc", "qdisc", "show").splitlines() if f"slab{tag}" in ln]
    found += [
        f"route {ln}" for ln in run("ip", "-4", "route", "show").splitlines() if f"slab{tag}" in ln
    ]
    for environ in glob.glob("/proc/[0-9]*/environ"):
        try:
            if name.encode() in Path(environ).read_bytes():
                found.append(f"process {environ}")
        except OSError:
            pass
    found += glob.glob(f"/tmp/{name}*") + glob.glob(f"/run/sreagent-lab/{tag}*")
    return found
