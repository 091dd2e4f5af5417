"""Detectors: per-series hot masks from static, hardware-aware and robust-baseline rules.

Every series the rule table knows gets a baseline from the leading part of the window
(median and MAD, so a burst inside the baseline does not inflate it), and a per-sample score:

* a static threshold (``warn`` / ``crit``), some of them hardware-aware (disk latency by
  device kind from the batch inventory, run queue by CPU count, GPU power by its limit);
* a robust z-score: ``z >= z_open`` and a move of at least ``min_relative_change`` of the
  baseline (and at least the rule's ``floor``), so a noiseless baseline cannot make a tiny
  wiggle look huge;
* counters become per-sample increments first, with resets (a restart) handled.

A sample only counts once its run of hot samples is ``open_samples`` long (persistence), and
deviation-only runs of a series that already had ``recurring_min_bursts`` similar, finished
bursts earlier in the window are scored as routine (cron jobs, backups, checkpoints).
Events (OOM kills, Xids, link flaps...) are definitive: one is enough.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from sreagent.roles._stats import (
    Band,
    Baseline,
    Spread,
    counter_increments,
    median,
    run_lengths,
    runs,
    spreads,
)
from sreagent.runtime._config import ChainConfig
from sreagent.runtime._view import EvidenceView, Series, SeriesKey
from sreagent.telemetry.names import METRICS_BY_NAME

Direction = Literal["up", "down"]

SCORE_CRIT = 1.0
SCORE_WARN = 0.75
SCORE_DEVIATION = 0.3
SCORE_ROUTINE = 0.1
SCORE_BAND = 0.6
"""A sustained band exit of a capacity gauge (still filling) or an error rate: enough to
open an incident alone (``min_risk_to_open`` 0.55), unlike an activity metric's deviation."""
BAND_RUN = 3
"""Consecutive out-of-band samples a band exit needs (the ground truth's "visible" run)."""
_BAND_FLOORS = {
    "ratio": 0.01,
    "bool": 0.5,
    "tasks": 1.5,
    "requests": 1.5,
    "sockets": 1.5,
    "processes": 1.5,
    "fds": 1.5,
}
"""Smallest band margin by unit: a move of one task or socket is no exit."""
IDLE_SHARE = 0.02
"""A ``surge`` series whose baseline median is below this share of its rule's floor (0.01
cores, about 0.4 MiB/s) was idle: its work starting is a scheduled job, not an escalation."""


@dataclass(frozen=True)
class Rule:
    metric: str
    family: str
    direction: Direction = "up"
    counter: bool = False
    warn: float | None = None
    crit: float | None = None
    floor: float = 0.0
    """Smallest absolute move (in the metric's unit) a deviation must make."""
    labels: tuple[tuple[str, str], ...] = ()
    """Only series carrying these labels."""
    deviation: bool = True
    band: Literal["", "fill", "error", "peer", "surge", "quota", "slowdown"] = ""
    """Band-exit detector (see _band_exits): ``fill`` for capacity gauges that fill up
    (memory, filesystems, fds, GPU memory and temperature, listen queues), ``error`` for
    error and loss rates, ``peer`` for a device that leaves its band while its peers stay
    in theirs (_peer_divergence); for activity metrics, whose plain band exits are everyday
    bursts, only exits with discriminating context (_gate_by_context): ``surge`` for a user
    of a shared resource (a process's or cgroup's CPU, a cgroup's IO) that leaves its band
    for the first time in the window while the shared resource leaves its own, ``quota``
    for a cgroup's throttling that starts while its use climbs, ``slowdown`` for a device's
    latency that climbs while the IO offered to it stays in its band; empty for the rest."""
    band_family: str = ""
    """Family a band exit counts in when ``family`` only attributes (a process's RSS growing
    past its normal range is a memory risk, not just a name)."""
    band_excess: float = 0.0
    """Share of the band's width a ``fill`` exit must also clear (bursty gauges)."""
    band_floor: float | None = None
    """Smallest band margin, when the unit's (_BAND_FLOORS) does not fit the metric."""


def _r(metric: str, family: str, **kw: object) -> Rule:
    return Rule(metric, family, **kw)  # type: ignore[arg-type]


RULES: tuple[Rule, ...] = (
    _r("cpu_utilisation_ratio", "cpu", warn=0.92, crit=0.98, floor=0.15),
    _r("procs_running", "cpu", floor=2.0),
    _r("load_average_1m", "cpu", floor=2.0),
    _r("pressure_some_ratio", "cpu", labels=(("resource", "cpu"),), warn=0.3, crit=0.6, floor=0.1),
    _r(
        "pressure_some_ratio",
        "memory",
        labels=(("resource", "memory"),),
        warn=0.2,
        crit=0.5,
        floor=0.05,
    ),
    _r(
        "pressure_full_ratio",
        "memory",
        labels=(("resource", "memory"),),
        warn=0.1,
        crit=0.3,
        floor=0.03,
    ),
    _r("pressure_some_ratio", "io", labels=(("resource", "io"),), warn=0.3, crit=0.6, floor=0.1),
    _r("pressure_full_ratio", "io", labels=(("resource", "io"),), warn=0.2, crit=0.5, floor=0.05),
    _r("memory_used_ratio", "memory", warn=0.92, crit=0.97, floor=0.1, band="fill"),
    _r("swap_in_pages_per_second", "swap", warn=500.0, floor=100.0, band="error"),
    _r("swap_out_pages_per_second", "swap", warn=500.0, floor=100.0, band="error"),
    _r("major_page_faults_per_second", "swap", floor=100.0, band="error"),
    _r("oom_kills_total", "oom", counter=True, floor=1.0),
    _r("cpu_iowait_ratio", "io", floor=0.1),
    _r("disk_utilisation_ratio", "io", warn=0.95, floor=0.3),
    _r("disk_await_seconds", "io", floor=0.005, band="slowdown"),
    _r("disk_in_flight", "io", floor=4.0),
    _r("disk_io_errors_total", "io_errors", counter=True, floor=1.0),
    _r("filesystem_used_ratio", "fs", warn=0.95, crit=0.99, floor=0.05, band="fill"),
    # Free bytes move first on a large filesystem (a 1 % fill is many gigabytes): the band
    # exit only, the used ratio carries the thresholds.
    _r("filesystem_free_bytes", "fs", direction="down", deviation=False, band="fill"),
    _r("filesystem_inodes_used_ratio", "fs_inodes", warn=0.95, crit=0.99, floor=0.05, band="fill"),
    _r("fds_used_ratio", "fd", warn=0.85, crit=0.95, floor=0.1, band="fill"),
    _r("process_fds_used_ratio", "fd", warn=0.85, crit=0.95, floor=0.1, band="fill"),
    _r("process_cpu_ratio", "process_cpu", floor=0.5, band="surge", band_family="cpu"),
    _r("process_rss_bytes", "process_memory", floor=256 * 2**20, band="fill", band_family="memory"),
    _r("tcp_retransmit_ratio", "net", warn=0.02, crit=0.08, floor=0.005, band="error"),
    _r("tcp_retransmits_per_second", "net", floor=20.0, band="error"),
    _r("network_drops_per_second", "net", floor=5.0, band="error"),
    _r("network_errors_per_second", "net", floor=5.0, band="error"),
    _r("network_link_up", "link", direction="down", warn=0.5, deviation=False),
    _r("network_carrier_changes_total", "link", counter=True, floor=1.0),
    _r("tcp_listen_overflows_per_second", "listen", warn=1.0, floor=1.0, band="error"),
    _r("tcp_listen_drops_per_second", "listen", warn=1.0, floor=1.0, band="error"),
    # Accept queues are bursty (a client reconnect storm fills them to 10 % for a few
    # seconds): the exit must also clear half the band's width.
    _r(
        "tcp_listen_backlog_ratio",
        "listen",
        warn=0.9,
        crit=1.0,
        floor=0.2,
        band="fill",
        band_excess=0.5,
    ),
    _r("cgroup_cpu_throttled_ratio", "cgroup_cpu", warn=0.25, crit=0.6, floor=0.1),
    # Throttled time is the kernel's own measure of the quota biting (throttled_usec): its
    # band margin is floored at a microsecond per second, not at a whole per cent like a
    # ratio's, so it leaves its band as soon as the throttling starts to grow.
    _r(
        "cgroup_cpu_throttled_seconds_per_second",
        "cgroup_cpu",
        floor=0.1,
        band="quota",
        band_floor=1e-6,
    ),
    _r("cgroup_cpu_usage_ratio", "cgroup_usage", floor=0.5, band="surge", band_family="cpu"),
    _r(
        "cgroup_io_bytes_per_second",
        "cgroup_usage",
        floor=20 * 2**20,
        band="surge",
        band_family="io",
    ),
    _r("cgroup_pressure_some_ratio", "cgroup_pressure", warn=0.3, crit=0.6, floor=0.1),
    _r("cgroup_memory_used_ratio", "cgroup_memory", warn=0.95, crit=0.99, floor=0.1, band="fill"),
    _r("cgroup_oom_kills_total", "oom", counter=True, floor=1.0),
    _r("gpu_temperature_celsius", "gpu_thermal", warn=87.0, crit=92.0, floor=8.0, band="fill"),
    _r("gpu_throttled", "gpu_throttle", warn=0.5, deviation=False),
    _r("gpu_sm_clock_hertz", "gpu_throttle", direction="down", floor=150e6),
    _r("gpu_power_watts", "gpu_throttle", floor=50.0),
    _r("gpu_utilisation_ratio", "gpu_util", direction="down", floor=0.3, band="peer"),
    _r("gpu_memory_used_ratio", "gpu_memory", warn=0.97, crit=0.995, floor=0.1, band="fill"),
    _r("gpu_ecc_errors_total", "gpu_ecc", counter=True, floor=1.0),
    _r("gpu_remapped_rows_total", "gpu_ecc", counter=True, floor=1.0),
    _r("gpu_nvlink_errors_total", "gpu_link", counter=True, floor=1.0),
    _r("gpu_nvlink_active_links", "gpu_link", direction="down", floor=1.0),
    _r("gpu_pcie_link_width", "gpu_link", direction="down", floor=1.0),
    _r("gpu_pcie_link_generation", "gpu_link", direction="down", floor=1.0),
    _r("ib_port_errors_total", "rdma", counter=True, floor=1.0),
    _r("ib_port_up", "rdma", direction="down", warn=0.5, deviation=False),
)

EVENT_FAMILIES: dict[str, str] = {
    "oom_kill": "oom",
    "gpu_xid": "gpu_xid",
    "gpu_ecc_dbe": "gpu_ecc",
    "pcie_aer": "gpu_link",
    "nvlink_error": "gpu_link",
    "link_down": "link",
    "io_error": "io_errors",
    "fs_readonly": "fs",
    "hung_task": "io",
}
EVENT_SCORES = {"critical": 1.0, "error": 0.9, "warning": 0.6, "info": 0.3}
ATTRIBUTION_FAMILIES = frozenset({"process_cpu", "process_memory", "cgroup_usage"})
"""Families that say *who* uses a resource, not that it is in trouble: they localise a
hypothesis but add no risk on their own (a busy process on an idle host is no incident)."""

_BY_METRIC: dict[str, list[Rule]] = {}
for _rule in RULES:
    _BY_METRIC.setdefault(_rule.metric, []).append(_rule)


def rule_for(series: Series) -> Rule | None:
    for rule in _BY_METRIC.get(series.metric, ()):
        if all(series.label(k) == v for k, v in rule.labels):
            return rule
    return None


@dataclass
class SeriesDetection:
    """What the detectors concluded about one series."""

    series: Series
    rule: Rule
    values: np.ndarray
    """The analysed values (increments for counters)."""
    base: Baseline
    score: np.ndarray
    """Per-sample score on the series' own time axis, persistence applied."""
    static_level: np.ndarray
    """0 none, 1 warn, 2 crit, per sample."""
    warn: float | None
    routine: bool = False
    detector: str = ""
    band_score: np.ndarray | None = None
    """Per-sample score of the band-exit detector alone (None: the rule has none)."""
    normal: Band | None = None
    """The baseline band the band exit is measured against."""

    @functools.cached_property
    def z(self) -> np.ndarray:
        """Robust z-score per sample, in the rule's direction (made when first read: only
        the findings' series need it)."""
        sign = 1.0 if self.rule.direction == "up" else -1.0
        z: np.ndarray = sign * (self.values - self.base.median) / self.base.sigma
        return z

    @property
    def fired(self) -> bool:
        return bool(self.score.max(initial=0.0) > 0.0)

    def first_index(self) -> int | None:
        hit = np.nonzero(self.score > 0)[0]
        return int(hit[0]) if hit.shape[0] else None


def _static_warn(
    view: EvidenceView, config: ChainConfig, series: Series, rule: Rule
) -> float | np.ndarray | None:
    """Hardware-aware thresholds override the table's static ones."""
    if series.metric == "disk_await_seconds":
        kind = view.disk_kind(series.entity.split("/", 1)[-1])
        return float(getattr(config.disk_await_s, kind, config.disk_await_s.unknown))
    if series.metric in ("procs_running", "load_average_1m") and view.cpu_count:
        return 2.0 * view.cpu_count
    if series.metric == "gpu_power_watts":
        limit = view.get("gpu_power_limit_watts", series.entity)
        if limit is not None and len(limit):
            # Against the limit in force at each sample: a lowered cap must not make the
            # power drawn before it was lowered look like a breach.
            idx = np.clip(np.searchsorted(limit.ts, series.ts, "right") - 1, 0, len(limit) - 1)
            return 0.98 * limit.values[idx]
    return rule.warn


def baseline_end(view: EvidenceView, config: ChainConfig) -> int:
    span = view.end_ns - view.start_ns
    length = min(config.detection.baseline_seconds * 1e9, config.detection.baseline_fraction * span)
    return view.start_ns + int(length)


def _band_of(rule: Rule, spread: Spread) -> Band | None:
    """The baseline band of a series whose rule has a band exit (None: none, or too few
    baseline samples); ``spread`` is its baseline part's."""
    if not rule.band or spread.n < 5:
        return None
    return spread.band(_unit_floor(rule.metric) if rule.band_floor is None else rule.band_floor)


def _unit_floor(metric: str) -> float:
    spec = METRICS_BY_NAME.get(metric)
    return _BAND_FLOORS.get(spec.unit if spec else "", 1e-9)


def _excess(values: np.ndarray, rule: Rule, normal: Band) -> np.ndarray:
    """How far each sample is outside the band in the rule's direction (negative: inside)."""
    if rule.direction == "up":
        return values - normal.high
    return normal.low - values


def _band_exits(
    values: np.ndarray,
    rule: Rule,
    in_base: np.ndarray,
    normal: Band | None,
    covers_baseline: bool = True,
    base_median: float | None = None,
    top: float | None = None,
) -> np.ndarray | None:
    """Per-sample score of a sustained exit from the baseline band (causal: sample i only
    looks at samples up to i).

    The band is the baseline's interquartile range widened by a robust margin (_stats.band).
    A ``fill`` gauge counts once it has been outside the band for BAND_RUN samples *and* is
    not receding (at least its value two samples earlier): a filesystem, a heap or a queue
    that keeps growing past its normal range, where a static threshold fires only near the
    end. An ``error`` rate counts once it has been outside for BAND_RUN samples by at least
    the band's width and a quarter of the rule's floor, or by anything at all when the
    baseline had none (errors appearing where there were none). Once it counts, the exit
    stays hot until the series is back inside its band.

    ``peer``, ``surge``, ``quota`` and ``slowdown`` exits need other series to count: this
    returns their candidate samples (1.0) for _peer_divergence and _gate_by_context.
    """
    if normal is None:
        return None
    if top is not None and not (
        (top - normal.high if rule.direction == "up" else normal.low - top) > 0
    ):
        # Not even the furthest sample (``top``, see detect_series) is out of the band.
        return np.zeros(values.shape[0], dtype=np.float64)
    sign = 1.0 if rule.direction == "up" else -1.0
    excess = _excess(values, rule, normal)
    out = ~in_base & (excess > 0)
    if not out.any():
        # Never out of its band: no exit of any kind (the common case, cheaply).
        return np.zeros(values.shape[0], dtype=np.float64)
    if rule.band in ("peer", "slowdown"):
        # The raw exit: the peers' exits or the device's load decide whether it counts.
        return out.astype(np.float64)
    long_enough = run_lengths(out) >= BAND_RUN
    rising = np.zeros(values.shape[0], dtype=bool)
    # Not receding: quantised gauges (whole degrees, whole fds) plateau between steps.
    rising[2:] = sign * (values[2:] - values[:-2]) >= 0
    if rule.band in ("surge", "quota"):
        if not covers_baseline:
            # A process or cgroup that started during the window (a job, a restart) has
            # no normal range of its own to leave.
            return np.zeros(values.shape[0], dtype=np.float64)
        if (
            rule.band == "surge"
            and (median(values[in_base]) if base_median is None else base_median)
            < IDLE_SHARE * rule.floor
        ):
            # Idle through the baseline (cron, a backup agent waiting for its schedule):
            # work starting there is a job being run, not a worker taking more.
            return np.zeros(values.shape[0], dtype=np.float64)
        # "surge": by at least the rule's floor (half a core, 20 MiB/s) and the band's
        # width; "quota": by the band's width (throttled time at least doubling its normal
        # range), the kernel's throttling is itself the sign that the limit bites.
        needed = max(rule.floor, normal.width) if rule.band == "surge" else normal.width
        candidate = long_enough & rising & (excess >= needed)
        # An earlier run counts at half the bar: the same job's earlier runs, a little
        # smaller or noisier, are still the same job.
        return _first_excursion(candidate, out, excess >= needed / 2).astype(np.float64)
    if rule.band == "fill":
        trigger = long_enough & rising & (excess >= rule.band_excess * normal.width)
    else:
        quiet = float(np.max(np.abs(values[in_base]))) == 0.0
        needed = 0.0 if quiet else max(normal.width, rule.floor / 4.0)
        trigger = long_enough & (excess >= needed)
    return _hold(trigger, out)


def _may_exit(
    rule: Rule, values: np.ndarray, after: np.ndarray, base: Baseline, covers_baseline: bool
) -> bool:
    """Whether a ``surge`` or ``quota`` exit is possible at all, from the baseline median
    alone (a cheap whole-series screen: most processes and cgroups never move, and the band's
    three percentiles are the costly part). The band's top is at least the median, so a
    series that never rises ``floor`` above it cannot surge, and one that never rises above
    it cannot leave its band."""
    if rule.band not in ("surge", "quota"):
        return True
    if not covers_baseline or not after.any():
        return False
    peak = float(values[after].max())
    if rule.band == "quota":
        return peak > base.median
    return base.median >= IDLE_SHARE * rule.floor and peak - base.median >= rule.floor


def _hold(trigger: np.ndarray, out: np.ndarray) -> np.ndarray:
    """SCORE_BAND from the first trigger of each out-of-band run to the run's end."""
    score = np.zeros(out.shape[0], dtype=np.float64)
    for start, end in runs(out):
        fired = np.nonzero(trigger[start:end])[0]
        if fired.shape[0]:
            score[start + int(fired[0]) : end] = SCORE_BAND
    return score


def _first_excursion(candidate: np.ndarray, out: np.ndarray, over: np.ndarray) -> np.ndarray:
    """``candidate`` only within the out-of-band run in which the series first went over
    half its bar (``over``, anywhere in the window, the baseline part included, for BAND_RUN
    samples, what would have counted as an exit): a process or tenant that was steady through the window and now takes more is
    new behaviour; one that already went over its bar earlier in the window (a cron job, a
    backup, a checkpoint that ran before) is doing its routine again."""
    earlier = [end for start, end in runs(over) if end - start >= BAND_RUN]
    if not earlier or not candidate.any():
        return candidate
    first_end = earlier[0]
    keep = np.zeros(candidate.shape[0], dtype=bool)
    for start, end in runs(out):
        if start >= first_end:
            break
        keep[start:end] = True
    return candidate & keep


def analysed_values(series: Series, rule: Rule) -> np.ndarray:
    """What a rule's detectors read of a series: its values, or a counter's increments."""
    return counter_increments(series.values.copy()) if rule.counter else series.values


def baseline_length(series: Series, base_end_ns: int) -> int:
    """How many leading samples of ``series`` form its baseline (times are ascending, so the
    samples at or before ``base_end_ns`` are a prefix)."""
    return int(np.searchsorted(series.ts, base_end_ns, "right"))


def detect_series(
    view: EvidenceView,
    config: ChainConfig,
    series: Series,
    rule: Rule,
    base_end_ns: int,
    values: np.ndarray | None = None,
    spread: Spread | None = None,
    extremes: tuple[float, float] | None = None,
) -> SeriesDetection:
    """One series' detection. ``values`` (:func:`analysed_values`), ``spread`` (of its
    baseline part) and ``extremes`` (the minimum and maximum of ``values``) may come
    precomputed: :func:`detect` computes every series' spread in one vectorised pass and
    takes the extremes from the view's series statistics."""
    det = config.detection
    if values is None:
        values = analysed_values(series, rule)
    in_base = series.ts <= base_end_ns
    after = ~in_base
    if spread is None:
        spread = spreads([values[in_base]])[0]
    base = spread.baseline(max(rule.floor / 4.0, 1e-9))
    sign = 1.0 if rule.direction == "up" else -1.0
    # The sample furthest in the rule's direction bounds every per-sample test below (each
    # is monotonic in the value): when even it passes no test, that test's mask is all
    # false and is not built. Most series never deviate and never cross a threshold. A NaN
    # extreme says nothing, and then every mask is built.
    top = None
    if extremes is not None and not (math.isnan(extremes[0]) or math.isnan(extremes[1])):
        top = extremes[1] if rule.direction == "up" else extremes[0]
    warn_at = _static_warn(view, config, series, rule)
    warn = (
        None
        if warn_at is None
        else (median(warn_at) if isinstance(warn_at, np.ndarray) else float(warn_at))
    )
    crit = rule.crit if warn_at is rule.warn else None
    static_level = np.zeros(values.shape[0], dtype=np.int8)
    any_static = False
    if warn_at is not None and not (
        top is not None
        and not isinstance(warn_at, np.ndarray)
        and sign * top < sign * warn_at
        and (crit is None or sign * top < sign * crit)
    ):
        static_level = np.where(sign * values >= sign * warn_at, 1, 0).astype(np.int8)
        if crit is not None:
            static_level[sign * values >= sign * crit] = 2
        any_static = bool(static_level.any())
    # Deviating samples anywhere in the window (the baseline part too), for the bursts.
    deviating: np.ndarray | None = None
    dev_hot: np.ndarray | None = None
    if rule.counter:
        move = sign * (values - base.median)
        z = move / base.sigma
        # Errors that appear where there were none are definitive; a counter that always
        # moves must also move faster than usual.
        quiet = base.n > 0 and float(np.max(values[in_base], initial=0.0)) == 0.0
        if quiet:
            dev_hot = after & (values >= rule.floor)
        else:
            dev_hot = after & (z >= det.z_open) & (move >= rule.floor)
    elif rule.deviation and base.n >= 5:
        needed = np.maximum(rule.floor, det.min_relative_change * abs(base.median))
        top_move = None if top is None else sign * (top - base.median)
        if top_move is None or not (top_move < needed or top_move / base.sigma < det.z_open):
            move = sign * (values - base.median)
            z = move / base.sigma
            deviating = (z >= det.z_open) & (move >= needed)
            dev_hot = after & deviating
    if dev_hot is None:
        hot = static_level > 0 if any_static else None
    else:
        hot = dev_hot | (static_level > 0) if any_static else dev_hot
    persist = 1 if rule.counter else det.open_samples
    # Earlier bursts of the same shape anywhere in the window, the baseline part included
    # (a backup every ten minutes has often run once before the analysis part starts);
    # found when a deviation-only run needs them.
    bursts: list[tuple[int, int]] | None = None
    score = np.zeros(values.shape[0], dtype=np.float64)
    routine = False
    for start, end in runs(hot) if hot is not None else ():
        if end - start < persist:
            continue
        sl = slice(start + persist - 1, end)
        static_run = any_static and static_level[start:end].max() > 0
        # A deviation alone is weak evidence (SCORE_DEVIATION): a backup raises IO pressure
        # far outside its baseline too. Grading deviations by size was tried and opened
        # incidents on the no-fault controls (docs/evaluation.md).
        run_score = np.where(
            static_level[sl] == 2,
            SCORE_CRIT,
            np.where(static_level[sl] == 1, SCORE_WARN, SCORE_DEVIATION),
        )
        if rule.counter:
            run_score = np.maximum(run_score, SCORE_WARN)
        if not static_run and not rule.counter:
            if bursts is None:
                bursts = (
                    []
                    if deviating is None
                    else [r for r in runs(deviating) if r[1] - r[0] >= persist]
                )
            earlier = [e - b for b, e in bursts if e <= start]
            if len(earlier) >= det.recurring_min_bursts and (end - start) <= 2 * max(earlier):
                run_score = np.full(run_score.shape, SCORE_ROUTINE)
                routine = True
        score[sl] = run_score
    # A series that starts later than the first tenth of the baseline started during the
    # window (a job, a restarted process): it has no steady past of its own.
    covers = bool(series.ts[0] - view.start_ns <= 0.1 * (base_end_ns - view.start_ns))
    normal = _band_of(rule, spread) if _may_exit(rule, values, after, base, covers) else None
    band_score = _band_exits(values, rule, in_base, normal, covers, spread.median, top)
    banded = (
        rule.band in ("fill", "error")
        and band_score is not None
        and bool(band_score.max(initial=0.0) > 0)
    )
    if banded and band_score is not None:
        # (Scores are never negative: an all-zero band score would change nothing.)
        score = np.maximum(score, band_score)
    detector = (
        "counter_increase"
        if rule.counter
        else "static_threshold"
        if any_static
        else ("band_trend" if rule.band == "fill" else "band_exit")
        if banded
        else "recurring_burst"
        if routine
        else "robust_zscore"
    )
    return SeriesDetection(
        series,
        rule,
        values,
        base,
        score,
        static_level,
        warn,
        routine=routine and not banded and not any_static,
        detector=detector,
        band_score=band_score,
        normal=normal,
    )


@dataclass
class EventHit:
    ts_ns: int
    kind: str
    entity: str
    family: str
    score: float
    attributes: dict[str, str]
    batch_id: str
    message: str


@dataclass
class Detection:
    """Everything the detectors saw in one window."""

    grid: np.ndarray
    base_end_ns: int
    series: list[SeriesDetection]
    events: list[EventHit]
    risk: np.ndarray
    family_risk: dict[str, np.ndarray] = field(default_factory=dict)

    def by_metric(self, metric: str) -> list[SeriesDetection]:
        return [d for d in self.series if d.series.metric == metric]

    def get(self, metric: str, entity: str = "host", **labels: str) -> SeriesDetection | None:
        want = tuple(sorted(labels.items()))
        for d in self.series:
            if (
                d.series.metric == metric
                and d.series.entity == entity
                and (not labels or d.series.labels == want)
            ):
                return d
        return None


def _peer_divergence(grid: np.ndarray, dets: list[SeriesDetection]) -> None:
    """Keep a ``peer`` band exit only while most of its peers stay inside their bands.

    Eight GPUs of one job that idle together are a checkpoint or a paused job; one GPU that
    leaves its band alone is a straggler or a failing device. Peers are the other series of
    the same metric (at least two of them); the exit then scores like any band exit.
    """
    by_metric: dict[str, list[SeriesDetection]] = {}
    for d in dets:
        if d.rule.band == "peer" and d.band_score is not None:
            by_metric.setdefault(d.rule.metric, []).append(d)
    for group in by_metric.values():
        if len(group) < 3:
            for d in group:
                d.band_score = None
            continue
        out = np.zeros((len(group), grid.shape[0]))
        for k, d in enumerate(group):
            idx = np.clip(np.searchsorted(grid, d.series.ts), 0, grid.shape[0] - 1)
            out[k, idx] = d.band_score > 0  # type: ignore[operator]
        total = out.sum(axis=0)
        for k, d in enumerate(group):
            others_out = (total - out[k]) / (len(group) - 1)
            idx = np.clip(np.searchsorted(grid, d.series.ts), 0, grid.shape[0] - 1)
            diverging = (d.band_score > 0) & (others_out[idx] < 0.5)  # type: ignore[operator]
            d.band_score = np.where(run_lengths(diverging) >= BAND_RUN, SCORE_BAND, 0.0)
            if d.band_score.max(initial=0.0) > 0:
                d.score = np.maximum(d.score, d.band_score)
                if d.detector in ("robust_zscore", "recurring_burst"):
                    d.detector, d.routine = "peer_divergence", False


_SURGE_CONTEXT = {
    "process_cpu_ratio": "cpu_utilisation_ratio",
    "cgroup_cpu_usage_ratio": "cpu_utilisation_ratio",
    "cgroup_io_bytes_per_second": "disk_utilisation_ratio",
}
"""The shared resource a user's surge must push out of its band too: host CPU for CPU use,
the disks' utilisation for a cgroup's IO."""
_DEVICE_LOAD = (
    "disk_read_bytes_per_second",
    "disk_write_bytes_per_second",
    "disk_reads_per_second",
    "disk_writes_per_second",
)
"""The IO offered to a device: a slowdown is latency rising while none of these rises."""


def _grid_index(grid: np.ndarray, series: Series) -> np.ndarray:
    return np.clip(np.searchsorted(grid, series.ts), 0, grid.shape[0] - 1)


def _over_band(
    view: EvidenceView,
    grid: np.ndarray,
    base_end_ns: int,
    series: list[Series],
    known: dict[SeriesKey, Spread],
) -> np.ndarray:
    """Per grid sample: any of ``series`` above its baseline band (after the baseline).

    ``known``: the spreads of series' raw baseline values computed so far (filled here)."""
    missing = [s for s in series if s.key not in known]
    for s, spread in zip(
        missing,
        spreads([s.values[: baseline_length(s, base_end_ns)] for s in missing]),
        strict=True,
    ):
        known[s.key] = spread
    over = np.zeros(grid.shape[0], dtype=bool)
    for s in series:
        spread = known[s.key]
        if spread.n < 5:
            continue
        normal = spread.band(_unit_floor(s.metric))
        over[_grid_index(grid, s)] |= ~(s.ts <= base_end_ns) & (s.values > normal.high)
    return over


def _gate_by_context(
    view: EvidenceView,
    grid: np.ndarray,
    base_end_ns: int,
    dets: list[SeriesDetection],
    known: dict[SeriesKey, Spread],
) -> None:
    """Keep a ``surge``, ``quota`` or ``slowdown`` candidate only where its context agrees.

    * ``surge``: the shared resource is out of its band at the same sample (host CPU for a
      process's or a cgroup's CPU, a disk's utilisation for a cgroup's IO): the surge is
      felt, not a busy process on an idle host;
    * ``quota``: the cgroup's own CPU use is above its band at the same sample: throttling
      that starts while demand climbs is the quota biting, not a scheduling blip;
    * ``slowdown``: latency out of its band while none of the device's load series (bytes
      and operations per second, read and write) is above its band, for BAND_RUN samples,
      and not receding: the device is slower for the same work
      (a backup's latency rises with its own throughput, and does not count).

    A candidate that counts scores SCORE_BAND until the series is back inside its band.
    """
    context: dict[str, np.ndarray] = {}
    for d in dets:
        kind, normal, raw = d.rule.band, d.normal, d.band_score
        if kind not in ("surge", "quota", "slowdown") or normal is None or raw is None:
            continue
        s = d.series
        idx = _grid_index(grid, s)
        in_base = s.ts <= base_end_ns
        excess = _excess(d.values, d.rule, normal)
        out = ~in_base & (excess > 0)
        if kind == "surge":
            shared = _SURGE_CONTEXT[d.rule.metric]
            if shared not in context:
                context[shared] = _over_band(view, grid, base_end_ns, view.metric(shared), known)
            trigger = (raw > 0) & context[shared][idx]
            detector = "first_surge"
        elif kind == "quota":
            usage = view.get("cgroup_cpu_usage_ratio", s.entity)
            demand = _over_band(view, grid, base_end_ns, [usage] if usage else [], known)[idx]
            trigger = (raw > 0) & demand
            detector = "quota_throttling"
        else:
            loads = [x for x in (view.get(m, s.entity) for m in _DEVICE_LOAD) if x]
            if not loads:
                d.band_score = None
                continue
            flat = ~_over_band(view, grid, base_end_ns, loads, known)
            counted = out & flat[idx]
            rising = np.zeros(s.values.shape[0], dtype=bool)
            rising[2:] = d.values[2:] >= d.values[:-2]
            trigger = (run_lengths(counted) >= BAND_RUN) & rising
            detector = "device_slowdown"
        d.band_score = _hold(trigger, out)
        if d.band_score.max(initial=0.0) > 0:
            d.score = np.maximum(d.score, d.band_score)
            d.detector, d.routine = detector, False


def detect(view: EvidenceView, config: ChainConfig) -> Detection:
    """Run every detector over the window and combine them into a per-sample joint risk.

    Joint risk per sample: within a family (signals of one resource) the strongest counts,
    across families they combine as independent risks, ``1 - prod(1 - r_family)``; so a
    second, independent resource going wrong raises the risk, but four views of one CPU
    spike do not add up to four problems.
    """
    grid = view.grid
    base_end = baseline_end(view, config)
    family_risk: dict[str, np.ndarray] = {}
    analysed: list[tuple[Series, Rule, np.ndarray]] = []
    for key in sorted(view.series):
        series = view.series[key]
        rule = rule_for(series)
        if rule is None or len(series) == 0:
            continue
        analysed.append((series, rule, analysed_values(series, rule)))
    # Every baseline's median, MAD and quartiles in one vectorised pass (_stats.spreads).
    base_spreads = spreads(
        [values[: baseline_length(series, base_end)] for series, _, values in analysed]
    )
    # Each series' minimum and maximum, computed for the observer already (counters are
    # analysed as increments: none for them).
    stats = view.series_stats()
    where = {key: i for i, key in enumerate(stats.keys)}
    lows, highs = stats.minimum.tolist(), stats.maximum.tolist()
    dets = [
        detect_series(
            view,
            config,
            series,
            rule,
            base_end,
            values,
            spread,
            None if rule.counter else (lows[where[series.key]], highs[where[series.key]]),
        )
        for (series, rule, values), spread in zip(analysed, base_spreads, strict=True)
    ]
    # The raw values' spreads known so far, for the context series of _gate_by_context.
    known = {
        series.key: spread
        for (series, rule, _), spread in zip(analysed, base_spreads, strict=True)
        if not rule.counter
    }
    _peer_divergence(grid, dets)
    _gate_by_context(view, grid, base_end, dets, known)
    for d in dets:
        rule, series = d.rule, d.series
        risky = (
            d.score
            if rule.family not in ATTRIBUTION_FAMILIES
            else (d.band_score if rule.band_family else None)
        )
        if d.fired and risky is not None and risky.max(initial=0.0) > 0:
            idx = np.clip(np.searchsorted(grid, series.ts), 0, grid.shape[0] - 1)
            fam = family_risk.setdefault(rule.band_family or rule.family, np.zeros(grid.shape[0]))
            np.maximum.at(fam, idx, risky)
    events: list[EventHit] = []
    for e in view.events:
        family = EVENT_FAMILIES.get(e.kind)
        if family is None:
            continue
        score = EVENT_SCORES.get(e.severity, 0.6)
        if e.kind in ("oom_kill", "gpu_xid", "gpu_ecc_dbe", "link_down"):
            score = max(score, 0.9)
        events.append(
            EventHit(e.ts_ns, e.kind, e.entity, family, score, e.attributes, e.batch_id, e.message)
        )
        i = int(np.clip(np.searchsorted(grid, e.ts_ns), 0, grid.shape[0] - 1))
        fam = family_risk.setdefault(family, np.zeros(grid.shape[0]))
        # An event keeps its family risky for a while: a flap or an Xid is not over when
        # its line is written.
        hold = max(1, config.detection.close_samples // 2)
        fam[i : i + hold] = np.maximum(fam[i : i + hold], score)
    risk = np.zeros(grid.shape[0])
    keep = np.ones(grid.shape[0])
    for name in sorted(family_risk):
        keep *= 1.0 - family_risk[name]
    risk = 1.0 - keep
    return Detection(grid, base_end, dets, events, risk, family_risk)
