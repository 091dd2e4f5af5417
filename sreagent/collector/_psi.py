"""PSI source: ``/proc/pressure/{cpu,memory,io}`` (Documentation/accounting/psi.rst).

Each file has a ``some`` line and (except cpu before 5.13) a ``full`` line:
``some avg10=0.12 avg60=0.05 avg300=0.01 total=12345`` with averages in percent and the total
stall time in microseconds. The same format is used by cgroup v2 ``*.pressure`` files.
"""

from __future__ import annotations

from dataclasses import dataclass

from sreagent.collector._common import KeptFiles, capability, read_optional, sample
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


class PsiSource:
    """``psi``: host pressure stall information."""

    name = "psi"
    optional = False

    def __init__(self, roots: Roots) -> None:
        self._paths = {r: roots.proc / "pressure" / r for r in RESOURCES}
        self._files = KeptFiles()

    def capability(self) -> SourceCapability:
        missing = [str(p) for p in self._paths.values() if read_optional(p) is None]
        if len(missing) == len(self._paths):
            return capability(
                self.name,
                "off",
                f"{missing[0]} unreadable: kernel without CONFIG_PSI or booted with psi=0",
            )
        if missing:
            return capability(self.name, "kernel", f"missing: {', '.join(missing)}")
        return capability(self.name, "kernel", str(self._paths["cpu"].parent))

    def read(self, now_ns: int) -> SourceOutput:
        out = []
        for resource, path in self._paths.items():
            raw = self._files.read(str(path))
            if raw is None:
                continue
            labels = {"resource": resource}
            for kind, p in parse_pressure(raw).items():
                if kind == "some":
                    out.append(sample(now_ns, "pressure_some_ratio", "host", p.avg10 / 100, labels))
                elif kind == "full":
                    out.append(sample(now_ns, "pressure_full_ratio", "host", p.avg10 / 100, labels))
                else:
                    continue
                out.append(
                    sample(
                        now_ns,
                        "pressure_stall_seconds_total",
                        "host",
                        p.total_us / 1e6,
                        {"kind": kind, "resource": resource},
                    )
                )
        return SourceOutput(samples=out)

    def close(self) -> None:
        self._files.close()
