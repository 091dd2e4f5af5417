"""/metrics: the controller's own health in Prometheus exposition, one registry per app."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sreagent.controller.service import Controller


class ControllerCollector(Collector):
    """Reads the controller's counters at scrape time (no second set of books)."""

    def __init__(self, controller: Controller):
        self.c = controller

    def collect(self) -> Iterator[Metric]:
        c = self.c
        counters = c.ingest.counters
        batches = CounterMetricFamily(
            "sreagent_ingest_batches", "Batches received, by outcome", labels=["outcome"]
        )
        batches.add_metric(["accepted"], counters.accepted)
        batches.add_metric(["duplicate"], counters.duplicates)
        batches.add_metric(["conflict"], counters.conflicts)
        yield batches
        yield CounterMetricFamily(
            "sreagent_ingest_samples", "Samples accepted", value=counters.samples
        )
        rejected = CounterMetricFamily(
            "sreagent_ingest_rejected", "Batches rejected, by error code", labels=["reason"]
        )
        for reason, n in sorted(counters.rejected.items()):
            rejected.add_metric([reason], n)
        yield rejected
        stats = c.hot.stats()
        for name in ("hosts", "series", "samples", "events"):
            yield GaugeMetricFamily(
                f"sreagent_hot_state_{name}", f"Hot state {name} held", value=stats[name]
            )
        evictions = CounterMetricFamily(
            "sreagent_hot_state_evictions", "Hot state evictions, by kind", labels=["kind"]
        )
        for kind, n in stats["evictions"].items():
            evictions.add_metric([kind], n)
        yield evictions
        yield GaugeMetricFamily(
            "sreagent_journal_pending_batches",
            "Batches waiting for the next journal flush",
            value=c.ingest.group_commit.pending,
        )
        yield CounterMetricFamily(
            "sreagent_journal_flushes", "Journal flushes", value=c.ingest.group_commit.flushes
        )
        journal = c.ingest.group_commit
        yield CounterMetricFamily(
            "sreagent_journal_parquet_seconds",
            "Time spent writing Parquet part files",
            value=journal.parquet_seconds,
        )
        yield CounterMetricFamily(
            "sreagent_journal_parquet_cpu_seconds",
            "CPU time the flushing thread spent writing Parquet part files",
            value=journal.parquet_cpu_seconds,
        )
        yield CounterMetricFamily(
            "sreagent_journal_parquet_rows",
            "Rows written as Parquet part files",
            value=journal.parquet_rows,
        )
        yield GaugeMetricFamily(
            "sreagent_journal_buffered_rows",
            "Acknowledged rows waiting for the next Parquet flush",
            value=journal.buffered_rows,
        )
        runs = GaugeMetricFamily("sreagent_runs", "Workflow runs by state", labels=["state"])
        try:
            for state, n in c.store.run_state_counts().items():
                runs.add_metric([state], n)
        except Exception:  # a store outage must not break the scrape
            pass
        yield runs
        yield GaugeMetricFamily(
            "sreagent_runs_active", "Runs being driven now", value=c.engine.active
        )
        yield GaugeMetricFamily(
            "sreagent_leader", "1 when this controller is the leader", value=1 if c.is_leader else 0
        )
        notes = CounterMetricFamily(
            "sreagent_notifications", "Notifications by result", labels=["result"]
        )
        notes.add_metric(["sent"], c.notifier.sent)
        notes.add_metric(["failed"], c.notifier.failed)
        notes.add_metric(["dropped"], c.notifier.dropped)
        yield notes


def build_registry(controller: Controller) -> tuple[CollectorRegistry, Histogram, Histogram]:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ControllerCollector(controller))
    ack = Histogram(
        "sreagent_ingest_ack_seconds",
        "From request received to acknowledgement (journal lag included)",
        registry=registry,
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    )
    flush = Histogram(
        "sreagent_journal_flush_seconds",
        "Duration of one journal group flush",
        registry=registry,
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
    )
    return registry, ack, flush
