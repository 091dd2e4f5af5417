"""The alert rules a lab-started controller opens incidents with (``workflow.rules``).

The controller opens incidents from threshold rules on series it holds (docs/controller.md,
"Incidents and workflow runs"); the role chain then explains the window. A game day sets up
the alerts an operator would have, before anything is injected, and the SAME set for every
scenario, so which rule fires is itself part of what the run shows:

* host CPU busy (``cpu_utilisation_ratio``), TCP retransmits (``tcp_retransmits_per_second``),
  the OOM-kill counter rising above its value at the baseline (``oom_kills_total``);
* every whole disk of the host busy (``disk_utilisation_ratio`` per ``disk/<dev>``);
* the workload under test, when the scenario runs it in a cgroup of its own: CPU throttling
  of that cgroup (``cgroup_cpu_throttled_ratio``). An operator alerts on the cgroup of the
  service they care about; a rule names one entity, and the lab's cgroup is that service.

Rules only decide WHEN an incident opens. What is at fault (class and entity) is the role
chain's answer over the whole host window, which the lab then checks against the injection.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sreagent.lab.live._injector import Plan

CPU_BUSY_ABOVE = 0.95
RETRANSMITS_ABOVE = 20.0
"""Segments per second; an idle host retransmits a handful at most."""
DISK_BUSY_ABOVE = 0.9
THROTTLED_ABOVE = 0.5
"""Share of the cgroup's CFS periods that were throttled."""
FOR_SAMPLES = 3

_NOT_A_DISK = re.compile(r"^(loop|ram|zram|sr|fd|nbd)\d*")


def whole_disks(sys_root: Path) -> list[str]:
    """Block devices that are disks (``/sys/block`` minus loop, ram, optical ... devices)."""
    block = sys_root / "block"
    if not block.is_dir():
        return []
    return sorted(p.name for p in block.iterdir() if not _NOT_A_DISK.match(p.name))


def parse_oom_kills(vmstat: bytes) -> int:
    """The ``oom_kill`` counter of ``/proc/vmstat`` (0 when the kernel does not have it)."""
    for line in vmstat.splitlines():
        name, _, value = line.partition(b" ")
        if name == b"oom_kill":
            return int(value)
    return 0


def game_day_rules(plan: Plan, *, disks: list[str], oom_kills_at_baseline: int) -> list[dict[str, Any]]:
    """The rule set for one run (``ThresholdRule`` dicts), given the run's plan and baseline."""
    rules: list[dict[str, Any]] = [
        {"name": "cpu_saturation", "metric": "cpu_utilisation_ratio", "entity": "host",
         "above": CPU_BUSY_ABOVE, "for_samples": FOR_SAMPLES, "severity": "warning"},
        {"name": "tcp_retransmits", "metric": "tcp_retransmits_per_second", "entity": "host",
         "above": RETRANSMITS_ABOVE, "for_samples": FOR_SAMPLES, "severity": "warning"},
        # One sample: a kill is an event; the counter rising once is the whole signal.
        {"name": "oom_kill", "metric": "oom_kills_total", "entity": "host",
         "above": oom_kills_at_baseline + 0.5, "for_samples": 1, "severity": "error"},
    ]
    for dev in disks:
        name = "disk_busy_" + re.sub(r"[^a-z0-9_]", "_", dev.lower())
        rules.append({"name": name[:64], "metric": "disk_utilisation_ratio",
                      "entity": f"disk/{dev}", "above": DISK_BUSY_ABOVE,
                      "for_samples": FOR_SAMPLES, "severity": "warning"})
    # The run's own top-level cgroup (``sreagent-lab-<tag>``, or ``....scope`` named as a unit).
    workload = next((r.name for r in plan.resources if r.kind == "cgroup"
                     and r.name in (plan.run_name, f"{plan.run_name}.scope")), None)
    if workload is not None:
        rules.append({"name": "workload_cpu_throttled", "metric": "cgroup_cpu_throttled_ratio",
                      "entity": f"cgroup/{workload}", "above": THROTTLED_ABOVE,
                      "for_samples": FOR_SAMPLES, "severity": "warning"})
    return rules
