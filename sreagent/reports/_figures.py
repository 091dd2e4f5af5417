"""Timeline charts of a recorded run (altair), readable in marimo and as static SVG.

The charts are Vega-Lite specifications. marimo renders them with the Vega it ships; static
reports embed them as SVG rendered here by vl-convert, so a report opens with no network.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from sreagent.reports._package import Postmortem, Signal, markers, signal_frame

MAX_POINTS_PER_SERIES = 600
"""Longer series are averaged into this many buckets (a 1 s hour would be 3600 points)."""

CHART_WIDTH = 720
ROW_HEIGHT = 110

_UNIT_SUFFIXES = (
    ("_per_second", "per second"),
    ("_bytes_total", "bytes (counter)"),
    ("_seconds_total", "seconds (counter)"),
    ("_total", "count (counter)"),
    ("_ratio", "ratio (0-1)"),
    ("_bytes", "bytes"),
    ("_seconds", "seconds"),
    ("_celsius", "°C"),
    ("_watts", "watts"),
    ("_cores", "cores"),
    ("_hertz", "Hz"),
    ("_percent", "percent"),
)


def unit_of(metric: str) -> str:
    """The unit a metric's name declares by its suffix (Prometheus naming), or ``value``."""
    for suffix, unit in _UNIT_SUFFIXES:
        if metric.endswith(suffix):
            return unit
    return "value"


def downsample(frame: pl.DataFrame, max_points: int = MAX_POINTS_PER_SERIES) -> pl.DataFrame:
    """Average each series into at most ``max_points`` equal time buckets."""
    if frame.is_empty():
        return frame
    longest = frame.group_by("signal", "series").len()["len"].max()
    if not isinstance(longest, int) or longest <= max_points:
        return frame
    start = frame["time"].min()
    ms_since = (pl.col("time") - pl.lit(start)).dt.total_milliseconds()
    span_ms = int(frame.select(ms_since.max()).item())
    every_ms = span_ms // max_points + 1  # bucket index = offset // every_ms < max_points
    return (
        frame.with_columns((ms_since // every_ms).alias("_bucket"))
        .group_by("signal", "series", "_bucket")
        .agg(pl.col("time").min(), pl.col("value").mean())
        .select("time", "value", "signal", "series")
        .sort("signal", "series", "time")
    )


def _ns_to_iso(ns: int) -> str:
    return str(pl.Series([ns]).cast(pl.Datetime("ns")).dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")[0])


def timeline_chart(
    pm: Postmortem,
    signals: list[Signal],
    *,
    title: str | None = None,
    show_markers: bool = True,
) -> Any:  # an altair.VConcatChart (altair is imported lazily: it is slow to import)
    """One row per signal: the series, the incident window shaded, anomaly onsets (red) and
    actions (blue) as vertical rules. Returns an ``altair.VConcatChart``."""
    import altair as alt

    frame = downsample(signal_frame(pm.samples, signals))
    incident = pm.incident_window
    marks = markers(pm) if show_markers else []
    x_scale = alt.Scale(type="utc", domain=[_ns_to_iso(pm.window[0]), _ns_to_iso(pm.window[1])])
    rows = []
    for signal in signals:
        data = frame.filter(pl.col("signal") == signal.title)
        if data.is_empty():
            continue
        line = (
            alt.Chart(data.with_columns(pl.col("time").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")))
            .mark_line(strokeWidth=1.5)
            .encode(
                x=alt.X(
                    "time:T",
                    scale=x_scale,
                    title="telemetry time (UTC)",
                    axis=alt.Axis(format="%H:%M"),
                ),
                y=alt.Y("value:Q", title=unit_of(signal.metric)),
                color=alt.Color(
                    "series:N",
                    # One series needs no legend: the row title names it.
                    legend=alt.Legend(title=None, orient="right")
                    if data["series"].n_unique() > 1
                    else None,
                ),
            )
            .properties(width=CHART_WIDTH, height=ROW_HEIGHT, title=signal.title)
        )
        layers = []
        if incident is not None:
            layers.append(
                alt.Chart(
                    pl.DataFrame(
                        {"start": [_ns_to_iso(incident[0])], "end": [_ns_to_iso(incident[1])]}
                    )
                )
                .mark_rect(opacity=0.12, color="#d62728")
                .encode(x="start:T", x2="end:T")
            )
        layers.append(line)
        if marks:
            layers.append(
                alt.Chart(
                    pl.DataFrame(
                        [
                            {"time": _ns_to_iso(m.ts_ns), "kind": m.kind, "label": m.label}
                            for m in marks
                        ],
                        schema={"time": pl.String, "kind": pl.String, "label": pl.String},
                    )
                )
                .mark_rule(strokeDash=[4, 3])
                .encode(
                    x="time:T",
                    color=alt.Color(
                        "kind:N",
                        scale=alt.Scale(domain=["anomaly", "action"], range=["#d62728", "#1f77b4"]),
                        legend=None,
                    ),
                    tooltip=["label:N"],
                )
            )
        rows.append(alt.layer(*layers).resolve_scale(color="independent"))
    if not rows:
        rows.append(
            alt.Chart(pl.DataFrame({"text": ["no samples of these signals in the package"]}))
            .mark_text()
            .encode(text="text:N")
            .properties(width=CHART_WIDTH, height=40)
        )
    return alt.vconcat(*rows).properties(
        title=title
        or f"{pm.host}: key signals (shaded: incident window; red: anomaly onsets; blue: actions)"
    )


def chart_svg(chart: Any) -> str:
    """Render a chart to a standalone SVG string (no JavaScript, no network)."""
    import vl_convert

    svg: str = vl_convert.vegalite_to_svg(chart.to_dict(validate=False))
    return svg


class Figure:
    """A chart rendered to SVG for notebooks and static HTML.

    Jupyter shows ``_repr_svg_``; the plain-text form names what the chart shows, so a text
    diff of a notebook (nbval) still notices a chart that lost its series.
    """

    def __init__(self, svg: str, description: str):
        self.svg = svg
        self.description = description

    def _repr_svg_(self) -> str:
        return self.svg

    def __repr__(self) -> str:
        return f"<figure: {self.description}>"


def timeline_figure(pm: Postmortem, signals: list[Signal], *, title: str | None = None) -> Figure:
    """:func:`timeline_chart` as an SVG :class:`Figure`."""
    chart = timeline_chart(pm, signals, title=title)
    plotted = [s.title for s in signals if not signal_frame(pm.samples, [s]).is_empty()]
    description = (
        f"{len(plotted)} signals over time: " + "; ".join(plotted) if plotted else "no samples"
    )
    return Figure(chart_svg(chart), description)
