"""A ``systemctl`` stand-in for the lab's own cgroup, for hosts where systemd is not running.

The catalogue's ``raise_cgroup_cpu_quota`` runs ``systemctl set-property --runtime <unit>
CPUQuota=<n>%`` (and ``inspect_cgroup_cpu`` runs ``systemctl show <unit> -p ...``). On a host
whose PID 1 is not systemd (containers, this project's machines) there is no manager to ask,
and the lab's cgroup is not a unit of one anyway. A lab-started controller run with
``--approve`` therefore finds this program first on its PATH as ``systemctl``: it does what
systemd does for a runtime CPUQuota on a scope (writes the cgroup's CFS quota, or cgroup2
``cpu.max``) for the lab's own ``sreagent-lab-<tag>.scope`` units ONLY, and refuses anything
else (exit 1, naming why). The command the executor runs and records is the real catalogue
command; only the manager behind it is the lab's.

Executed by path (``python _systemctl.py --cpu-root R --cpuacct-root R ARGS...``); the lab
imports only :func:`quota_and_period` from it. Standard library only, so an action runs in
milliseconds.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_UNIT = re.compile(r"^sreagent-lab-[0-9a-f]{8}(?:-[a-z0-9][a-z0-9-]*)?\.scope$")
_QUOTA = re.compile(r"^CPUQuota=([0-9]{1,5})%$")


def _fail(message: str) -> int:
    print(f"systemctl (sreagent live-lab stand-in): {message}", file=sys.stderr)
    return 1


def _unit_dir(root: Path, unit: str) -> Path | None:
    if not _UNIT.match(unit):
        return None
    path = root / unit
    return path if path.is_dir() else None


def quota_and_period(cpu_dir: Path) -> tuple[int, int]:
    """The cgroup's CFS quota and period in microseconds (quota -1: unlimited), v1 or v2."""
    if (cpu_dir / "cpu.cfs_quota_us").exists():
        return (int((cpu_dir / "cpu.cfs_quota_us").read_text()),
                int((cpu_dir / "cpu.cfs_period_us").read_text()))
    q, p = (cpu_dir / "cpu.max").read_text().split()
    return (-1 if q == "max" else int(q)), int(p)


def set_quota(cpu_dir: Path, percent: int) -> str:
    """Write a CPUQuota of ``percent`` % of one CPU into the cgroup; what was written."""
    if (cpu_dir / "cpu.cfs_quota_us").exists():
        period = int((cpu_dir / "cpu.cfs_period_us").read_text())
        quota = max(1000, period * percent // 100)
        old = (cpu_dir / "cpu.cfs_quota_us").read_text().strip()
        (cpu_dir / "cpu.cfs_quota_us").write_text(str(quota))
        return f"cpu.cfs_quota_us {old} -> {quota} (period {period})"
    old_max = (cpu_dir / "cpu.max").read_text().split()
    period = int(old_max[1])
    quota = max(1000, period * percent // 100)
    (cpu_dir / "cpu.max").write_text(f"{quota} {period}")
    return f"cpu.max {' '.join(old_max)} -> {quota} {period}"


def show(cpu_dir: Path, acct_dir: Path | None, props: list[str]) -> list[str]:
    """``Name=value`` lines as ``systemctl show -p`` prints them (the properties it knows)."""
    out = []
    for prop in props:
        if prop == "CPUQuotaPerSecUSec":
            quota, period = quota_and_period(cpu_dir)
            out.append(f"{prop}=" + ("infinity" if quota < 0 else
                                     f"{quota * 1_000_000 // period}us"))
        elif prop == "CPUUsageNSec" and acct_dir is not None \
                and (acct_dir / "cpuacct.usage").exists():
            out.append(f"{prop}={int((acct_dir / 'cpuacct.usage').read_text())}")
        elif prop == "CPUWeight" and (cpu_dir / "cpu.weight").exists():
            out.append(f"{prop}={int((cpu_dir / 'cpu.weight').read_text())}")
        else:
            out.append(f"{prop}=[not set]")
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[0] != "--cpu-root" or argv[2] != "--cpuacct-root":
        return _fail("usage: --cpu-root DIR --cpuacct-root DIR COMMAND ...")
    cpu_root, acct_root, args = Path(argv[1]), Path(argv[3]), argv[4:]
    if len(args) == 4 and args[:2] == ["set-property", "--runtime"]:
        unit, assignment = args[2], args[3]
        cpu_dir = _unit_dir(cpu_root, unit)
        match = _QUOTA.match(assignment)
        if cpu_dir is None:
            return _fail(f"acts only on the live lab's own running scopes "
                         f"(sreagent-lab-<tag>.scope); not on {unit!r}")
        if match is None:
            return _fail(f"sets only CPUQuota=<n>%, not {assignment!r}")
        print(f"{unit}: CPUQuota={match.group(1)}% ({set_quota(cpu_dir, int(match.group(1)))})")
        return 0
    if len(args) >= 2 and args[0] == "show":
        cpu_dir = _unit_dir(cpu_root, args[1])
        if cpu_dir is None:
            return _fail(f"shows only the live lab's own running scopes; not {args[1]!r}")
        props = [args[i + 1] for i in range(2, len(args) - 1) if args[i] == "-p"]
        print("\n".join(show(cpu_dir, _unit_dir(acct_root, args[1]), props)))
        return 0
    return _fail(f"does not do {' '.join(args)!r} (only set-property --runtime ... CPUQuota= "
                 "and show on the lab's own scopes)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
