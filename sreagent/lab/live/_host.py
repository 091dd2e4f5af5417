"""The host a live injection runs on: injected filesystem roots, cgroup mounts, tool commands."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sreagent.lab.live._errors import LabFailed, LabRefused

DEFAULT_STATE_DIR = Path("/run/sreagent-lab")
"""Where each running injection holds its owner lock (``<tag>.lock``); /run empties at boot,
which is right: nothing a lab run creates outlives a reboot except temp files, which the sweep
finds by name."""


@dataclass(frozen=True)
class CgroupMounts:
    """Where each cgroup hierarchy is mounted (parsed from ``/proc/self/mounts``)."""

    v1: dict[str, Path] = field(default_factory=dict)
    """v1 controller -> mount point; co-mounted controllers share a mount point."""
    v2: Path | None = None

    def all_roots(self) -> list[Path]:
        """Every distinct hierarchy root, v1 and v2 (the sweep walks them all)."""
        roots = sorted(set(self.v1.values()))
        if self.v2 is not None and self.v2 not in roots:
            roots.append(self.v2)
        return roots


_MOUNT_FLAGS = {
    "rw",
    "ro",
    "relatime",
    "noatime",
    "nosuid",
    "nodev",
    "noexec",
    "clone_children",
    "noprefix",
    "xattr",
}


def _unescape(field_: bytes) -> str:
    # /proc/self/mounts escapes space, tab, newline and backslash as octal (\040 ...).
    return field_.decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def parse_cgroup_mounts(raw: bytes, sys_root: Path) -> CgroupMounts:
    """cgroup and cgroup2 mounts, with ``/sys`` mapped onto the injected sysfs root."""
    v1: dict[str, Path] = {}
    v2: Path | None = None
    for line in raw.splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[2] not in (b"cgroup", b"cgroup2"):
            continue
        point = _unescape(parts[1])
        path = sys_root / point[len("/sys/") :] if point.startswith("/sys/") else Path(point)
        if parts[2] == b"cgroup2":
            v2 = v2 or path
            continue
        for option in parts[3].decode().split(","):
            if option not in _MOUNT_FLAGS and ("=" not in option or option.startswith("name=")):
                v1.setdefault(option, path)
    return CgroupMounts(v1, v2)


@dataclass(frozen=True)
class LabHost:
    """Roots the lab reads and writes; tests and other hosts inject their own."""

    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    tmp: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    state: Path = DEFAULT_STATE_DIR

    def cgroup_mounts(self) -> CgroupMounts:
        return parse_cgroup_mounts((self.proc / "self/mounts").read_bytes(), self.sys)


def require_tool(name: str, why: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise LabRefused(
            f"`{name}` is not installed; it is needed {why} (Debian: see scripts/system-packages.txt)"
        )
    return path


def run_tool(
    args: Sequence[str], what: str, *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run an administration command (ip, tc, nft); a failure names the step and the stderr."""
    try:
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise LabFailed(f"{what}: `{' '.join(args)}` could not run: {err}") from err
    if check and done.returncode != 0:
        raise LabFailed(
            f"{what}: `{' '.join(args)}` failed ({done.returncode}): {done.stderr.strip()}"
        )
    return done
