"""The collector's loop: sample, build a self-contained batch, spool it, let the sender drain.

One interval::

    measure own CPU/RSS -> governor decides mode, interval, shed sources
    -> sources sample (stamped now) -> Batch(collector_id, producer_epoch, seq, ..., self-metrics)
    -> encode (JSON by default, samples written from the sources' rows) -> spool.append
    -> wake the sender thread

The sender thread (:class:`~sreagent.collector.transport.Sender`) drains the spool on its own
schedule, so a slow or absent controller never delays sampling.

Identity: ``collector_id`` is stable across restarts (configured, or generated once and kept
in ``<state_dir>/collector_id``); ``producer_epoch`` is new on every start and sorts by start
time; ``seq`` counts from 1 within an epoch. The controller deduplicates on the three.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sreagent import __version__
from sreagent.atomic import atomic_write_bytes
from sreagent.collector import (
    BUILTIN_SOURCES,
    Roots,
    Sampler,
    SamplerOptions,
    ScrapeTarget,
    Source,
    SourceOutput,
)
from sreagent.collector._common import NO_LABELS
from sreagent.collector._source import SampleRow, samples_of
from sreagent.collector._wire import default_compression, encode_rows
from sreagent.collector.config import CollectorSettings
from sreagent.collector.selfprotect import MODE_LEVEL, Decision, Governor, SelfMeter, SelfUsage
from sreagent.collector.spool import Spool, SpoolStats
from sreagent.collector.transport import (
    BatchKey,
    DeadLetters,
    Sender,
    SpooledBatch,
    Transport,
    TransportCounters,
)
from sreagent.errors import BadInput
from sreagent.telemetry import Batch, Sample, SourceCapability
from sreagent.telemetry.batch import (
    ID_PATTERN,
    MAX_EVENTS,
    MAX_ID_LEN,
    MAX_PROCESSES,
    MAX_SAMPLES,
)

log = logging.getLogger(__name__)

COLLECTOR_ID_FILE = "collector_id"
SELF_ENTITY = "collector"


# --------------------------------------------------------------------------- what gets sampled


def sampler_options(settings: CollectorSettings) -> SamplerOptions:
    """The facade's options from the ``[sources]`` settings (seconds become sample counts)."""
    cfg = settings.sources

    def every(seconds: float | None) -> int:
        return 1 if seconds is None else max(1, round(seconds / settings.interval_seconds))

    unknown = set(cfg.disabled) - set(BUILTIN_SOURCES) - set(EXTRA_SOURCES)
    if unknown:
        raise BadInput(
            f"unknown source(s) {sorted(unknown)}; known: "
            f"{', '.join((*BUILTIN_SOURCES, *EXTRA_SOURCES))}",
            field="sources.disabled",
        )
    return SamplerOptions(
        process_every=every(cfg.process_interval_seconds),
        cgroup_every=every(cfg.cgroup_interval_seconds),
        inventory_every=every(cfg.inventory_interval_seconds),
        top_n=cfg.top_n,
        pss_top=cfg.pss_top,
        cgroup_max=cfg.cgroup_max,
        cgroup_depth=cfg.cgroup_depth,
        enabled=frozenset(cfg.enabled) if cfg.enabled is not None else None,
        disabled=frozenset(set(cfg.disabled) & set(BUILTIN_SOURCES)),
        kernel_interfaces=cfg.kernel_interfaces,
        scrape_targets=tuple(ScrapeTarget(t.name, t.url, t.timeout_seconds) for t in cfg.scrape),
    )


EXTRA_SOURCES = ("kmsg", "ebpf")
"""Sources built outside the facade's built-in list and passed to it as extra sources."""


def make_sampler(settings: CollectorSettings, *, persist_state: bool = True) -> Sampler:
    """The facade with every configured source, including /dev/kmsg and eBPF when present.

    ``persist_state`` False (``--once``) keeps sources from writing their cursors (the
    kernel log's last sequence number) to the state directory.
    """
    options = sampler_options(settings)
    extra: list[Source] = []
    disabled = set(settings.sources.disabled)
    if "kmsg" not in disabled:
        from sreagent.collector._kmsg import kmsg_source

        extra.append(kmsg_source(Roots(), settings.state_dir if persist_state else None))
    if "ebpf" not in disabled:
        from sreagent.collector._ebpf import ebpf_source

        # With --once the programs would run for one interval only; they still load, so the
        # capability report says what this host can do.
        extra.append(ebpf_source(Roots()))
    return Sampler(Roots(), options, extra_sources=extra)


def apply_shed(sampler: Sampler, wanted: Sequence[str]) -> None:
    """Make the sampler's shed set equal ``wanted`` (restoring what is no longer wanted)."""
    current = set(sampler.shed_sources)
    restore = current - set(wanted)
    if restore:
        sampler.restore(restore)
    shed = [name for name in wanted if name not in current]
    if shed:
        sampler.shed(shed)


# --------------------------------------------------------------------------- identity


def sanitise_id(text: str) -> str:
    """Make ``text`` fit the batch contract's id pattern (letters, digits, ``._:@-``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._:@-]+", "-", text).strip("-._:@")
    return (cleaned or "host")[: MAX_ID_LEN - 16]


def load_collector_id(
    state_dir: Path, configured: str | None, host: str, *, persist: bool = True
) -> tuple[str, bool]:
    """The collector's stable id and whether it is persisted.

    Configured wins; else the id kept in ``<state_dir>/collector_id``; else a new one
    (``<host>-<12 hex>``) written there atomically. When the state directory is not writable,
    or ``persist`` is False (``--once`` writes nothing), the new id is for this run only.
    """
    if configured:
        if not re.match(ID_PATTERN, configured) or len(configured) > MAX_ID_LEN:
            raise BadInput(
                f"collector_id {configured!r} must match {ID_PATTERN} and be at most "
                f"{MAX_ID_LEN} characters",
                field="collector_id",
            )
        return configured, True
    path = state_dir / COLLECTOR_ID_FILE
    new_id = f"{sanitise_id(host)}-{secrets.token_hex(6)}"
    try:
        stored = path.read_text().strip()
    except FileNotFoundError:
        stored = None
    except OSError as err:
        if persist:
            raise BadInput(
                f"cannot read the collector id: {err.strerror}", path=str(path)
            ) from None
        log.warning("cannot read %s (%s); using %s for this run", path, err.strerror, new_id)
        return new_id, False
    if stored is not None:
        if re.match(ID_PATTERN, stored) and len(stored) <= MAX_ID_LEN:
            return stored, True
        raise BadInput(f"{stored!r} is not a valid collector id", path=str(path))
    if not persist:
        return new_id, False
    try:
        atomic_write_bytes(path, (new_id + "\n").encode())
    except OSError as err:
        log.warning(
            "cannot keep the collector id in %s (%s); using %s for this run",
            path,
            err.strerror,
            new_id,
        )
        return new_id, False
    return new_id, True


def ensure_state_dir(state_dir: Path) -> None:
    """Create the state directory and prove it is writable, or raise a named error."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        probe = state_dir / f".tmp-write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise BadInput(
            f"the state directory is not writable ({err.strerror}); set --state-dir or "
            "state_dir to a directory this user may write",
            path=str(state_dir),
        ) from None


def new_producer_epoch(clock_ns: Callable[[], int] = time.time_ns) -> str:
    """A new epoch: start time in hex (so epochs sort by start) plus randomness."""
    return f"{clock_ns():016x}-{secrets.token_hex(3)}"


# --------------------------------------------------------------------------- self-metrics


@dataclass
class SelfState:
    """What the collector knows about itself when it builds a batch."""

    usage: SelfUsage | None = None
    spool: SpoolStats | None = None
    transport: TransportCounters | None = None
    decision: Decision | None = None
    sample_cpu_seconds: float | None = None
    shed: tuple[str, ...] = field(default_factory=tuple)


def self_metric_rows(now_ns: int, state: SelfState) -> list[SampleRow]:
    """The collector_* samples every batch carries (names in sreagent.telemetry.names), as
    rows; a value that is not finite (none should be) is left out rather than sent."""
    values: list[tuple[str, float]] = []
    if state.usage is not None:
        values += [
            ("collector_cpu_seconds_per_second", state.usage.cpu_cores),
            ("collector_rss_bytes", float(state.usage.rss_bytes)),
        ]
    if state.sample_cpu_seconds is not None:
        values.append(("collector_sample_duration_seconds", state.sample_cpu_seconds))
    if state.decision is not None:
        values += [
            ("collector_mode", float(MODE_LEVEL[state.decision.mode])),
            ("collector_interval_seconds", state.decision.interval_s),
            ("collector_sources_shed", float(len(state.decision.shed))),
        ]
    else:
        values.append(("collector_mode", 0.0))
    if state.spool is not None:
        values += [
            ("collector_spool_bytes", float(state.spool.bytes)),
            ("collector_spool_records", float(state.spool.records)),
            ("collector_spool_dropped_total", float(state.spool.dropped_total)),
            ("collector_spool_corrupt_total", float(state.spool.corrupt_total)),
        ]
    if state.transport is not None:
        values += [
            ("collector_batches_delivered_total", float(state.transport.delivered_total)),
            ("collector_transport_errors_total", float(state.transport.errors_total)),
            ("collector_ack_mismatches_total", float(state.transport.ack_mismatch_total)),
            ("collector_dead_letters_total", float(state.transport.dead_letter_total)),
        ]
    return [
        (now_ns, metric, SELF_ENTITY, NO_LABELS, value)
        for metric, value in values
        if math.isfinite(value)
    ]


def self_metrics(now_ns: int, state: SelfState) -> list[Sample]:
    """:func:`self_metric_rows` as ``Sample`` models."""
    return samples_of(self_metric_rows(now_ns, state))


# --------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class Identity:
    collector_id: str
    host: str
    producer_epoch: str
    labels: dict[str, str]


@dataclass(frozen=True)
class BatchParts:
    """A built batch as the daemon keeps it: every field but the samples, validated, in
    ``header``, and the samples as rows. :func:`sreagent.collector._wire.encode_rows` writes
    it without one ``Sample`` model per row; :meth:`batch` builds the whole model."""

    header: Batch
    rows: list[SampleRow]

    @property
    def seq(self) -> int:
        return self.header.seq

    def batch(self) -> Batch:
        """The whole batch as a model (tests, ``collect --once``)."""
        return self.header.model_copy(update={"samples": samples_of(self.rows)})


def build_parts(
    identity: Identity,
    seq: int,
    now_ns: int,
    output: SourceOutput,
    capabilities: list[SourceCapability],
    extra_rows: list[SampleRow],
) -> BatchParts:
    """One self-contained batch; rows beyond the contract's limits are cut (and logged)."""
    rows = output.rows + extra_rows
    if len(rows) > MAX_SAMPLES:
        log.warning("batch %d: %d samples, keeping %d", seq, len(rows), MAX_SAMPLES)
        rows = extra_rows + output.rows[: MAX_SAMPLES - len(extra_rows)]
    processes = output.processes[:MAX_PROCESSES]
    events = output.events[:MAX_EVENTS]
    if len(output.processes) > MAX_PROCESSES or len(output.events) > MAX_EVENTS:
        log.warning("batch %d: processes or events cut to the contract's limits", seq)
    header = Batch(
        collector_id=identity.collector_id,
        host=identity.host,
        producer_epoch=identity.producer_epoch,
        seq=seq,
        sent_at_ns=now_ns,
        collector_version=__version__,
        labels=identity.labels,
        processes=processes,
        events=events,
        capabilities=capabilities,
        inventory=output.inventory,
    )
    return BatchParts(header, rows)


def build_batch(
    identity: Identity,
    seq: int,
    now_ns: int,
    output: SourceOutput,
    capabilities: list[SourceCapability],
    extra_samples: list[Sample],
) -> Batch:
    """:func:`build_parts` as one ``Batch`` model (``collect --once``)."""
    extra = SourceOutput(extra_samples).rows
    return build_parts(identity, seq, now_ns, output, capabilities, extra).batch()


def make_identity(
    settings: CollectorSettings,
    clock_ns: Callable[[], int] = time.time_ns,
    *,
    persist: bool = True,
) -> tuple[Identity, bool]:
    host = settings.host or socket.gethostname()
    collector_id, persisted = load_collector_id(
        settings.state_dir, settings.collector_id, host, persist=persist
    )
    return Identity(
        collector_id, host, new_producer_epoch(clock_ns), dict(settings.labels)
    ), persisted


def collect_once(
    settings: CollectorSettings,
    sampler: Sampler,
    *,
    window_s: float = 1.0,
    clock_ns: Callable[[], int] = time.time_ns,
    sleep: Callable[[float], None] = time.sleep,
) -> Batch:
    """One batch without spool or controller (``sreagent collect --once``).

    Rates need two readings, so with ``window_s > 0`` the sources are read once to prime
    them, and the batch holds the second reading ``window_s`` later.
    """
    identity, _ = make_identity(settings, clock_ns, persist=False)
    meter = SelfMeter()
    if window_s > 0:
        sampler.prime(clock_ns())
        sleep(window_s)
    started = time.thread_time()
    now_ns = clock_ns()
    output = sampler.sample(now_ns, full=True)
    state = SelfState(usage=meter.measure(), sample_cpu_seconds=time.thread_time() - started)
    return build_parts(
        identity, 1, now_ns, output, sampler.capabilities(), self_metric_rows(now_ns, state)
    ).batch()


# --------------------------------------------------------------------------- the daemon


class CollectorDaemon:
    """The long-running collector: owns the sampler, the spool, the sender and the governor."""

    def __init__(
        self,
        settings: CollectorSettings,
        sampler: Sampler,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.sampler = sampler
        self._clock_ns = clock_ns
        self._monotonic = monotonic
        ensure_state_dir(settings.state_dir)
        self.identity, _ = make_identity(settings, clock_ns)
        spool_cfg = settings.spool
        self.spool = Spool(
            settings.spool_dir,
            max_bytes=spool_cfg.max_bytes,
            max_age_s=spool_cfg.max_age_seconds,
            segment_bytes=spool_cfg.segment_bytes,
            fsync=spool_cfg.fsync,
            fsync_interval_s=spool_cfg.fsync_interval_seconds,
            clock_ns=clock_ns,
        )
        self.sender: Sender | None = None
        transport_cfg = settings.transport
        if transport_cfg.endpoints:
            transport = Transport(
                transport_cfg.endpoints,
                token=transport_cfg.bearer_token(),
                ca_file=transport_cfg.ca_file,
                client_cert=transport_cfg.client_cert,
                client_key=transport_cfg.client_key,
                compression=(
                    default_compression(transport_cfg.encoding)
                    if transport_cfg.compression == "auto"
                    else transport_cfg.compression
                ),
                timeout_s=transport_cfg.timeout_seconds,
                user_agent=f"sreagent-collector/{__version__}",
            )
            self.sender = Sender(
                self.spool,
                transport,
                DeadLetters(settings.dead_letter_path, transport_cfg.dead_letter_max_bytes),
                backoff_initial_s=transport_cfg.backoff_initial_seconds,
                backoff_max_s=transport_cfg.backoff_max_seconds,
                max_ack_mismatches=transport_cfg.max_ack_mismatches,
            )
        else:
            log.warning("no controller endpoint configured: batches stay in the spool")
        protection = settings.protection
        self.meter = SelfMeter(monotonic=monotonic)
        self.governor = Governor(
            base_interval_s=settings.interval_seconds,
            max_interval_s=protection.max_interval_seconds,
            cpu_budget_cores=protection.cpu_budget_cores,
            rss_budget_bytes=protection.rss_budget_bytes,
            pressure_fill_ratio=protection.pressure_fill_ratio,
            critical_fill_ratio=protection.critical_fill_ratio,
            optional_sources=sampler.shed_order(),
            shed_order=protection.shed_order or sampler.shed_order(),
            recover_after=protection.recover_after_intervals,
            cpu_window_s=protection.cpu_window_seconds,
        )
        self.seq = 0
        self.last_decision: Decision | None = None

    def step(self) -> tuple[BatchParts, Decision]:
        """One interval's work: decide, sample, build, encode, spool. Returns what it built
        (``.batch()`` of it is the model; the daemon itself never builds one ``Sample`` per
        row)."""
        usage = self.meter.measure()
        spool_stats = self.spool.stats()
        # The first measurement spans start-up (opening sources, the first full reads) over a
        # short wall time; judging the budget on it would shed everything at once.
        judged = usage if self.seq > 0 else SelfUsage(0.0, 0.0, usage.wall_seconds, 0)
        decision = self.governor.decide(judged, spool_stats.fill_ratio)
        previous = self.last_decision.shed if self.last_decision else ()
        if decision.shed != previous:
            apply_shed(self.sampler, decision.shed)
            if len(decision.shed) > len(previous):
                log.warning(
                    "self-protection: shedding %s (%s)",
                    ", ".join(decision.shed),
                    "; ".join(decision.reasons),
                )
        self.last_decision = decision
        started = time.thread_time()
        now_ns = self._clock_ns()
        output = self.sampler.sample(now_ns)
        sample_cpu = time.thread_time() - started
        state = SelfState(
            usage=usage,
            spool=spool_stats,
            transport=self.sender.transport.counters if self.sender else None,
            decision=decision,
            sample_cpu_seconds=sample_cpu,
        )
        self.seq += 1
        parts = build_parts(
            self.identity,
            self.seq,
            now_ns,
            output,
            self.sampler.capabilities(),
            self_metric_rows(now_ns, state),
        )
        header = parts.header
        key = BatchKey(header.collector_id, header.producer_epoch, header.seq)
        content_type, body = encode_rows(header, parts.rows, self.settings.transport.encoding)
        self.spool.append(SpooledBatch(key, content_type, body).to_bytes())
        if self.sender is not None:
            self.sender.wake()
        return parts, decision

    def run(self, stop: threading.Event, max_batches: int | None = None) -> None:
        """Sample every interval until ``stop`` is set; then send what is left and close."""
        sender_stop = threading.Event()
        thread = None
        if self.sender is not None:
            thread = threading.Thread(
                target=self.sender.run, args=(sender_stop,), name="sreagent-sender", daemon=True
            )
            thread.start()
        log.info(
            "collector %s epoch %s: sampling every %.3gs",
            self.identity.collector_id,
            self.identity.producer_epoch,
            self.settings.interval_seconds,
        )
        # Everything alive now (modules, pydantic schemas, open sources) lives as long as the
        # process: move it out of the collector's sight, so the periodic full collections
        # the sampling loop's garbage triggers walk only what the loop made.
        gc.freeze()
        try:
            due = self._monotonic()
            built = 0
            while not stop.is_set():
                try:
                    _, decision = self.step()
                except Exception:  # a full disk or a bad row must not kill the collector
                    log.exception("interval %d failed; carrying on", self.seq + 1)
                    decision = self.last_decision or Decision(
                        "normal", self.settings.interval_seconds, (), ()
                    )
                built += 1
                if max_batches is not None and built >= max_batches:
                    break
                due = max(due + decision.interval_s, self._monotonic())
                stop.wait(max(0.0, due - self._monotonic()))
        finally:
            sender_stop.set()
            if self.sender is not None and thread is not None:
                self.sender.wake()
                thread.join(timeout=self.settings.transport.timeout_seconds + 2)
                grace = self.settings.transport.shutdown_grace_seconds
                if grace > 0 and not thread.is_alive():
                    with contextlib.suppress(Exception):
                        self.sender.drain(deadline=time.monotonic() + grace)
            self.close()

    def close(self) -> None:
        self.sampler.close()
        self.spool.close()
        if self.sender is not None:
            self.sender.transport.close()
