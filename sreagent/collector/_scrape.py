"""Scrape targets: Prometheus text endpoints on the host (an inference server, dcgm-exporter).

The exposition is parsed with ``prometheus_client.parser``. Scraped series keep their own
metric names (they are the target's vocabulary, not sreagent's) under the entity
``scrape/<target>``; ``scrape_up`` and ``scrape_duration_seconds`` say how each scrape went.
A series with a non-finite value (NaN, ``+Inf``) is dropped, since a sample value is always
finite; labels beyond the batch limit are dropped in key order and values are truncated.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from sreagent.collector._common import capability, row
from sreagent.collector._source import SampleRow, SourceOutput
from sreagent.errors import BadInput
from sreagent.telemetry import SourceCapability
from sreagent.telemetry.batch import MAX_LABEL_VALUE_LEN, MAX_LABELS

DEFAULT_MAX_SERIES = 2000
"""Series kept per target and scrape (a runaway exporter must not fill the batch)."""


@dataclass(frozen=True)
class ScrapeTarget:
    name: str
    """Short name used in the entity (``scrape/<name>``)."""
    url: str
    timeout_s: float = 2.0

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise BadInput(
                f"scrape target name {self.name!r} must be non-empty without '/'", field="name"
            )
        if not self.url.startswith(("http://", "https://")):
            raise BadInput(
                f"scrape target {self.name!r}: url {self.url!r} is not http(s)", field="url"
            )


def parse_exposition(text: str, now_ns: int, entity: str, max_series: int) -> list[SampleRow]:
    """Samples of a Prometheus text exposition (raises ValueError on malformed text)."""
    out: list[SampleRow] = []
    # Imported here: the parser is only needed when scrape targets are configured.
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if not math.isfinite(s.value):
                continue
            labels = {k: v[:MAX_LABEL_VALUE_LEN] for k, v in sorted(s.labels.items())[:MAX_LABELS]}
            out.append(row(now_ns, s.name, entity, s.value, labels))
            if len(out) >= max_series:
                return out
    return out


class ScrapeSource:
    """``scrape``: optional Prometheus endpoints, parsed into samples."""

    name = "scrape"
    optional = True

    def __init__(
        self, targets: list[ScrapeTarget], *, max_series: int = DEFAULT_MAX_SERIES
    ) -> None:
        self._targets = targets
        self._max_series = max_series
        import httpx

        self._httpx = httpx
        self._client = httpx.Client(headers={"Accept": "text/plain;version=0.0.4"})
        self._errors: dict[str, str] = {}

    def capability(self) -> SourceCapability:
        if not self._targets:
            return capability(self.name, "off", "no scrape targets configured")
        if self._errors and len(self._errors) == len(self._targets):
            detail = "; ".join(f"{k}: {v}" for k, v in sorted(self._errors.items()))
            return capability(self.name, "off", f"every target failed: {detail}")
        detail = "; ".join(f"{k}: {v}" for k, v in sorted(self._errors.items()))
        reason = f"{len(self._targets)} target(s)" + (f"; failing {detail}" if detail else "")
        return capability(self.name, "kernel", reason)

    def read(self, now_ns: int) -> SourceOutput:
        out: list[SampleRow] = []
        for target in self._targets:
            entity = f"scrape/{target.name}"
            started = time.monotonic()
            try:
                response = self._client.get(target.url, timeout=target.timeout_s)
                response.raise_for_status()
                samples = parse_exposition(response.text, now_ns, entity, self._max_series)
            except (self._httpx.HTTPError, ValueError) as err:
                self._errors[target.name] = f"{type(err).__name__}: {err}"[:300]
                out.append(row(now_ns, "scrape_up", entity, 0.0))
                continue
            self._errors.pop(target.name, None)
            out.extend(samples)
            out.append(row(now_ns, "scrape_up", entity, 1.0))
            out.append(row(now_ns, "scrape_duration_seconds", entity, time.monotonic() - started))
        return SourceOutput(rows=out)

    def close(self) -> None:
        self._client.close()
