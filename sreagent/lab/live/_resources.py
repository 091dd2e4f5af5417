"""The things a live injection creates, each able to say whether its name is taken, to create
itself and to remove itself: cgroup directories, network namespaces, veth pairs, nftables tables,
qdiscs, temp directories and worker processes.

An injector is a list of these, created in order and removed in reverse. A resource removes only
what it created itself (``created``), which is how an injection never touches what it did not make.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import psutil

from sreagent.lab.live._errors import LabFailed
from sreagent.lab.live._host import run_tool
from sreagent.lab.live._names import TAG_ENV

WORKER_SCRIPT = Path(__file__).with_name("_workers.py")


class Resource(ABC):
    """One named thing an injection creates."""

    kind: str = "resource"

    def __init__(self, name: str, where: str = "") -> None:
        self.name = name
        self.where = where
        self.created = False

    @abstractmethod
    def present(self) -> bool:
        """Whether something with this name exists now (ours or not)."""

    @abstractmethod
    def _create(self) -> None: ...

    @abstractmethod
    def _remove(self) -> None: ...

    def conflict(self) -> str | None:
        """Why creating this would touch something that exists already, or None."""
        if self.present():
            return (
                f"{self.kind} {self.name}{' in ' + self.where if self.where else ''} already exists"
            )
        return None

    def create(self) -> None:
        """Create it. A ``_create`` that makes it in several steps sets ``created`` as soon as
        the first step has made something, so a later step's failure still undoes it; a
        failure of the first step leaves ``created`` False and whatever exists untouched."""
        self._create()
        self.created = True

    def remove(self) -> None:
        if self.created:
            self._remove()
            self.created = False

    def label(self) -> str:
        return f"{self.kind}:{self.where + ':' if self.where else ''}{self.name}"


def kill_cgroup_tasks(directory: Path) -> None:
    """SIGKILL every process in a cgroup directory (lab cgroups hold only lab workers)."""
    for filename in ("cgroup.procs", "tasks"):
        try:
            pids = [int(x) for x in (directory / filename).read_text().split()]
        except OSError:
            continue
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def remove_cgroup_dir(directory: Path, timeout_s: float = 5.0) -> None:
    """Kill what runs in the cgroup and its children, then rmdir them deepest first."""
    if not directory.exists():
        return
    children = [Path(root) for root, _, _ in os.walk(directory)][1:]
    children.sort(key=lambda p: -len(p.parts))
    for d in [*children, directory]:
        deadline = time.monotonic() + timeout_s
        while True:
            kill_cgroup_tasks(d)
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as err:
                # EBUSY while the killed tasks finish exiting.
                if err.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise LabFailed(f"cannot remove cgroup {d}: {err}") from err
                time.sleep(0.05)


class CgroupDir(Resource):
    """A cgroup directory in one hierarchy, with control files written after it is made."""

    kind = "cgroup"

    def __init__(self, root: Path, rel: str, settings: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(rel, str(root))
        self.root = root
        self.path = root / rel
        self.settings = tuple(settings)

    def present(self) -> bool:
        return self.path.exists()

    def _create(self) -> None:
        try:
            self.path.mkdir()  # exclusive: an existing directory is never adopted
        except OSError as err:
            raise LabFailed(f"cannot create cgroup {self.path}: {err}") from err
        self.created = True
        for filename, value in self.settings:
            try:
                (self.path / filename).write_text(value)
            except OSError as err:
                raise LabFailed(f"cannot write {value!r} to {self.path / filename}: {err}") from err

    def _remove(self) -> None:
        remove_cgroup_dir(self.path)


class TempDir(Resource):
    kind = "tempdir"

    def __init__(self, path: Path) -> None:
        super().__init__(path.name, str(path.parent))
        self.path = path

    def present(self) -> bool:
        return self.path.exists() or self.path.is_symlink()

    def _create(self) -> None:
        self.path.mkdir(mode=0o700)

    def _remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def netns_cmd(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


class Netns(Resource):
    kind = "netns"

    def present(self) -> bool:
        return Path("/run/netns", self.name).exists()

    def _create(self) -> None:
        run_tool(["ip", "netns", "add", self.name], f"creating network namespace {self.name}")
        self.created = True
        run_tool(["ip", "-n", self.name, "link", "set", "lo", "up"], "bringing lo up")

    def _remove(self) -> None:
        remove_netns(self.name)


def remove_netns(name: str) -> None:
    done = run_tool(["ip", "netns", "pids", name], f"listing processes in {name}", check=False)
    for pid in done.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    run_tool(["ip", "netns", "del", name], f"deleting network namespace {name}", check=False)
    if Path("/run/netns", name).exists():
        raise LabFailed(f"network namespace {name} is still there after `ip netns del`")


class VethPair(Resource):
    """A veth pair whose ends are created directly in their namespaces (None: the host's)."""

    kind = "veth"

    def __init__(self, a: str, a_netns: str | None, b: str, b_netns: str | None) -> None:
        super().__init__(a, a_netns or "host")
        self.a, self.a_netns, self.b, self.b_netns = a, a_netns, b, b_netns

    def present(self) -> bool:
        # A fresh namespace cannot hold the names yet; only the host's can.
        return any(
            ns is None
            and run_tool(["ip", "link", "show", "dev", n], "", check=False).returncode == 0
            for n, ns in ((self.a, self.a_netns), (self.b, self.b_netns))
        )

    def _create(self) -> None:
        args = ["ip", "link", "add", "name", self.a]
        args += ["netns", self.a_netns] if self.a_netns else []
        args += ["type", "veth", "peer", "name", self.b]
        args += ["netns", self.b_netns] if self.b_netns else []
        run_tool(args, f"creating veth pair {self.a}/{self.b}")

    def _remove(self) -> None:
        for n, ns in ((self.a, self.a_netns), (self.b, self.b_netns)):
            if ns is None:  # ends inside lab namespaces go with them
                run_tool(["ip", "link", "del", "dev", n], f"deleting {n}", check=False)


class NftTable(Resource):
    """An nftables table (family inet) with the given ruleset text, in a namespace or the host."""

    kind = "nft-table"

    def __init__(self, name: str, netns: str | None, body: str) -> None:
        super().__init__(name, netns or "host")
        self.netns = netns
        self.body = body

    def present(self) -> bool:
        if self.netns and not Path("/run/netns", self.netns).exists():
            return False
        cmd = [*netns_cmd(self.netns), "nft", "list", "table", "inet", self.name]
        return run_tool(cmd, "", check=False).returncode == 0

    def _create(self) -> None:
        script = f"table inet {self.name} {{\n{self.body}\n}}\n"
        cmd = [*netns_cmd(self.netns), "nft", "-f", "-"]
        try:
            done = subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise LabFailed(f"nft could not run: {err}") from err
        if done.returncode != 0:
            raise LabFailed(f"loading nftables table {self.name}: {done.stderr.strip()}")

    def _remove(self) -> None:
        if self.netns and not Path("/run/netns", self.netns).exists():
            return
        cmd = [*netns_cmd(self.netns), "nft", "delete", "table", "inet", self.name]
        run_tool(cmd, f"deleting nftables table {self.name}", check=False)


class RootQdisc(Resource):
    """A root qdisc on a lab interface (the interface is ours, so its root qdisc is too)."""

    kind = "qdisc"

    def __init__(self, dev: str, netns: str | None, spec: Sequence[str]) -> None:
        super().__init__(f"{dev} root {spec[0]}", netns or "host")
        self.dev, self.netns, self.spec = dev, netns, list(spec)

    def present(self) -> bool:
        return False  # the device is created by this injection, so it cannot carry ours yet

    def _create(self) -> None:
        cmd = [*netns_cmd(self.netns), "tc", "qdisc", "add", "dev", self.dev, "root", *self.spec]
        run_tool(cmd, f"adding {self.spec[0]} qdisc on {self.dev}")

    def _remove(self) -> None:
        if self.netns and not Path("/run/netns", self.netns).exists():
            return
        cmd = [*netns_cmd(self.netns), "tc", "qdisc", "del", "dev", self.dev, "root"]
        run_tool(cmd, f"removing qdisc on {self.dev}", check=False)


def worker_command(kind: str, run: str, **args: object) -> list[str]:
    """The command line of a _workers.py workload, ending with ``--tag <run name>``."""
    argv = [sys.executable, str(WORKER_SCRIPT), kind]
    for key, value in args.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return [*argv, "--tag", run]


class Worker(Resource):
    """A workload process: its own session, the run name in its environment (``TAG_ENV``),
    born inside the given cgroups (joined from the child before exec, so no work escapes)."""

    kind = "process"

    def __init__(
        self,
        run: str,
        role: str,
        command: Sequence[str],
        *,
        cgroups: Sequence[Path] = (),
        netns: str | None = None,
    ) -> None:
        super().__init__(f"{run}/{role}", netns or "")
        self.run = run
        self.role = role
        self.command = list(command)
        self.cgroups = list(cgroups)
        self.netns = netns
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise LabFailed(f"worker {self.name} has not started")
        return self.popen.pid

    def present(self) -> bool:
        return False  # processes are found by their tag; a fresh tag has none

    def _create(self) -> None:
        procs_files = [str(c / "cgroup.procs") for c in self.cgroups]

        def join_cgroups() -> None:  # runs in the child between fork and exec
            for f in procs_files:
                with open(f, "w") as fh:
                    fh.write("0")  # "0" means the writing process itself

        env = {**os.environ, TAG_ENV: self.run}
        try:
            self.popen = subprocess.Popen(
                [*netns_cmd(self.netns), *self.command],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C reaches the owner, which undoes in order
                preexec_fn=join_cgroups if procs_files else None,
            )
        except (OSError, subprocess.SubprocessError) as err:
            raise LabFailed(f"cannot start worker {self.name}: {err}") from err

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def _remove(self) -> None:
        if self.popen is None:
            return
        if self.popen.returncode is None:
            # Not reaped yet, so the pid (and the process group named after it) is still ours,
            # and so are its descendants (fio's job processes start process groups of their own).
            try:
                family = psutil.Process(self.popen.pid).children(recursive=True)
            except psutil.Error:
                family = []
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            for child in family:
                with contextlib.suppress(psutil.Error):
                    child.kill()
            _, alive = psutil.wait_procs(family, timeout=10)
            if alive:
                pids = ", ".join(str(p.pid) for p in alive)
                raise LabFailed(f"worker {self.name}: children {pids} did not exit after SIGKILL")
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired as err:
            raise LabFailed(
                f"worker {self.name} (pid {self.popen.pid}) did not exit after SIGKILL"
            ) from err
