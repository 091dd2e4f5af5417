"""The game day's steady state: no incident on the host before the fault is injected.

A game day starts from a verified steady state. Before injecting, the run looks at the
controller's incidents for the host: an incident still open, or one closed less than
``quiet_s`` ago (inside the baseline the analysis window begins with), means the host is not
steady: the fault's alarm would join an incident that something else opened, or the chain's
baseline would hold someone else's trouble. The run waits a bounded time for the host to
settle and otherwise fails, naming the incidents and what to do. It never chooses an incident
by the answer it expects.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sreagent.lab.live._errors import LabFailed


class HostNotSteady(LabFailed):
    """The host had incidents open (or just closed) before the fault; nothing was injected."""

    code = "lab_host_not_steady"


@dataclass(frozen=True)
class Unsteady:
    """Why the host is not steady yet: incidents open, or closed within the quiet period."""

    open: tuple[dict[str, Any], ...]
    recently_closed: tuple[dict[str, Any], ...]

    @property
    def steady(self) -> bool:
        return not self.open and not self.recently_closed

    def describe(self, now_ns: int) -> str:
        parts = [_describe(i, now_ns) for i in (*self.open, *self.recently_closed)]
        return "; ".join(parts)


def _rule(incident: dict[str, Any]) -> str:
    return str(incident.get("fingerprint", "")).split(":", 1)[-1] or str(incident.get("title"))


def _describe(incident: dict[str, Any], now_ns: int) -> str:
    opened = (now_ns - int(incident["opened_at_ns"])) / 1e9
    text = f"{incident['incident_id']} (rule {_rule(incident)}, opened {opened:.0f} s ago"
    if incident.get("state") == "closed" and incident.get("closed_at_ns"):
        text += f", closed {(now_ns - int(incident['closed_at_ns'])) / 1e9:.0f} s ago"
    return text + ")"


def unsteady(incidents: Sequence[dict[str, Any]], host: str, now_ns: int,
             quiet_s: float) -> Unsteady:
    """What keeps ``host`` from being steady at ``now_ns``: its open incidents, and those that
    closed less than ``quiet_s`` ago. Pure: the incident rows as the API lists them."""
    mine = sorted((i for i in incidents if i.get("host") == host),
                  key=lambda i: int(i["opened_at_ns"]))
    still_open = tuple(i for i in mine if i.get("state") == "open")
    recent = tuple(
        i for i in mine
        if i.get("state") == "closed" and i.get("closed_at_ns") is not None
        and now_ns - int(i["closed_at_ns"]) < quiet_s * 1e9
    )
    return Unsteady(still_open, recent)


def wait_steady(list_incidents: Callable[[], list[dict[str, Any]]], host: str, *,
                quiet_s: float, timeout_s: float, progress: Callable[[str], None],
                clock_ns: Callable[[], int] = time.time_ns,
                sleep: Callable[[float], None] = time.sleep) -> float:
    """Wait until ``host`` is steady (no incident open, none closed within ``quiet_s``), at most
    ``timeout_s``; returns the seconds waited. Raises :class:`HostNotSteady` naming what is
    still open when the host does not settle in time."""
    start = clock_ns()
    said = False
    while True:
        now = clock_ns()
        state = unsteady(list_incidents(), host, now, quiet_s)
        if state.steady:
            return (now - start) / 1e9
        waited = (now - start) / 1e9
        if waited >= timeout_s:
            raise HostNotSteady(
                f"host {host} is not in a steady state, so the fault was not injected: "
                f"{state.describe(now)}. A game day starts from a quiet host: stop the load "
                f"behind these incidents (`uptime`, `top`) or wait for it to end, then run "
                f"again (waited {waited:.0f} s; --steady-timeout waits longer)"
            )
        if not said:
            progress(f"host not steady yet: {state.describe(now)}; waiting up to "
                     f"{timeout_s:.0f} s for it to settle")
            said = True
        sleep(1.0)
