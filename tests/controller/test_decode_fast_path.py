"""The decoder's quick whole-column pass never accepts what the row-by-row checks refuse.

``_rows_clearly_valid`` lets a valid batch skip the detailed checks; these tests hold it to
"True only when ``_check_rows`` passes": for arbitrary valid batches, and for each kind of bad
row (which must fall through to the detailed check, whose error names the row).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings

from sreagent.errors import BadInput, LimitExceeded, NonFiniteValue
from sreagent.telemetry import Batch, Event, Sample
from sreagent.telemetry.arrow import (
    EVENTS_SCHEMA,
    PROCESSES_SCHEMA,
    SAMPLES_SCHEMA,
    _check_rows,
    _rows_clearly_valid,
    frame_from_batch,
)
from sreagent.telemetry.batch import ProcessRow
from tests.strategies import model_strategy

T = 1_767_225_600_000_000_000
SCHEMAS = {"samples": SAMPLES_SCHEMA, "processes": PROCESSES_SCHEMA, "events": EVENTS_SCHEMA}


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(model_strategy(Batch))
def test_every_valid_batch_passes_the_quick_pass(batch: Batch) -> None:
    frame = frame_from_batch(batch)
    for name in SCHEMAS:
        table = getattr(frame, name)
        _check_rows(name, table)  # valid by construction
        # Byte lengths only prove character lengths for ASCII: a multi-byte string near its
        # limit is a "maybe" that the row-by-row check settles.
        ascii_only = all(pc.all(pc.string_is_ascii(table.column(f.name))).as_py() is not False
                         for f in table.schema if pa.types.is_string(f.type))
        if ascii_only:
            assert _rows_clearly_valid(name, table), name


def _rows() -> dict[str, list[dict[str, Any]]]:
    frame = frame_from_batch(Batch(
        collector_id="c", host="h", producer_epoch="e", seq=1, sent_at_ns=T,
        samples=[Sample(ts_ns=T - i, metric="cpu_utilisation_ratio", entity="host",
                        labels={"mode": "user"} if i % 2 else {}, value=0.5)
                 for i in range(20)],
        processes=[ProcessRow(ts_ns=T, pid=10 + i, ppid=1, comm="x", cpu_ratio=0.1,
                              fds=None if i else 5) for i in range(3)],
        events=[Event(ts_ns=T, kind="oom_kill", entity="process/1", source="kmsg",
                      severity="error", attributes={"victim": "x"}) for _ in range(3)]))
    return {name: getattr(frame, name).to_pylist() for name in SCHEMAS}


Mutation = Callable[[dict[str, list[dict[str, Any]]]], None]
BAD: list[tuple[str, Mutation, type[BadInput], str]] = [
    ("samples", lambda r: r["samples"][7].update(value=float("nan")), NonFiniteValue,
     "samples[7].value"),
    ("samples", lambda r: r["samples"][3].update(value=float("-inf")), NonFiniteValue,
     "samples[3].value"),
    ("samples", lambda r: r["samples"][5].update(ts_ns=-5), BadInput, "samples[5].ts_ns"),
    ("samples", lambda r: r["samples"][9].update(metric="Bad Metric"), BadInput,
     "samples[9].metric"),
    ("samples", lambda r: r["samples"][4].update(entity=""), BadInput, "samples[4].entity"),
    ("samples", lambda r: r["samples"][2].update(entity="é" * 300), LimitExceeded,
     "samples[2].entity"),
    ("samples", lambda r: r["samples"][11].update(labels=[("bad-key", "v")]), BadInput,
     "samples[11].labels"),
    ("samples", lambda r: r["samples"][13].update(labels=[("k", "v" * 300)]), LimitExceeded,
     "samples[13].labels"),
    ("samples", lambda r: r["samples"][1].update(labels=[(f"k{i}", "v") for i in range(40)]),
     LimitExceeded, "samples[1].labels"),
    ("processes", lambda r: r["processes"][2].update(cpu_ratio=float("nan")), NonFiniteValue,
     "processes[2].cpu_ratio"),
    ("processes", lambda r: r["processes"][1].update(pid=-1), BadInput, "processes[1].pid"),
    ("events", lambda r: r["events"][2].update(severity="fatal"), BadInput,
     "events[2].severity"),
    ("events", lambda r: r["events"][1].update(kind="Not-A-Kind"), BadInput, "events[1].kind"),
]


@pytest.mark.parametrize(("name", "mutate", "error", "field"), BAD,
                         ids=[b[3] + "-" + b[2].__name__ for b in BAD])
def test_a_bad_row_falls_through_to_the_named_check(name: str, mutate: Mutation,
                                                    error: type[BadInput], field: str) -> None:
    rows = _rows()
    assert _rows_clearly_valid(name, pa.Table.from_pylist(rows[name], schema=SCHEMAS[name]))
    mutate(rows)
    table = pa.Table.from_pylist(rows[name], schema=SCHEMAS[name])
    assert not _rows_clearly_valid(name, table)
    with pytest.raises(error) as caught:
        _check_rows(name, table)
    assert caught.value.field == field


def test_multibyte_strings_within_the_limit_are_accepted() -> None:
    rows = _rows()["samples"]
    rows[2]["entity"] = "é" * 200  # 400 bytes, 200 characters: within 256 characters
    table = pa.Table.from_pylist(rows, schema=SAMPLES_SCHEMA)
    assert not _rows_clearly_valid("samples", table)  # a maybe...
    _check_rows("samples", table)  # ...that the detailed check accepts


def test_a_sliced_column_is_judged_on_its_own_rows() -> None:
    rows = _rows()["samples"]
    rows[0]["entity"] = "e" * 300  # outside the slice below
    table = pa.Table.from_pylist(rows, schema=SAMPLES_SCHEMA).slice(1)
    _check_rows("samples", table)
    assert _rows_clearly_valid("samples", table)
