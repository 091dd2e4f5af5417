"""tracefs: make sure it is mounted, and read tracepoint format files (pure parsers).

Tracepoint programs attach through tracefs, which many hosts (this one included) do not mount
at boot. The collector mounts it when it is missing and it may (root, ``mount_tracefs``
allowed); otherwise it reports why eBPF is off.

A tracepoint's ``format`` file lists its fields (name, offset, size) and a ``print fmt`` whose
``__print_symbolic(REC->x, { 2, "NOT_SPECIFIED" }, ...)`` tables name enum values. The
collector uses both: the fields decide which probes the running kernel supports (a field
added in a newer kernel is simply left out on an older one), and the symbol tables name packet
drop reasons and TCP states exactly as the running kernel defines them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from sreagent.errors import BadInput

TRACEFS_REL = Path("kernel/tracing")
"""Where tracefs lives below ``/sys``."""


@dataclass(frozen=True)
class TracepointFormat:
    """What a tracepoint's ``format`` file says."""

    name: str
    fields: dict[str, str]
    """Field name -> C declaration type (``__data_loc char[]``, ``pid_t``...), common_* left out."""
    symbols: dict[str, dict[int, str]]
    """Field name -> value -> symbol, from the print format's ``__print_symbolic`` tables."""
    offsets: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Field name -> (offset, size) in bytes within the tracepoint's record."""


_FIELD = re.compile(r"^\s*field:(?P<decl>[^;]+);\s*offset:(?P<offset>\d+);\s*size:(?P<size>\d+);")
_SYMBOLIC = re.compile(r"__print_symbolic\(REC->(?P<field>\w+),(?P<table>(?:\s*\{[^}]*\},?)+)\s*\)")
_PAIR = re.compile(r"\{\s*(?P<value>-?(?:0x[0-9a-fA-F]+|\d+))\s*,\s*\"(?P<name>[^\"]*)\"\s*\}")


def parse_format(raw: bytes) -> TracepointFormat:
    """Parse a tracefs ``events/<category>/<name>/format`` file."""
    text = raw.decode("utf-8", "replace")
    name_match = re.search(r"^name:\s*(\S+)", text, re.M)
    if name_match is None:
        raise BadInput(f"tracepoint format has no 'name:' line: {text[:80]!r}")
    fields: dict[str, str] = {}
    offsets: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        m = _FIELD.match(line)
        if not m:
            continue
        decl = m["decl"].strip()
        # "unsigned long total_vm", "__u8 saddr[4]", "__data_loc char[] comm"
        named = re.search(r"(\w+)(?:\[\d*\])?$", decl)
        if named is None:
            raise BadInput(f"tracepoint field declaration not understood: {decl!r}")
        fname = named.group(1)
        if not fname.startswith("common_"):
            fields[fname] = decl[: named.start()].strip() or decl
            offsets[fname] = (int(m["offset"]), int(m["size"]))
    symbols: dict[str, dict[int, str]] = {}
    fmt = text.split("print fmt:", 1)[1] if "print fmt:" in text else ""
    for m in _SYMBOLIC.finditer(fmt):
        table = {int(p["value"], 0): p["name"] for p in _PAIR.finditer(m["table"])}
        symbols.setdefault(m["field"], {}).update(table)
    return TracepointFormat(
        name=name_match.group(1), fields=fields, symbols=symbols, offsets=offsets
    )


def tracefs_dir(sys_root: Path) -> Path:
    return sys_root / TRACEFS_REL


def read_format(sys_root: Path, category: str, event: str) -> TracepointFormat | None:
    """The running kernel's format of ``category:event``; ``None`` when it has no such tracepoint."""
    path = tracefs_dir(sys_root) / "events" / category / event / "format"
    try:
        return parse_format(path.read_bytes())
    except (FileNotFoundError, NotADirectoryError):
        return None


def ensure_tracefs(sys_root: Path, *, may_mount: bool) -> str:
    """Make tracefs usable; return ``""`` when it is, else the reason it is not."""
    target = tracefs_dir(sys_root)
    if (target / "events").is_dir():
        return ""
    if not may_mount:
        return f"tracefs is not mounted at {target} and mounting it is not allowed"
    libc_name = ctypes.util.find_library("c") or "libc.so.6"
    libc = ctypes.CDLL(libc_name, use_errno=True)
    # mount(2) directly: the same as `mount -t tracefs nodev /sys/kernel/tracing`.
    if libc.mount(b"nodev", str(target).encode(), b"tracefs", 0, None) != 0:
        err = ctypes.get_errno()
        return f"tracefs is not mounted at {target} and mounting it failed: [Errno {err}] {os.strerror(err)}"
    if not (target / "events").is_dir():
        return f"tracefs mounted at {target} but it has no events/ directory"
    return ""


# bpf(2) syscall numbers (arch/*/entry/syscalls); the probe below needs no BPF library.
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351, "riscv64": 280}
_BPF_MAP_CREATE, _BPF_MAP_TYPE_ARRAY = 0, 2


def bpf_syscall_error() -> str:
    """``""`` when this process may create a BPF map, else the kernel's error for ``bpf(2)``.

    Quoted in the capability report so an ``off`` mode shows the kernel's own answer
    (``EPERM`` without CAP_BPF, for instance), not a guess.
    """
    number = _SYS_BPF.get(os.uname().machine)
    if number is None:
        return f"bpf(2) not probed on {os.uname().machine}"
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    # union bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries (u32 each).
    attr = (ctypes.c_uint32 * 32)(_BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    fd = libc.syscall(number, _BPF_MAP_CREATE, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd >= 0:
        os.close(fd)
        return ""
    err = ctypes.get_errno()
    return f"bpf(BPF_MAP_CREATE): [Errno {err}] {os.strerror(err)}"
