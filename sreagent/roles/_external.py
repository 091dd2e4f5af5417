"""Incidents opened by an external alert: the alarm someone else raised, as evidence.

In the product an incident is opened either by the analyzer's own detectors or from outside:
Alertmanager's webhook (docs/controller.md) opens or enriches one, and the chain is then asked
to explain it even when its own detectors would not have opened it. The same holds for the
RCA protocol of the public benchmarks, which hands every method the time the anomaly was
detected (docs/evaluation-method.md, "RCA protocol").

Such an alert reaches the chain as telemetry: an event of kind ``alert`` (the batch contract's
``EVENT_KINDS``) in the window, with the alert's name in the ``alertname`` attribute. Because
it is an ordinary event row it is recorded in the evidence package with the rest of the
window, so a run that an alert opened replays identically. The analyzer's own detections are
not changed by it: the alert adds an incident (and a finding saying who opened it), never an
alarm run.

This module only reads those events; what the series path does with them is in
:mod:`sreagent.roles._series`. Pure: no clock, I/O or randomness.
"""

from __future__ import annotations

from dataclasses import dataclass

from sreagent.runtime._view import EvidenceView

ALERT_EVENT = "alert"
"""The event kind of an external alert (``sreagent.telemetry.names.EVENT_KINDS``)."""
ALERT_DETECTOR = "external_alert"
"""The anomaly finding's ``detector`` for the alert that opened an incident."""
ALERT_NAME_ATTRIBUTE = "alertname"
"""The event attribute holding the alert's name (Alertmanager's ``alertname`` label)."""


@dataclass(frozen=True)
class ExternalAlert:
    """One alert event of the window."""

    ts_ns: int
    name: str
    entity: str
    severity: str
    batch_id: str

    @property
    def fingerprint(self) -> str:
        """The incident fingerprint of an alert-opened incident (``alert:<name>``)."""
        return f"alert:{self.name}"[:256]


def external_alerts(view: EvidenceView, *, not_before_ns: int) -> tuple[ExternalAlert, ...]:
    """The view's alert events at or after ``not_before_ns``, in time order.

    An alert inside the baseline part would ask the chain to explain what its own baseline
    calls normal; the analyzer ignores those.
    """
    return tuple(
        ExternalAlert(ts_ns=e.ts_ns, name=e.attributes.get(ALERT_NAME_ATTRIBUTE, "alert"),
                      entity=e.entity, severity=e.severity, batch_id=e.batch_id)
        for e in view.events_of(ALERT_EVENT) if e.ts_ns >= not_before_ns)


__all__ = ["ALERT_DETECTOR", "ALERT_EVENT", "ALERT_NAME_ATTRIBUTE", "ExternalAlert",
           "external_alerts"]
