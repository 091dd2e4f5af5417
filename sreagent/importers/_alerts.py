"""An external alert as telemetry: one ``sreagent.batch/v1`` batch holding one ``alert`` event.

The analyzer treats an ``alert`` event as an incident opened from outside
(:mod:`sreagent.roles._external`). Built through the batch contract's own models, so the row
is validated like a collector's, and written as ordinary evidence tables that a package
records with the rest of the window (replay then sees the same alert).
"""

from __future__ import annotations

import pyarrow as pa

from sreagent.evidence.tables import frames_to_tables
from sreagent.telemetry.arrow import frame_from_batch
from sreagent.telemetry.batch import Batch, Event, Severity, SourceCapability

ALERT_COLLECTOR = "import-alert"
ALERT_SOURCE = "import:alert"
"""Capability source of an imported alert's batch: an ``import:`` source like every imported
batch, so an imported window stays on the series path whichever batch comes last."""


def alert_tables(*, host: str, ts_ns: int, name: str, entity: str = "host",
                 severity: Severity = "warning", summary: str = "",
                 epoch: str = "alert") -> dict[str, pa.Table]:
    """The evidence tables (batches, samples, processes, events) of one alert at ``ts_ns``."""
    batch = Batch(
        collector_id=ALERT_COLLECTOR, host=host, producer_epoch=epoch, seq=1, sent_at_ns=ts_ns,
        events=[Event(ts_ns=ts_ns, kind="alert", entity=entity, source="alertmanager",
                      severity=severity, message=summary, attributes={"alertname": name})],
        capabilities=[SourceCapability(source=ALERT_SOURCE, mode="fallback",
                                       reason="an alert handed to the chain from outside")])
    return frames_to_tables([frame_from_batch(batch)])


__all__ = ["ALERT_SOURCE", "alert_tables"]
