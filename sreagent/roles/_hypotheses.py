"""Hypothesis scorers: one per fault class, each localised to an entity, features explicit.

Every scorer reads the detections and the view over the incident's interval and returns
candidates. A candidate's score is ``sum(weight * feature)`` over named features in [0, 1]
(written into the artifact), minus named penalties for counter-evidence; look-alike classes
score each other's distinguishing signal as counter-evidence:

* CPU saturation needs the *host* saturated; cgroup throttling needs a *cgroup* at its quota
  while the host has headroom.
* Disk IO saturation is a device problem; a noisy neighbour is one cgroup's use jumping while
  another cgroup stalls, and that jump is counter-evidence for plain saturation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sreagent.artifacts import EvidenceRef
from sreagent.roles._detectors import Detection, SeriesDetection
from sreagent.roles._processes import process_rows
from sreagent.roles._stats import median, percentile
from sreagent.runtime._view import EventRow, EvidenceView, Series


def level(x: float, lo: float, hi: float) -> float:
    """0 at or below ``lo``, 1 at or above ``hi``, linear between."""
    if hi == lo:
        return 1.0 if x >= hi else 0.0
    return float(min(1.0, max(0.0, (x - lo) / (hi - lo))))


@dataclass
class Candidate:
    fault_class: str
    entity: str
    features: dict[str, float]
    weights: dict[str, float]
    refs: list[EvidenceRef] = field(default_factory=list)
    counter_evidence: list[str] = field(default_factory=list)
    penalties: dict[str, float] = field(default_factory=dict)

    @property
    def score(self) -> float:
        s = sum(self.weights[k] * self.features.get(k, 0.0) for k in self.weights)
        return s - sum(self.penalties.values())


@dataclass
class Scope:
    """The incident's interval and handy readers over it."""

    view: EvidenceView
    det: Detection
    t0: int
    t1: int
    _figures: dict[tuple[object, ...], object] = field(default_factory=dict, repr=False,
                                                       compare=False)
    """Spans and percentiles already computed: the scorers ask for the same series' figures
    many times (a pure function of the series and the interval, so caching changes nothing
    but the time taken)."""

    def _span(self, s: Series) -> tuple[int, int]:
        key = ("span", s.metric, s.entity, s.labels)
        found = self._figures.get(key)
        if found is None:
            found = (int(np.searchsorted(s.ts, self.t0, "left")),
                     int(np.searchsorted(s.ts, self.t1, "right")))
            self._figures[key] = found
        return found  # type: ignore[return-value]

    def window(self, s: Series) -> np.ndarray:
        lo, hi = self._span(s)
        return s.values[lo:hi]

    def before(self, s: Series) -> np.ndarray:
        lo, _ = self._span(s)
        return s.values[:lo] if lo > 0 else s.values[:1]

    def peak(self, s: Series | None, q: float = 95.0) -> float:
        if s is None:
            return 0.0
        key = ("peak", s.metric, s.entity, s.labels, q)
        found = self._figures.get(key)
        if found is None:
            found = self._figures[key] = percentile(self.window(s), q)
        return found  # type: ignore[return-value]

    def trough(self, s: Series | None, q: float = 5.0) -> float:
        return self.peak(s, q)

    def base(self, s: Series | None) -> float:
        if s is None:
            return 0.0
        key = ("base", s.metric, s.entity, s.labels)
        found = self._figures.get(key)
        if found is None:
            found = self._figures[key] = median(self.before(s))
        return found  # type: ignore[return-value]

    def rise(self, s: Series | None) -> float:
        return self.peak(s) - self.base(s)

    def drop(self, s: Series | None) -> float:
        return self.base(s) - self.trough(s)

    def total_increase(self, s: Series | None) -> float:
        """Counter increase over the interval, resets handled."""
        if s is None:
            return 0.0
        w = self.window(s)
        if w.shape[0] < 2:
            return 0.0
        d = np.diff(w)
        d[d < 0] = w[1:][d < 0]
        return float(d.sum())

    def ref(self, s: Series, metric: str | None = None) -> EvidenceRef:
        lo, hi = self._span(s)
        w = s.ts[lo:hi]
        start = int(w[0]) if w.shape[0] else self.t0
        end = int(w[-1]) if w.shape[0] else self.t1
        return EvidenceRef(entity=s.entity, metric=metric or s.metric, start_ns=start,
                           end_ns=end, batch_ids=self.view.batches_between(start, end, limit=8))

    def event_ref(self, kind: str, entity: str, ts: int, batch_id: str) -> EvidenceRef:
        return EvidenceRef(entity=entity, metric=f"event:{kind}", start_ns=ts, end_ns=ts,
                           batch_ids=[batch_id])

    def host(self, metric: str, **labels: str) -> Series | None:
        return self.view.get(metric, "host", **labels)

    def hot(self, d: SeriesDetection | None) -> float:
        """Share of the interval the detector held the series hot."""
        if d is None:
            return 0.0
        m = (d.series.ts >= self.t0) & (d.series.ts <= self.t1)
        return float(np.mean(d.score[m] > 0)) if np.any(m) else 0.0


def _growth(scope: Scope, s: Series, until_ns: int | None = None) -> tuple[float, float]:
    """(relative growth over the interval, share of rising steps) of a gauge; with
    ``until_ns``, of the interval's part up to that instant (a killed process's memory
    reads 0 after the kill: its growth is what it reached before)."""
    w = scope.window(s)
    if until_ns is not None:
        lo = int(np.searchsorted(s.ts, scope.t0, "left"))
        w = w[: max(0, int(np.searchsorted(s.ts, until_ns, "right")) - lo)]
    if w.shape[0] < 3:
        return 0.0, 0.0
    b = max(abs(scope.base(s)), 1e-9)
    rising = float(np.mean(np.diff(w) > 0))
    return float((w[-1] - min(scope.base(s), w[0])) / b), rising


def _events(scope: Scope, *kinds: str) -> list[EventRow]:
    return [e for e in scope.view.events if e.kind in kinds and scope.t0 <= e.ts_ns <= scope.t1]


def _gpu_entities(view: EvidenceView) -> list[str]:
    return sorted({s.entity for s in view.metric("gpu_utilisation_ratio")}
                  | {s.entity for s in view.metric("gpu_temperature_celsius")}
                  | {e.entity for e in view.events if e.entity.startswith("gpu/")})


# --- scorers -------------------------------------------------------------------------------


def _cpu(scope: Scope) -> list[Candidate]:
    util = scope.host("cpu_utilisation_ratio")
    psi = scope.host("pressure_some_ratio", resource="cpu")
    runq = scope.host("procs_running")
    cpus = max(scope.view.cpu_count, 1)
    f_util = level(scope.peak(util), 0.8, 0.97)
    if f_util == 0.0:
        return []
    f_psi = level(scope.peak(psi), 0.1, 0.5)
    f_runq = level(scope.peak(runq) / cpus, 1.0, 2.0) if runq is not None else 0.0
    throttle = max((scope.peak(s) for s in scope.view.metric("cgroup_cpu_throttled_ratio")),
                   default=0.0)
    refs = [scope.ref(s) for s in (util, psi, runq) if s is not None]
    # Localise: the process whose CPU use grew most.
    best, best_rise, best_ref = "host", 0.0, None
    for s in scope.view.metric("process_cpu_ratio"):
        r = scope.rise(s)
        if r > best_rise:
            best, best_rise, best_ref = s.entity, r, scope.ref(s)
    if best == "host":
        best, best_rise = _top_process_from_rows(scope)
    f_proc = level(best_rise, 0.3, 0.8 * cpus) if best != "host" else 0.0
    if best_ref is not None:
        refs.insert(0, best_ref)
    c = Candidate("cpu_saturation", best,
                  {"host_cpu_utilisation": f_util, "cpu_pressure": f_psi, "run_queue": f_runq,
                   "process_cpu_growth": f_proc},
                  {"host_cpu_utilisation": 0.35, "cpu_pressure": 0.2, "run_queue": 0.15,
                   "process_cpu_growth": 0.3}, refs)
    if throttle > 0.25:
        c.penalties["cgroup_throttled"] = 0.2 * level(throttle, 0.25, 0.6)
        c.counter_evidence.append(f"a cgroup is throttled ({throttle:.0%} of periods): a quota, "
                                  "not the host, may be the limit")
    own = _throttled_cgroup_of(scope, best)
    if own is not None:
        # Live lab (issue 10): on a host that other work keeps busy, the hot process of a
        # throttled cgroup looked like a runaway. Its cgroup's quota is what holds it: the
        # process is the throttling's work, not a cause of its own.
        cg, f_own = own
        c.penalties["process_in_throttled_cgroup"] = 0.4 * f_own
        c.counter_evidence.append(f"{best} runs in {cg}, which is throttled: its quota, not "
                                  "the host, limits it")
    before = level(scope.base(util), 0.8, 0.97)
    if before > 0:
        # Live lab (issue 10): a host that was as saturated before the incident began as
        # during it explains no incident; only what changed (a process's growth) still does.
        c.penalties["saturated_before_incident"] = before * (
            0.35 * f_util + 0.2 * f_psi + 0.15 * f_runq)
        c.counter_evidence.append(f"the host's CPU was already at {scope.base(util):.0%} "
                                  "before the incident began")
    if best == "host":
        c.counter_evidence.append("no single process's CPU use grew; the load may be spread out")
    return [c]


def _throttled_cgroup_of(scope: Scope, entity: str) -> tuple[str, float] | None:
    """The throttled cgroup (and how throttled, 0-1) that process ``entity`` runs in or
    under, from the process rows' cgroup path; None when it runs in no throttled cgroup."""
    procs = scope.view.processes
    if not entity.startswith("process/") or procs.is_empty() or "cgroup" not in procs.columns:
        return None
    pid = int(entity.removeprefix("process/"))
    paths = process_rows(scope.view, pid).get_column("cgroup").unique().to_list()
    best: tuple[str, float] | None = None
    for s in scope.view.metric("cgroup_cpu_throttled_ratio"):
        f = level(scope.peak(s), 0.1, 0.5)
        cg = s.entity.removeprefix("cgroup/").strip("/")
        if f > 0 and any(p.strip("/") == cg or p.strip("/").startswith(cg + "/")
                         for p in paths if p) and (best is None or f > best[1]):
            best = (s.entity, f)
    return best


def _top_process_from_rows(scope: Scope) -> tuple[str, float]:
    procs = scope.view.processes
    if procs.is_empty() or "cpu_ratio" not in procs.columns:
        return "host", 0.0
    import polars as pl

    before = procs.filter(pl.col("ts_ns") < scope.t0).group_by("pid").agg(
        pl.col("cpu_ratio").median().alias("b"))
    during = procs.filter((pl.col("ts_ns") >= scope.t0) & (pl.col("ts_ns") <= scope.t1)) \
        .group_by("pid").agg(pl.col("cpu_ratio").quantile(0.9).alias("p"))
    joined = during.join(before, on="pid", how="left").with_columns(
        (pl.col("p") - pl.col("b").fill_null(0.0)).alias("rise")).sort(["rise", "pid"],
                                                                       descending=[True, False])
    if joined.is_empty():
        return "host", 0.0
    row = joined.row(0, named=True)
    return f"process/{row['pid']}", float(row["rise"])


def _throttling(scope: Scope) -> list[Candidate]:
    out = []
    host_util = scope.peak(scope.host("cpu_utilisation_ratio"))
    for s in scope.view.metric("cgroup_cpu_throttled_ratio"):
        f_thr = level(scope.peak(s), 0.1, 0.5)
        if f_thr == 0.0:
            continue
        usage = scope.view.get("cgroup_cpu_usage_ratio", s.entity)
        limit = scope.view.get("cgroup_cpu_limit_cores", s.entity)
        at_limit = 0.0
        if usage is not None and limit is not None:
            lim = scope.peak(limit)
            at_limit = level(scope.peak(usage) / lim, 0.7, 0.95) if lim > 0 else 0.0
        psi = scope.view.get("cgroup_pressure_some_ratio", s.entity, resource="cpu")
        refs = [scope.ref(x) for x in (s, usage, limit, psi) if x is not None]
        c = Candidate("cgroup_cpu_throttling", s.entity,
                      {"throttled_ratio": f_thr, "usage_at_quota": at_limit,
                       "host_headroom": 1.0 - level(host_util, 0.85, 0.97),
                       "throttled_rise": level(scope.rise(s), 0.05, 0.3),
                       "cgroup_cpu_pressure": level(scope.peak(psi), 0.05, 0.3)},
                      {"throttled_ratio": 0.35, "usage_at_quota": 0.2, "host_headroom": 0.2,
                       "throttled_rise": 0.15, "cgroup_cpu_pressure": 0.1}, refs)
        if host_util > 0.95:
            c.counter_evidence.append("the host itself is saturated, so the host, not the "
                                      "quota, may be the limit")
        out.append(c)
    return out


def _sustained_rise(scope: Scope, s: Series) -> float:
    """Median over the incident minus median before it: a burst that came and went (a
    backup, a cron job) moves the median little; a neighbour that keeps taking moves it."""
    return scope.peak(s, 50.0) - scope.base(s)


def _noisy(scope: Scope) -> list[Candidate]:
    # Which cgroup's use rose and stayed up, and did another cgroup suffer for it?
    cpus = max(scope.view.cpu_count, 1)
    usage: dict[str, float] = {}
    series_of: dict[str, list[Series]] = {}
    for metric, unit in (("cgroup_io_bytes_per_second", 150 * 2**20),
                         ("cgroup_cpu_usage_ratio", cpus * 0.5)):
        per: dict[str, float] = {}
        for s in scope.view.metric(metric):
            per[s.entity] = per.get(s.entity, 0.0) + max(_sustained_rise(scope, s), 0.0)
            series_of.setdefault(s.entity, []).append(s)
        for ent, rise in per.items():
            usage[ent] = max(usage.get(ent, 0.0), level(rise, 0.0, unit))
    if len(usage) < 2:
        return []
    top_proc_rise = max((max(_sustained_rise(scope, s), 0.0)
                         for s in scope.view.metric("process_cpu_ratio")), default=0.0)
    out = []
    for ent in sorted(usage, key=lambda e: (-usage[e], e))[:2]:
        if usage[ent] < 0.2:
            continue
        f_victim, vref = 0.0, None
        for s in scope.view.metric("cgroup_pressure_some_ratio"):
            if s.entity == ent:
                continue
            f = level(_sustained_rise(scope, s), 0.05, 0.3)
            if f > f_victim:
                f_victim, vref = f, scope.ref(s)
        lim = scope.view.get("cgroup_cpu_throttled_ratio", ent)
        own_throttle = level(scope.peak(lim), 0.1, 0.5) if lim is not None else 0.0
        others_rise = sorted((usage[e] for e in usage if e != ent), reverse=True)
        f_alone = 1.0 - (others_rise[0] if others_rise else 0.0)
        refs = [scope.ref(s) for s in series_of[ent]] + ([vref] if vref else [])
        c = Candidate("noisy_neighbour", ent,
                      {"usage_jump": usage[ent], "victim_pressure": f_victim,
                       "sole_grower": f_alone},
                      {"usage_jump": 0.4, "victim_pressure": 0.4, "sole_grower": 0.2}, refs)
        if own_throttle > 0.5:
            c.penalties["own_throttling"] = 0.3 * own_throttle
            c.counter_evidence.append(f"{ent} is itself throttled: it suffers, it may not be "
                                      "the aggressor")
        if f_victim < 0.2:
            c.penalties["no_victim"] = 0.3
            c.counter_evidence.append("no other cgroup shows more pressure")
        cpu_rise = sum(max(_sustained_rise(scope, s), 0.0) for s in series_of[ent]
                       if s.metric == "cgroup_cpu_usage_ratio")
        if cpu_rise > 0.5 and top_proc_rise >= 0.7 * cpu_rise:
            c.penalties["single_runaway_process"] = 0.3
            c.counter_evidence.append("one process accounts for the cgroup's rise: a runaway "
                                      "process rather than a tenant")
        out.append(c)
    return out


def _disk(scope: Scope, noisy_jump: float) -> list[Candidate]:
    out = []
    psi = scope.host("pressure_some_ratio", resource="io")
    for s in scope.view.metric("disk_await_seconds"):
        dev = s.entity
        d = scope.det.get("disk_await_seconds", dev)
        thr = d.warn if d is not None and d.warn else 0.05
        util = scope.view.get("disk_utilisation_ratio", dev)
        inflight = scope.view.get("disk_in_flight", dev)
        f_await = level(scope.peak(s) / thr, 0.5, 2.0)
        f_util = level(scope.peak(util), 0.6, 0.95)
        if f_await == 0.0 and f_util == 0.0:
            continue
        refs = [scope.ref(x) for x in (s, util, inflight, psi) if x is not None]
        c = Candidate("disk_io_saturation", dev,
                      {"await_vs_device_kind": f_await, "utilisation": f_util,
                       "io_pressure": level(scope.peak(psi), 0.1, 0.5),
                       "queue_depth_rise": level(scope.rise(inflight), 2.0, 16.0)},
                      {"await_vs_device_kind": 0.35, "utilisation": 0.3, "io_pressure": 0.2,
                       "queue_depth_rise": 0.15}, refs)
        if noisy_jump > 0.3:
            c.penalties["one_cgroup_jumped"] = 0.35 * noisy_jump
            c.counter_evidence.append("one cgroup's use jumped at the same time: a neighbour, "
                                      "not the device, may be the cause")
        out.append(c)
    return out


def _memory_leak(scope: Scope) -> list[Candidate]:
    ooms = _events(scope, "oom_kill")
    victims = {e.entity for e in ooms} | {f"process/{e.attributes['pid']}" for e in ooms
                                           if "pid" in e.attributes}
    mem = scope.host("memory_used_ratio")
    psi = scope.host("pressure_some_ratio", resource="memory")
    oom_counter = scope.total_increase(scope.host("oom_kills_total"))
    out = []
    for s in scope.view.metric("process_rss_bytes"):
        killed_at = min((e.ts_ns for e in ooms if e.entity == s.entity), default=None)
        # Live lab (issue 10): the OOM-killed leaker's last samples read 0, which hid its
        # growth and ranked processes that merely grew above the one the kernel killed.
        growth, rising = _growth(scope, s, until_ns=killed_at)
        f_growth = level(growth, 0.2, 1.5) * level(rising, 0.3, 0.7)
        f_oom = 1.0 if s.entity in victims else 0.0
        if f_growth == 0.0 and f_oom == 0.0:
            continue
        refs = [scope.ref(s), *[scope.event_ref("oom_kill", e.entity, e.ts_ns, e.batch_id) for e in ooms][:3]]
        refs += [scope.ref(x) for x in (mem, psi) if x is not None]
        c = Candidate("memory_leak_oom", s.entity,
                      {"rss_growth": f_growth, "oom_kill_of_process": f_oom,
                       "oom_any": 1.0 if (ooms or oom_counter > 0) else 0.0,
                       "memory_used": level(scope.peak(mem), 0.8, 0.97),
                       "memory_pressure": level(scope.peak(psi), 0.05, 0.3)},
                      {"rss_growth": 0.35, "oom_kill_of_process": 0.25, "oom_any": 0.1,
                       "memory_used": 0.15, "memory_pressure": 0.15}, refs)
        out.append(c)
    if not out and (ooms or oom_counter > 0):
        ent = sorted(victims)[0] if victims else "host"
        refs = [scope.event_ref("oom_kill", e.entity, e.ts_ns, e.batch_id) for e in ooms][:3]
        out.append(Candidate("memory_leak_oom", ent,
                             {"oom_any": 1.0, "memory_used": level(scope.peak(mem), 0.8, 0.97)},
                             {"oom_any": 0.45, "memory_used": 0.15}, refs,
                             ["no process memory series: the leak's growth is not seen"]))
    return out


def _swap(scope: Scope) -> list[Candidate]:
    si = scope.host("swap_in_pages_per_second")
    so = scope.host("swap_out_pages_per_second")
    maj = scope.host("major_page_faults_per_second")
    full = scope.host("pressure_full_ratio", resource="memory")
    rate = scope.peak(si) + scope.peak(so)
    f_rate = level(rate, 100.0, 2000.0)
    if f_rate == 0.0:
        return []
    refs = [scope.ref(x) for x in (si, so, maj, full) if x is not None]
    c = Candidate("swap_thrash", "host",
                  {"swap_rate": f_rate, "major_faults": level(scope.rise(maj), 50.0, 1000.0),
                   "memory_full_pressure": level(scope.peak(full), 0.02, 0.2),
                   "swap_in_and_out": level(min(scope.peak(si), scope.peak(so)), 50.0, 500.0)},
                  {"swap_rate": 0.3, "major_faults": 0.2, "memory_full_pressure": 0.25,
                   "swap_in_and_out": 0.25}, refs)
    return [c]


def _filesystems(scope: Scope) -> list[Candidate]:
    out = []
    for s in scope.view.metric("filesystem_used_ratio"):
        inodes = scope.view.get("filesystem_inodes_used_ratio", s.entity)
        _, rising = _growth(scope, s)
        f_used = level(scope.peak(s), 0.85, 0.98)
        f_inodes = level(scope.peak(inodes), 0.85, 0.98)
        if f_used > 0:
            c = Candidate("filesystem_full", s.entity,
                          {"space_used": f_used, "space_rising": level(rising, 0.3, 0.7),
                           "space_rise": level(scope.rise(s), 0.02, 0.15)},
                          {"space_used": 0.6, "space_rising": 0.2, "space_rise": 0.2},
                          [scope.ref(s)])
            if f_inodes > 0.5:
                c.counter_evidence.append("inodes are nearly exhausted too")
            out.append(c)
        if inodes is not None and f_inodes > 0:
            c = Candidate("inode_exhaustion", s.entity,
                          {"inodes_used": f_inodes, "inodes_rise": level(scope.rise(inodes),
                                                                         0.02, 0.15),
                           "space_headroom": 1.0 - f_used},
                          {"inodes_used": 0.6, "inodes_rise": 0.2, "space_headroom": 0.2},
                          [scope.ref(inodes), scope.ref(s)])
            out.append(c)
    return out


def _fds(scope: Scope) -> list[Candidate]:
    out = []
    host_fd = scope.host("fds_used_ratio")
    for s in scope.view.metric("process_fds_used_ratio"):
        f = level(scope.peak(s), 0.6, 0.97)
        if f == 0.0:
            continue
        _, rising = _growth(scope, s)
        out.append(Candidate("fd_exhaustion", s.entity,
                             {"fds_used": f, "fds_rising": level(rising, 0.2, 0.6),
                              "fds_rise": level(scope.rise(s), 0.1, 0.5)},
                             {"fds_used": 0.6, "fds_rising": 0.15, "fds_rise": 0.25},
                             [scope.ref(s)]))
    if not out and host_fd is not None and level(scope.peak(host_fd), 0.6, 0.97) > 0:
        out.append(Candidate("fd_exhaustion", "host",
                             {"fds_used": level(scope.peak(host_fd), 0.6, 0.97)},
                             {"fds_used": 0.6}, [scope.ref(host_fd)],
                             ["no per-process fd series: the holder is not localised"]))
    return out


def _network(scope: Scope) -> list[Candidate]:
    ratio = scope.host("tcp_retransmit_ratio")
    rps = scope.host("tcp_retransmits_per_second")
    f_ratio = level(scope.peak(ratio), 0.005, 0.05)
    f_rps = level(scope.rise(rps), 10.0, 200.0)
    flaps = _events(scope, "link_down", "link_up")
    out = []
    nic_scores: dict[str, tuple[float, list[EvidenceRef]]] = {}
    for metric in ("network_drops_per_second", "network_errors_per_second"):
        for s in scope.view.metric(metric):
            f = level(scope.rise(s), 2.0, 100.0)
            prev, refs = nic_scores.get(s.entity, (0.0, []))
            nic_scores[s.entity] = (max(prev, f), refs + ([scope.ref(s)] if f > 0 else []))
    if f_ratio > 0 or f_rps > 0:
        nic = max(sorted(nic_scores), key=lambda e: nic_scores[e][0], default=None)
        f_nic = nic_scores[nic][0] if nic else 0.0
        ent = nic if nic and f_nic > 0 else (_busiest_nic(scope) or _default_nic(scope.view))
        refs = [scope.ref(x) for x in (ratio, rps) if x is not None]
        refs += nic_scores[nic][1] if nic else []
        c = Candidate("packet_loss", ent,
                      {"retransmit_ratio": f_ratio, "retransmit_rate_rise": f_rps,
                       "nic_drops_or_errors": f_nic},
                      {"retransmit_ratio": 0.45, "retransmit_rate_rise": 0.25,
                       "nic_drops_or_errors": 0.3}, refs)
        if flaps:
            c.penalties["link_flaps"] = 0.25
            c.counter_evidence.append("the link flapped: the loss may follow from the flaps")
        out.append(c)
    for s in scope.view.metric("network_link_up"):
        downs = float(np.mean(scope.window(s) < 0.5)) if scope.window(s).shape[0] else 0.0
        changes = scope.total_increase(scope.view.get("network_carrier_changes_total",
                                                      s.entity))
        ev = [e for e in flaps if e.entity == s.entity]
        f_changes = level(changes + len(ev), 1.0, 4.0)
        if downs == 0.0 and f_changes == 0.0:
            continue
        refs = [scope.ref(s), *[scope.event_ref(e.kind, e.entity, e.ts_ns, e.batch_id) for e in ev][:4]]
        out.append(Candidate("nic_link_flap", s.entity,
                             {"link_down_share": level(downs, 0.0, 0.2),
                              "carrier_changes": f_changes,
                              "link_events": level(len(ev), 0.0, 3.0)},
                             {"link_down_share": 0.35, "carrier_changes": 0.35,
                              "link_events": 0.3}, refs))
    return out


def _busiest_nic(scope: Scope) -> str | None:
    """The NIC that sent the most bytes during the incident, when any sent some.

    Live lab (issue 10): loss in the path (a dropping middlebox, a shaper's queue) leaves no
    drop or error on any NIC of this host, yet the retransmitting traffic leaves through one
    NIC, most likely the busiest; the host's first NIC in name order says nothing about which.
    The level is compared, not the rise (TCP backs off under loss), and loopback is left out
    (it has no path to lose packets on; local services keep it busy)."""
    peaks = sorted((scope.peak(s), s.entity)
                   for s in scope.view.metric("network_transmit_bytes_per_second")
                   if s.entity != "nic/lo")
    return peaks[-1][1] if peaks and peaks[-1][0] > 0 else None


def _default_nic(view: EvidenceView) -> str:
    if view.inventory and view.inventory.nics:
        return f"nic/{sorted(n.name for n in view.inventory.nics)[0]}"
    nics = sorted({s.entity for s in view.metric("network_receive_bytes_per_second")})
    return nics[0] if nics else "host"


def _listen(scope: Scope) -> list[Candidate]:
    over = scope.host("tcp_listen_overflows_per_second")
    drops = scope.host("tcp_listen_drops_per_second")
    backlog = max(scope.view.metric("tcp_listen_backlog_ratio"), key=scope.peak, default=None)
    f_over = level(max(scope.peak(over), scope.peak(drops)), 0.5, 20.0)
    f_backlog = level(scope.peak(backlog), 0.7, 1.0)
    if f_over == 0.0 and f_backlog < 0.5:
        return []
    refs = [scope.ref(x) for x in (over, drops, backlog) if x is not None]
    return [Candidate("listen_backlog_overflow", "host",
                      {"listen_overflows": f_over, "accept_queue_full": f_backlog},
                      {"listen_overflows": 0.6, "accept_queue_full": 0.4}, refs)]


def _gpu(scope: Scope) -> list[Candidate]:
    out: list[Candidate] = []
    view = scope.view
    gpus = _gpu_entities(view)
    utils = {g: scope.base(view.get("gpu_utilisation_ratio", g)) for g in gpus}
    for g in gpus:
        temp = view.get("gpu_temperature_celsius", g)
        clock = view.get("gpu_sm_clock_hertz", g)
        power = view.get("gpu_power_watts", g)
        limit = view.get("gpu_power_limit_watts", g)
        throttles = [s for s in view.metric("gpu_throttled") if s.entity == g]
        thermal_flag = max((scope.peak(s) for s in throttles
                            if "therm" in s.label("reason")), default=0.0)
        power_flag = max((scope.peak(s) for s in throttles
                          if "power" in s.label("reason")), default=0.0)
        f_clock = level(scope.drop(clock) / max(scope.base(clock), 1.0), 0.05, 0.3)
        f_temp = level(scope.peak(temp), 80.0, 92.0)
        if f_temp > 0 or thermal_flag > 0:
            out.append(Candidate(
                "gpu_thermal_throttle", g,
                {"temperature": f_temp, "thermal_throttle_flag": thermal_flag,
                 "clock_drop": f_clock, "temperature_rise": level(scope.rise(temp), 3.0, 15.0)},
                {"temperature": 0.35, "thermal_throttle_flag": 0.3, "clock_drop": 0.15,
                 "temperature_rise": 0.2},
                [scope.ref(x) for x in (temp, clock, *throttles) if x is not None]))
        lim = scope.peak(limit) if limit is not None else 0.0
        f_power = level(scope.peak(power) / lim, 0.9, 0.99) if lim > 0 else 0.0
        if f_power > 0 or power_flag > 0:
            c = Candidate(
                "gpu_power_throttle", g,
                {"power_at_limit": f_power, "power_throttle_flag": power_flag,
                 "clock_drop": f_clock,
                 "limit_lowered": level(scope.drop(limit), 10.0, 100.0)},
                {"power_at_limit": 0.35, "power_throttle_flag": 0.35, "clock_drop": 0.15,
                 "limit_lowered": 0.15},
                [scope.ref(x) for x in (power, limit, clock, *throttles) if x is not None])
            if f_temp > 0.5:
                c.counter_evidence.append("the GPU is also hot; thermal limits may dominate")
            out.append(c)
        xids = [e for e in _events(scope, "gpu_xid") if e.entity == g]
        own_xids = [e for e in xids if _xid_points_to(e) == "gpu_xid"]
        if xids:
            codes = sorted({e.attributes.get("xid", "?") for e in xids})
            c = Candidate("gpu_xid", g, {"xid_events": level(len(own_xids), 0.0, 1.0),
                                         "xid_critical": 1.0 if any(
                                             e.severity in ("error", "critical")
                                             for e in own_xids) else 0.0,
                                         "any_xid": 1.0},
                          {"xid_events": 0.6, "xid_critical": 0.3, "any_xid": 0.1},
                          [scope.event_ref("gpu_xid", g, e.ts_ns, e.batch_id) for e in xids][:4])
            c.counter_evidence.append(f"Xid codes seen: {', '.join(codes)}")
            for other in sorted({_xid_points_to(e) for e in xids} - {"gpu_xid"}):
                c.counter_evidence.append(f"some Xids report a {other} fault; that class is the "
                                          "cause they point to")
            out.append(c)
        ecc = sum(scope.total_increase(s) for s in view.metric("gpu_ecc_errors_total")
                  if s.entity == g and any(w in s.label("type") for w in
                                           ("double", "uncorr", "dbe")))
        remap = sum(scope.total_increase(s) for s in view.metric("gpu_remapped_rows_total")
                    if s.entity == g)
        dbe = [e for e in _events(scope, "gpu_ecc_dbe") if e.entity == g]
        xid_mem = [e for e in xids if _xid_points_to(e) == "gpu_ecc_dbe"]
        if ecc > 0 or remap > 0 or dbe or xid_mem:
            refs = [scope.ref(s) for s in view.metric("gpu_ecc_errors_total") + view.metric(
                "gpu_remapped_rows_total") if s.entity == g]
            refs += [scope.event_ref("gpu_ecc_dbe", g, e.ts_ns, e.batch_id) for e in dbe][:3]
            out.append(Candidate("gpu_ecc_dbe", g,
                                 {"uncorrectable_ecc": level(ecc, 0.0, 2.0),
                                  "rows_remapped": level(remap, 0.0, 2.0),
                                  "dbe_events": 1.0 if dbe else 0.0,
                                  "memory_xids": 1.0 if xid_mem else 0.0},
                                 {"uncorrectable_ecc": 0.3, "rows_remapped": 0.25,
                                  "dbe_events": 0.3, "memory_xids": 0.15}, refs))
        nvl = sum(scope.total_increase(s) for s in view.metric("gpu_nvlink_errors_total")
                  if s.entity == g)
        links = view.get("gpu_nvlink_active_links", g)
        nvl_ev = [e for e in _events(scope, "nvlink_error") if e.entity == g] + [
            e for e in xids if _xid_points_to(e) == "nvlink_degradation"]
        f_links = level(scope.drop(links), 0.0, 2.0) if links is not None else 0.0
        if nvl > 0 or f_links > 0 or nvl_ev:
            refs = [scope.ref(s) for s in view.metric("gpu_nvlink_errors_total")
                    if s.entity == g][:4]
            refs += [scope.ref(links)] if links is not None else []
            out.append(Candidate("nvlink_degradation", g,
                                 {"nvlink_errors": level(nvl, 0.0, 20.0), "links_down": f_links,
                                  "nvlink_events": 1.0 if nvl_ev else 0.0},
                                 {"nvlink_errors": 0.4, "links_down": 0.35, "nvlink_events": 0.25},
                                 refs))
        width = view.get("gpu_pcie_link_width", g)
        gen = view.get("gpu_pcie_link_generation", g)
        aer = [e for e in _events(scope, "pcie_aer") if e.entity == g]
        f_width = level(scope.drop(width), 0.0, 8.0) if width is not None else 0.0
        f_gen = level(scope.drop(gen), 0.0, 2.0) if gen is not None else 0.0
        if f_width > 0 or f_gen > 0 or aer:
            out.append(Candidate("pcie_degradation", g,
                                 {"link_width_drop": f_width, "link_generation_drop": f_gen,
                                  "aer_events": 1.0 if aer else 0.0},
                                 {"link_width_drop": 0.4, "link_generation_drop": 0.35,
                                  "aer_events": 0.25},
                                 [scope.ref(x) for x in (width, gen) if x is not None]))
        mem = view.get("gpu_memory_used_ratio", g)
        f_mem = level(scope.peak(mem), 0.9, 0.99)
        if f_mem > 0:
            out.append(Candidate("gpu_memory_exhaustion", g,
                                 {"memory_used": f_mem,
                                  "memory_rise": level(scope.rise(mem), 0.05, 0.3)},
                                 {"memory_used": 0.7, "memory_rise": 0.3},
                                 [scope.ref(mem)] if mem is not None else []))
    # Straggler: one GPU idles while its peers keep working.
    if len(gpus) >= 2:
        lows = {}
        for g in gpus:
            s = view.get("gpu_utilisation_ratio", g)
            if s is None:
                continue
            peers = [scope.peak(view.get("gpu_utilisation_ratio", p), 50.0) for p in gpus
                     if p != g and view.get("gpu_utilisation_ratio", p) is not None]
            if not peers:
                continue
            gap = float(np.median(peers)) - scope.peak(s, 50.0)
            lows[g] = (gap, scope.drop(s), s)
        if lows:
            g = max(sorted(lows), key=lambda k: lows[k][0])
            gap, drop, s = lows[g]
            f_gap = level(gap, 0.2, 0.6)
            if f_gap > 0:
                c = Candidate("collective_straggler", g,
                              {"gap_to_peers": f_gap, "own_drop": level(drop, 0.2, 0.6),
                               "was_busy": level(utils.get(g, 0.0), 0.3, 0.7)},
                              {"gap_to_peers": 0.5, "own_drop": 0.3, "was_busy": 0.2},
                              [scope.ref(s)])
                # An idle GPU is also what a crash leaves behind: a fault the GPU reported
                # itself explains the idleness better than a slow rank does.
                explained = [x for x in out if x.entity == g and x.fault_class in (
                    "gpu_xid", "gpu_ecc_dbe", "nvlink_degradation", "pcie_degradation",
                    "gpu_memory_exhaustion") and x.score >= 0.3]
                if explained:
                    c.penalties["gpu_reported_a_fault"] = 0.6
                    c.counter_evidence.append(
                        f"{g} itself reports {explained[0].fault_class}: its idleness follows")
                out.append(c)
    return out


_XID_TARGETS = {
    "memory_dbe": "gpu_ecc_dbe", "memory_row_remap": "gpu_ecc_dbe",
    "memory_row_remap_failure": "gpu_ecc_dbe", "memory_contained": "gpu_ecc_dbe",
    "memory_uncontained": "gpu_ecc_dbe", "memory_sbe_rate": "gpu_ecc_dbe",
    "nvlink": "nvlink_degradation",
}
_XID_CODES = {"48": "memory_dbe", "63": "memory_row_remap", "64": "memory_row_remap_failure",
              "92": "memory_sbe_rate", "94": "memory_contained", "95": "memory_uncontained",
              "74": "nvlink"}


def _xid_points_to(event: EventRow) -> str:
    """The fault class an Xid reports: memory Xids report ECC faults, Xid 74 an NVLink one,
    the rest (application errors, a GPU lost from the bus...) are the Xid fault itself."""
    klass = event.attributes.get("xid_class") or _XID_CODES.get(event.attributes.get("xid", ""),
                                                                "")
    return _XID_TARGETS.get(klass, "gpu_xid")


def _rdma(scope: Scope) -> list[Candidate]:
    out = []
    ports = sorted({s.entity for s in scope.view.metric("ib_port_errors_total")}
                   | {s.entity for s in scope.view.metric("ib_port_up")})
    for p in ports:
        errs = [s for s in scope.view.metric("ib_port_errors_total") if s.entity == p]
        n = sum(scope.total_increase(s) for s in errs)
        up = scope.view.get("ib_port_up", p)
        downs = float(np.mean(scope.window(up) < 0.5)) if up is not None and \
            scope.window(up).shape[0] else 0.0
        if n == 0 and downs == 0:
            continue
        out.append(Candidate("rdma_link_errors", p,
                             {"port_errors": level(n, 0.0, 20.0),
                              "port_down_share": level(downs, 0.0, 0.2)},
                             {"port_errors": 0.6, "port_down_share": 0.4},
                             [scope.ref(s) for s in errs if scope.total_increase(s) > 0][:4]
                             + ([scope.ref(up)] if up is not None else [])))
    return out


SCORERS: tuple[Callable[[Scope], list[Candidate]], ...] = (
    _cpu, _throttling, _memory_leak, _swap, _filesystems, _fds, _network, _listen, _gpu, _rdma,
)


def candidates(scope: Scope) -> list[Candidate]:
    """Every class's candidates; the noisy-neighbour jump feeds the disk scorer's penalty."""
    out: list[Candidate] = []
    for scorer in SCORERS:
        out.extend(scorer(scope))
    noisy = _noisy(scope)
    out.extend(noisy)
    jump = max((c.features["usage_jump"] * c.features["victim_pressure"] for c in noisy),
               default=0.0)
    out.extend(_disk(scope, jump))
    return out
