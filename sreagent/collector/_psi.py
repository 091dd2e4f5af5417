"""PSI source: ``/proc/pressure/{cpu,memory,io}`` (Documentation/accounting/psi.rst).

Each file has a ``some`` line and (except cpu before 5.13) a ``full`` line:
``some avg10=0.12 avg60=0.05 avg300=0.01 total=12345`` with averages in percent and the total
stall time in microseconds. The same format is used by cgroup v2 ``*.pressure`` files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sreagent.collector._common import KeptFiles, capability, read_optional
from sreagent.collector._source import Roots, SourceOutput
from sreagent.errors import CorruptFile
from sreagent.telemetry import SourceCapability

RESOURCES = ("cpu", "memory", "io")


@dataclass(frozen=True)
class Pressure:
    avg10: float
    """Percent of the last 10 s with at least one task stalled."""
    avg60: float
    avg300: float
    total_us: int


def parse_pressure(raw: bytes) -> dict[str, Pressure]:
    """One pressure file as ``{"some": Pressure, "full": Pressure}``."""
    out: dict[str, Pressure] = {}
    for line in raw.splitlines():
        kind, *fields = line.split()
        values = dict(f.split(b"=", 1) for f in fields)
        try:
            out[kind.decode()] = Pressure(
                float(values[b"avg10"]),
                float(values[b"avg60"]),
                float(values[b"avg300"]),
                int(values[b"total"]),
            )
        except (KeyError, ValueError) as err:
            raise CorruptFile(f"unreadable pressure line {line!r}") from err
    return out


def pressure_lines(raw: bytes) -> dict[str, tuple[float, int]]:
    """``{"some": (avg10, total_us), "full": ...}``: the two figures the sources sample.

    The kernel prints every line as ``<kind> avg10=X avg60=X avg300=X total=N``
    (kernel/sched/psi.c, psi_show); this reads the two fields by position, which costs a
    fraction of :func:`parse_pressure` (six of these files per sample). A line of another
    shape goes through :func:`parse_pressure`, which names what it could not read.
    """
    out: dict[str, tuple[float, int]] = {}
    for line in raw.split(b"\n"):
        if not line:
            continue
        parts = line.split(b" ")
        if (
            len(parts) == 5
            and parts[1].startswith(b"avg10=")
            and parts[4].startswith(b"total=")
            and parts[0] in _KINDS
        ):
            try:
                out[_KINDS[parts[0]]] = (float(parts[1][6:]), int(parts[4][6:]))
                continue
            except ValueError:
                pass
        for kind, p in parse_pressure(line).items():
            out[kind] = (p.avg10, p.total_us)
    return out


_KINDS = {b"some": "some", b"full": "full"}


class PsiSource:
    """``psi``: host pressure stall information."""

    name = "psi"
    optional = False

    def __init__(self, roots: Roots) -> None:
        self._paths = {r: str(roots.proc / "pressure" / r) for r in RESOURCES}
        self._files = KeptFiles()
        # Label dicts built once and shared by the samples (frozen models).
        self._labels = {r: {"resource": r} for r in RESOURCES}
        self._total_labels = {
            (r, kind): {"kind": kind, "resource": r} for r in RESOURCES for kind in _KINDS.values()
        }
        self._latest: tuple[int, dict[str, dict[str, tuple[float, int]]]] | None = None
        """``(now_ns, {resource: pressure_lines(...)})`` of the last read."""

    def pressure_at(self, now_ns: int) -> dict[str, dict[str, tuple[float, int]]] | None:
        """What the read stamped ``now_ns`` parsed, per resource (``{"some": (avg10,
        total_us), "full": ...}``), or None when no read of that instant saw all three
        files. The cgroup source takes the cgroup v2 root's pressure from here: the kernel
        serves the root's ``*.pressure`` files from the same system-wide PSI group as
        /proc/pressure (kernel/cgroup/cgroup.c, ``cgroup_psi``)."""
        latest = self._latest
        if latest is None or latest[0] != now_ns or len(latest[1]) != len(RESOURCES):
            return None
        return latest[1]

    def capability(self) -> SourceCapability:
        missing = [p for p in self._paths.values() if read_optional(p) is None]
        if len(missing) == len(self._paths):
            return capability(
                self.name,
                "off",
                f"{missing[0]} unreadable: kernel without CONFIG_PSI or booted with psi=0",
            )
        if missing:
            return capability(self.name, "kernel", f"missing: {', '.join(missing)}")
        return capability(self.name, "kernel", os.path.dirname(self._paths["cpu"]))

    def read(self, now_ns: int) -> SourceOutput:
        out = []
        parsed: dict[str, dict[str, tuple[float, int]]] = {}
        self._latest = (now_ns, parsed)
        for resource, path in self._paths.items():
            raw = self._files.read(path)
            if raw is None:
                continue
            labels = self._labels[resource]
            lines = parsed[resource] = pressure_lines(raw)
            for kind, (avg10, total_us) in lines.items():
                if kind == "some":
                    out.append((now_ns, "pressure_some_ratio", "host", labels, avg10 / 100))
                elif kind == "full":
                    out.append((now_ns, "pressure_full_ratio", "host", labels, avg10 / 100))
                else:
                    continue
                out.append(
                    (
                        now_ns,
                        "pressure_stall_seconds_total",
                        "host",
                        self._total_labels[resource, kind],
                        total_us / 1e6,
                    )
                )
        return SourceOutput(rows=out)

    def close(self) -> None:
        self._files.close()
