"""GPU fleet fault schedules, calibrated on the InfiniteHBD trace (584 real episodes).

The trace (stepfun-ai/InfiniteHBD-Trace, Apache-2.0; ../shared/datasets/infinitehbd) records
when each of 400 GPU servers of an LLM-pretraining cluster failed, why, and when it came back,
over 348 days. :data:`FLEET_CLASS_STATS` holds, per fault class of this library that the
trace's descriptions map to, the episode count, the arrival rate per server-day and a
log-normal fit of episode durations; :func:`compute_fleet_stats` recomputes it from the table
(a test checks the two agree). Descriptions with no metric signature in this library (unknown
errors, stress-test failures, motherboard, kubelet, ...) are left out and counted in
:data:`UNMAPPED_EPISODES`.

:func:`fleet_schedule` draws a seeded schedule for N servers over D days: Poisson arrivals per
class at the trace's rates, durations from the fitted log-normals. Each episode can become a
scenario fault on one host of the ``gpu-node-8x-h100`` profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sreagent.scenarios._classes import FaultClass

OBSERVED_SERVERS = 400
OBSERVED_DAYS = 348.0
"""Upstream's observation: 400 servers for 348 days (servers that never failed are absent)."""

DESCRIPTION_TO_CLASS: dict[str, FaultClass] = {
    "GPU DBE(Double Bit ECC) > Threshold": FaultClass.GPU_ECC_DBE,
    "GPU SBE(Single Bit ECC) > Threshold": FaultClass.GPU_ECC_DBE,
    "GPU xid Error": FaultClass.GPU_XID,
    "GPU device unknow error": FaultClass.GPU_XID,
    "GPU Lost": FaultClass.GPU_XID,
    "GPU device not found": FaultClass.GPU_XID,
    "nvidia-smi Timeout": FaultClass.GPU_XID,
    "GPU PCI link width low": FaultClass.PCIE_DEGRADATION,
    "GPU P2P Bandwidth Low": FaultClass.NVLINK_DEGRADATION,
    "GPU Temperature High": FaultClass.GPU_THERMAL_THROTTLE,
    "Speed Critical (Sensor)": FaultClass.GPU_THERMAL_THROTTLE,
    "Power Supply Failure detected": FaultClass.GPU_POWER_THROTTLE,
    "Link Down": FaultClass.RDMA_LINK_ERRORS,
    "Rnic Gid Error": FaultClass.RDMA_LINK_ERRORS,
    "NIC Link Speed low": FaultClass.RDMA_LINK_ERRORS,
    "NIC Lost": FaultClass.RDMA_LINK_ERRORS,
    "NIC PCI link Width low": FaultClass.RDMA_LINK_ERRORS,
    "Suspect Machine Offline": FaultClass.COLLECTIVE_STRAGGLER,
}
"""Trace ``desc`` -> fault class. Fan failures and PSU failures show as thermal and power
throttling (the GPU protects itself); "Suspect Machine Offline" is what training-job
troubleshooting flags when one node's ranks stall the job."""


@dataclass(frozen=True)
class ClassStats:
    episodes: int
    rate_per_server_day: float
    log_hours_mean: float
    """Mean of ln(duration in hours) (durations floored at 0.05 h)."""
    log_hours_std: float


# Computed by compute_fleet_stats() from faults.parquet at upstream commit 7aacdc8c.
FLEET_CLASS_STATS: dict[FaultClass, ClassStats] = {
    FaultClass.GPU_THERMAL_THROTTLE: ClassStats(33, 0.00023707, 4.2121, 1.7152),
    FaultClass.GPU_POWER_THROTTLE: ClassStats(25, 0.0001796, 5.2476, 1.5705),
    FaultClass.GPU_XID: ClassStats(66, 0.00047414, 1.6018, 2.5288),
    FaultClass.GPU_ECC_DBE: ClassStats(61, 0.00043822, 1.4937, 3.1012),
    FaultClass.NVLINK_DEGRADATION: ClassStats(3, 2.155e-05, 7.0753, 0.4419),
    FaultClass.PCIE_DEGRADATION: ClassStats(25, 0.0001796, 3.65, 2.4417),
    FaultClass.COLLECTIVE_STRAGGLER: ClassStats(14, 0.00010057, 2.584, 1.3002),
    FaultClass.RDMA_LINK_ERRORS: ClassStats(70, 0.00050287, 2.9487, 2.7062),
}
UNMAPPED_EPISODES = 287
"""Episodes whose description has no fault class here (of 584; 297 are mapped)."""


def compute_fleet_stats(parquet: Path) -> tuple[dict[FaultClass, ClassStats], int]:
    """Per-class statistics of the trace (and the number of unmapped episodes)."""
    import pyarrow.parquet as pq

    table = pq.read_table(parquet, columns=["start_day", "end_day", "desc"]).to_pydict()
    hours: dict[FaultClass, list[float]] = {}
    unmapped = 0
    for start, end, desc in zip(table["start_day"], table["end_day"], table["desc"], strict=True):
        klass = DESCRIPTION_TO_CLASS.get(desc)
        if klass is None:
            unmapped += 1
            continue
        hours.setdefault(klass, []).append(max((end - start) * 24.0, 0.05))
    stats = {}
    for klass in FaultClass:
        if klass not in hours:
            continue
        logs = np.log(np.array(hours[klass]))
        stats[klass] = ClassStats(
            episodes=len(logs),
            rate_per_server_day=round(len(logs) / (OBSERVED_SERVERS * OBSERVED_DAYS), 8),
            log_hours_mean=round(float(logs.mean()), 4),
            log_hours_std=round(float(logs.std()), 4),
        )
    return stats, unmapped


@dataclass(frozen=True)
class FleetEpisode:
    """One fault episode of a fleet schedule."""

    server: int
    fault_class: FaultClass
    start_s: float
    duration_s: float


def fleet_schedule(seed: int, servers: int, days: float,
                   stats: dict[FaultClass, ClassStats] | None = None) -> list[FleetEpisode]:
    """Seeded fault episodes for ``servers`` GPU servers over ``days``, trace-calibrated."""
    from sreagent.scenarios._world import stream

    table = stats or FLEET_CLASS_STATS
    episodes = []
    for klass in sorted(table):
        s = table[klass]
        rng = stream(seed, "fleet", str(klass))
        count = int(rng.poisson(s.rate_per_server_day * servers * days))
        starts = rng.uniform(0, days * 86_400, count)
        hosts = rng.integers(0, servers, count)
        durations = np.exp(rng.normal(s.log_hours_mean, s.log_hours_std, count)) * 3_600
        episodes += [FleetEpisode(int(h), klass, float(round(t, 3)), float(round(d, 3)))
                     for h, t, d in zip(hosts, starts, durations, strict=True)]
    return sorted(episodes, key=lambda e: (e.start_s, e.server, e.fault_class))
