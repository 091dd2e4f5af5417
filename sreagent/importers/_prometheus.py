"""Prometheus ``query_range`` JSON exports into the canonical long form.

The export is what ``GET /api/v1/query_range`` answers (or a list of such answers):
``{"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {labels},
"values": [[unix_seconds, "value"], ...]}]}}``. Each series becomes rows of its metric
(``__name__``) and entity (the value of ``entity_label``, falling back to ``instance``, then
``job``, then ``host``); the remaining labels ride along as sample labels. Prometheus writes
``NaN`` for real NaN samples and ``±Inf`` for infinities; those samples are dropped and counted
(an unknown value is an absent sample in sreagent), never turned into numbers.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from sreagent.errors import BadInput
from sreagent.importers._long import check_long
from sreagent.telemetry import batch as contract

_LABEL_KEY = re.compile(contract.LABEL_KEY_PATTERN)
FALLBACK_ENTITY_LABELS = ("instance", "job", "host")


@dataclass(frozen=True)
class PrometheusImport:
    frame: pl.DataFrame
    dropped_non_finite: int


def read_prometheus(path: Path, entity_label: str = "instance") -> PrometheusImport:
    try:
        document = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadInput(f"not JSON: {err}", path=str(path)) from None
    answers = document if isinstance(document, list) else [document]
    ts: list[int] = []
    entities: list[str] = []
    metrics: list[str] = []
    labels: list[list[dict[str, str]]] = []
    values: list[float] = []
    dropped = 0
    for a, answer in enumerate(answers):
        where = f"answer {a}" if len(answers) > 1 else "the answer"
        if not isinstance(answer, dict) or answer.get("status") != "success":
            raise BadInput(
                f"{where} is not a successful Prometheus response", path=str(path), field="status"
            )
        data = answer.get("data") or {}
        if data.get("resultType") != "matrix":
            raise BadInput(
                f"{where} has resultType {data.get('resultType')!r}; export a range query (matrix)",
                path=str(path),
                field="data.resultType",
            )
        for s, series in enumerate(data.get("result") or []):
            field = f"data.result[{s}]"
            metric_labels: dict[str, Any] = dict(series.get("metric") or {})
            name = metric_labels.pop("__name__", None)
            if not name:
                raise BadInput(
                    f"{where}: series {s} has no __name__ label",
                    path=str(path),
                    field=f"{field}.metric",
                )
            entity = next(
                (
                    str(metric_labels.pop(k))
                    for k in (entity_label, *FALLBACK_ENTITY_LABELS)
                    if k in metric_labels
                ),
                "host",
            )
            extra = sorted((str(k), str(v)) for k, v in metric_labels.items())
            if len(extra) > contract.MAX_LABELS:
                raise BadInput(
                    f"series {s} has {len(extra)} labels besides name and entity; at "
                    f"most {contract.MAX_LABELS}",
                    path=str(path),
                    field=field,
                )
            for key, text in extra:
                if not _LABEL_KEY.match(key) or len(text) > contract.MAX_LABEL_VALUE_LEN:
                    raise BadInput(
                        f"series {s} label {key!r} is not a valid label",
                        path=str(path),
                        field=field,
                    )
            pairs = [{"key": key, "value": text} for key, text in extra]
            for p, point in enumerate(series.get("values") or []):
                try:
                    stamp, raw = point
                    value = float(raw)
                    stamp_ns = round(float(stamp) * 1e9)
                except (TypeError, ValueError):
                    raise BadInput(
                        f'point {p} of series {s} is not [time, "value"]',
                        path=str(path),
                        field=f"{field}.values[{p}]",
                    ) from None
                if not math.isfinite(value):
                    dropped += 1
                    continue
                ts.append(stamp_ns)
                entities.append(entity)
                metrics.append(str(name))
                labels.append(pairs)
                values.append(value)
    frame = pl.DataFrame(
        {"ts_ns": ts, "entity": entities, "metric": metrics, "labels": labels, "value": values},
        schema={
            "ts_ns": pl.Int64,
            "entity": pl.String,
            "metric": pl.String,
            "labels": pl.List(pl.Struct({"key": pl.String, "value": pl.String})),
            "value": pl.Float64,
        },
    )
    return PrometheusImport(frame=check_long(frame, path), dropped_non_finite=dropped)
