"""Owner locks and the leftovers sweeper.

Each running injection holds an exclusive ``flock`` on ``<state>/<tag>.lock`` from before it
creates anything until after it has removed everything. A tag whose lock is free (its owner
exited, cleanly or not) is an orphan; :func:`sweep` finds everything named with an orphan tag
and removes it: cgroups in every hierarchy, network namespaces, lab veths and nftables tables in
the host namespace, worker processes (by the tag in their environment, or an argument equal to
the run name) and temp directories. Tags held by a live owner are left alone, so a sweep at
the start of one run never breaks another run in progress.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from sreagent.lab.live._errors import LabFailed, LabRefused
from sreagent.lab.live._host import LabHost, run_tool
from sreagent.lab.live._names import PREFIX, TAG_ENV, is_tag, tag_of
from sreagent.lab.live._resources import remove_cgroup_dir, remove_netns

_MAX_CGROUP_DEPTH = 6


@dataclass(frozen=True)
class Leftover:
    """One lab thing found on the host."""

    kind: str
    name: str
    tag: str
    where: str = ""

    def label(self) -> str:
        return f"{self.kind}:{self.where + ':' if self.where else ''}{self.name}"


class OwnerLock:
    """The exclusive lock that marks a tag as owned by a live process."""

    def __init__(self, host: LabHost, tag: str) -> None:
        self.path = host.state / f"{tag}.lock"
        self._fd: int | None = None

    def acquire(self, info: dict[str, object]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            raise LabRefused(
                f"run tag lock {self.path} is held by another process: that run is in progress"
            ) from err
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info, sort_keys=True).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)  # closing drops the flock
        self._fd = None


def tag_is_live(host: LabHost, tag: str) -> bool:
    """Whether a live process holds this tag's owner lock."""
    path = host.state / f"{tag}.lock"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _cgroup_leftovers(host: LabHost) -> Iterator[Leftover]:
    for root in host.cgroup_mounts().all_roots():
        stack = [(root, 0)]
        while stack:
            directory, depth = stack.pop()
            try:
                entries = [e for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)]
            except OSError:
                continue
            for entry in entries:
                tag = tag_of(entry.name)
                if tag is not None:
                    # Report the topmost lab directory; removing it removes its children.
                    yield Leftover(
                        "cgroup", str(Path(entry.path).relative_to(root)), tag, str(root)
                    )
                elif depth + 1 < _MAX_CGROUP_DEPTH:
                    stack.append((Path(entry.path), depth + 1))


def _netns_leftovers() -> Iterator[Leftover]:
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir("/run/netns"):
            tag = tag_of(entry.name)
            if tag is not None:
                yield Leftover("netns", entry.name, tag)


def _link_leftovers() -> Iterator[Leftover]:
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir("/sys/class/net"):
            tag = tag_of(entry.name)
            if tag is not None:
                yield Leftover("link", entry.name, tag, "host")


_NFT_TABLE = re.compile(r"^table (\S+) (\S+)$")


def _nft_leftovers() -> Iterator[Leftover]:
    if shutil.which("nft") is None:
        return
    done = run_tool(["nft", "list", "tables"], "listing nftables tables", check=False)
    for line in done.stdout.splitlines():
        m = _NFT_TABLE.match(line.strip())
        if m and (tag := tag_of(m.group(2))) is not None:
            yield Leftover("nft-table", m.group(2), tag, m.group(1))


def _process_tag(p: psutil.Process) -> str | None:
    with contextlib.suppress(psutil.Error, OSError):
        value = p.environ().get(TAG_ENV)
        if value and (tag := tag_of(value)) is not None:
            return tag
    with contextlib.suppress(psutil.Error, OSError):
        for arg in p.cmdline():
            if (
                arg.startswith(PREFIX)
                and (tag := tag_of(arg)) is not None
                and arg == f"{PREFIX}{tag}"
            ):
                return tag
    return None


def _process_leftovers() -> Iterator[Leftover]:
    me = os.getpid()
    spare = {me, *(p.pid for p in psutil.Process(me).parents())}
    for p in psutil.process_iter():
        if p.pid in spare:
            continue
        tag = _process_tag(p)
        if tag is not None:
            yield Leftover("process", str(p.pid), tag)


def _file_leftovers(host: LabHost) -> Iterator[Leftover]:
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(host.tmp):
            tag = tag_of(entry.name)
            if tag is not None:
                yield Leftover("tempdir", entry.name, tag, str(host.tmp))
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(host.state):
            stem = entry.name.removesuffix(".lock")
            if entry.name.endswith(".lock") and is_tag(stem):
                yield Leftover("lockfile", entry.name, stem, str(host.state))


def find_leftovers(host: LabHost | None = None, *, tag: str | None = None) -> list[Leftover]:
    """Everything on the host named with a lab tag (only ``tag``'s when given), live or not."""
    host = host or LabHost()
    found = [
        *_process_leftovers(),
        *_cgroup_leftovers(host),
        *_netns_leftovers(),
        *_link_leftovers(),
        *_nft_leftovers(),
        *_file_leftovers(host),
    ]
    return [x for x in found if tag is None or x.tag == tag]


def _remove(host: LabHost, x: Leftover) -> None:
    if x.kind == "process":
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(int(x.name))
            # Re-check just before the kill: the pid may have been reused since the scan.
            if _process_tag(p) == x.tag:
                p.send_signal(signal.SIGKILL)
                with contextlib.suppress(psutil.TimeoutExpired):
                    p.wait(timeout=5)
    elif x.kind == "cgroup":
        remove_cgroup_dir(Path(x.where) / x.name)
    elif x.kind == "netns":
        remove_netns(x.name)
    elif x.kind == "link":
        run_tool(["ip", "link", "del", "dev", x.name], f"deleting {x.name}", check=False)
    elif x.kind == "nft-table":
        run_tool(
            ["nft", "delete", "table", x.where, x.name], f"deleting table {x.name}", check=False
        )
    elif x.kind == "tempdir":
        path = Path(x.where) / x.name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    elif x.kind == "lockfile":
        (Path(x.where) / x.name).unlink(missing_ok=True)


@dataclass(frozen=True)
class SweepReport:
    removed: tuple[str, ...]
    """Labels of what was removed (``kind:where:name``)."""
    kept_live: tuple[str, ...]
    """Tags left alone because a live owner holds them."""
    failed: tuple[str, ...]
    """Labels and errors of what could not be removed."""

    @property
    def ok(self) -> bool:
        return not self.failed


# Processes first (they hold cgroups and namespaces busy), lock files last (they mark a tag
# as still being cleaned up while anything else of it remains).
_ORDER = ("process", "cgroup", "netns", "nft-table", "link", "tempdir", "lockfile")


def sweep(host: LabHost | None = None, *, tag: str | None = None) -> SweepReport:
    """Remove every leftover of orphaned lab runs (or of ``tag`` alone, unless it is live).

    Safe to run at any time and concurrently with other sweeps: everything it removes is
    named with a lab tag whose owner is gone, and removing what is already gone is a no-op.
    """
    host = host or LabHost()
    leftovers = find_leftovers(host, tag=tag)
    live = sorted({x.tag for x in leftovers if tag_is_live(host, x.tag)})
    busy = sorted({x.tag for x in leftovers if x.tag in live and x.kind != "lockfile"})
    removed: list[str] = []
    failed: list[str] = []
    for kind in _ORDER:
        for x in leftovers:
            if x.kind != kind or x.tag in live:
                continue
            try:
                _remove(host, x)
            except (LabFailed, OSError) as err:
                failed.append(f"{x.label()}: {err}")
            else:
                removed.append(x.label())
    return SweepReport(tuple(removed), tuple(busy), tuple(failed))
