"""Observer: the window summary of one host (signals, events, data quality)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from sreagent.artifacts import (
    Artifact,
    ArtifactKind,
    ArtifactStatus,
    DataQuality,
    ObservationSummary,
    make_artifact,
)
from sreagent.roles._stats import percentiles
from sreagent.runtime._context import RoleContext
from sreagent.runtime._view import EvidenceView, Series

NO_INCIDENT = "none"
"""The incident id of artifacts made before (or without) an incident."""


def _rounded(x: float) -> float:
    return float(round(x, 9))


def _display_name(series: Series) -> str:
    """``metric{k=v,...}``, or the bare metric of a series without labels."""
    if not series.labels:
        return series.metric
    return f"{series.metric}{{{','.join(f'{k}={val}' for k, val in series.labels)}}}"


def observe(view: EvidenceView, ctx: RoleContext) -> Artifact:
    """Summarise the window: one line per series, event counts and the data's quality."""
    # last, mean, min and max of every series come from the view in one vectorised call
    # each (the same bits as the numpy call per series), and are rounded in one call too:
    # np.round of an array gives the same bits as np.round of each numpy scalar. The p95 is
    # a Python float and keeps Python's round.
    table = view.series_stats()
    where = {key: i for i, key in enumerate(table.keys)}
    rows = [where[key] for key in sorted(view.series) if table.count[where[key]] > 0]
    kept = [view.series[table.keys[i]] for i in rows]
    stats = np.round(np.stack([table.last[rows], table.mean[rows], table.minimum[rows],
                               table.maximum[rows]], axis=1), 9).tolist()
    counts = table.count[rows].tolist()
    # Every p95 in one partition per series length (the same bits as one call per series).
    p95s = percentiles([s.values for s in kept], 95)
    # The summaries go to ObservationSummary as plain rows: pydantic validates the whole list
    # in one call, cheaper than one SignalSummary(...) per series and every bit as strict.
    signals = [
        {"metric": _display_name(s), "entity": s.entity, "count": count, "last": last,
         "mean": mean, "minimum": minimum, "maximum": maximum, "p95": _rounded(p95)}
        for s, count, (last, mean, minimum, maximum), p95
        in zip(kept, counts, stats, p95s, strict=True)
    ]
    grid = view.grid
    res_ns = view.resolution_s * 1e9
    gaps = int(np.sum(np.diff(grid) > 1.5 * res_ns)) if grid.shape[0] > 1 else 0
    slots = round((view.end_ns - view.start_ns) / res_ns) + 1
    expected = slots * len(view.series)
    staleness = max(0.0, (view.end_ns - int(grid[-1])) / 1e9)
    modes = {k: v for k, v in sorted(view.source_modes.items())
             if v in ("kernel", "fallback", "off")}
    quality = DataQuality(
        sample_count=view.sample_count, expected_samples=expected,
        staleness_s=_rounded(staleness), gaps=gaps, source_modes=modes,
        partial=gaps > 0 or any(m == "off" for m in modes.values()),
    )
    payload = ObservationSummary(
        host=view.host, window_start_ns=view.start_ns, window_end_ns=view.end_ns,
        resolution_s=_rounded(view.resolution_s), batch_count=len(view.batch_ids),
        signals=signals, event_counts=dict(sorted(Counter(e.kind for e in view.events).items())),
        quality=quality,
    )
    status = ArtifactStatus.DEGRADED if quality.partial else ArtifactStatus.OK
    return make_artifact(
        kind=ArtifactKind.OBSERVATION_SUMMARY, run_id=ctx.run_id, incident_id=NO_INCIDENT,
        logical_time=view.end_ns, status=status, payload=payload,
    )
