"""Sample rows instead of Sample models: the batch the daemon sends is the same, byte for byte.

The sources hand their samples over as plain tuples (``SourceOutput.rows``) and the daemon
writes them into the batch's JSON without building a ``Sample`` per row
(``_wire.encode_rows``). These tests build the same batch both ways, the models path being
the one the collector used before (``Batch`` -> ``model_dump_json``), and compare the wire
bytes and the controller's digest; on randomised batches and on a real sampler's output.
"""

from __future__ import annotations

import math
import random
import struct
import time
from pathlib import Path

import pytest

from sreagent.collector import Sampler, SamplerOptions, SourceOutput, _source, _wire
from sreagent.collector._common import NO_LABELS
from sreagent.collector.config import load_settings
from sreagent.collector.daemon import (
    BatchParts,
    CollectorDaemon,
    Identity,
    build_parts,
    make_sampler,
)
from sreagent.collector.transport import SpooledBatch
from sreagent.telemetry import (
    Batch,
    Event,
    ProcessRow,
    Sample,
    SourceCapability,
    batch_digest,
    decode_batch,
)
from sreagent.telemetry.names import METRICS_BY_NAME

NAMES = sorted(METRICS_BY_NAME)
ALPHABET = 'abcXYZ019 _-./:"\\\n\t\x00\x01\x1f\x7fé€😀\u2028'


def _text(rng: random.Random, lo: int, hi: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(lo, hi)))


def _value(rng: random.Random) -> float:
    kind = rng.randrange(9)
    if kind == 0:
        return float(rng.randint(-(2**60), 2**60))
    if kind == 1:
        return rng.randint(0, 2**62)  # an int row value is sent as the float it equals
    if kind == 2:
        return rng.choice([0.0, -0.0, 1.0, 5e-324, 1e-300, 1e300, 1.7976931348623157e308])
    if kind == 3:
        # any finite bit pattern, so every float format path is exercised
        while True:
            v: float = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
            if math.isfinite(v):
                return v
    if kind == 4:
        return rng.random() * 10.0 ** rng.randint(-30, 30)
    return rng.uniform(-1e6, 1e6)


def _rows(rng: random.Random, n: int) -> list[_source.SampleRow]:
    rows: list[_source.SampleRow] = []
    for _ in range(n):
        labels = {
            rng.choice("abcdefgh") + _key(rng): _text(rng, 0, 8) for _ in range(rng.randint(0, 4))
        }
        rows.append(
            (
                rng.randint(0, 2**63 - 1),
                rng.choice(NAMES),
                _text(rng, 1, 20),
                dict(sorted(labels.items())),
                _value(rng),
            )
        )
    return rows


def _key(rng: random.Random) -> str:
    return "".join(rng.choice("abcz_09") for _ in range(rng.randint(0, 6)))


def _header_parts(
    rng: random.Random,
) -> tuple[list[ProcessRow], list[Event], list[SourceCapability]]:
    processes = [
        ProcessRow(
            ts_ns=rng.randint(0, 2**62),
            pid=rng.randint(1, 2**22),
            ppid=1,
            comm=_text(rng, 1, 15),
            cmdline=_text(rng, 0, 40),
            cpu_ratio=rng.random(),
            rss_bytes=rng.randint(0, 2**40),
            fds=rng.choice([None, 12]),
        )
        for _ in range(rng.randint(0, 3))
    ]
    events = [
        Event(
            ts_ns=rng.randint(0, 2**62),
            kind="link_down",
            entity=_text(rng, 1, 10),
            source="netlink",
            message=_text(rng, 0, 30),
            attributes={"z": _text(rng, 0, 5), "a": "1"},
        )
        for _ in range(rng.randint(0, 2))
    ]
    caps = [
        SourceCapability(
            source=f"s{i}", mode=rng.choice(["kernel", "fallback", "off"]), reason=_text(rng, 0, 30)
        )
        for i in range(rng.randint(0, 5))
    ]
    return processes, events, caps


def _identity(rng: random.Random) -> Identity:
    return Identity(
        collector_id=f"node-{rng.randrange(10**6)}",
        host=_text(rng, 1, 20),
        producer_epoch=f"{rng.getrandbits(64):016x}-ab",
        labels={"cluster": _text(rng, 0, 10), "a": "b"},
    )


def _both_ways(parts: BatchParts) -> tuple[bytes, bytes]:
    """(models path, rows path) JSON bodies of one batch."""
    _, via_models = _wire.encode(parts.batch(), "json")
    _, via_rows = _wire.encode_rows(parts.header, parts.rows, "json")
    return via_models, via_rows


@pytest.mark.parametrize("seed", range(25))
def test_rows_give_the_same_json_bytes_and_digest_as_models(seed: int) -> None:
    rng = random.Random(seed)
    processes, events, caps = _header_parts(rng)
    output = SourceOutput(
        processes=processes, events=events, rows=_rows(rng, rng.choice([0, 1, 7, 150]))
    )
    extra = _rows(rng, rng.randint(0, 3))
    parts = build_parts(
        _identity(rng), rng.randint(1, 2**40), rng.randint(0, 2**62), output, caps, extra
    )
    via_models, via_rows = _both_ways(parts)
    assert via_rows == via_models
    # The models path with full validation (not the collector's trusted constructor) too.
    validated = Batch.model_validate(parts.batch().model_dump())
    assert validated.model_dump_json().encode() == via_rows
    frame_models = decode_batch(via_models, _wire.JSON_CONTENT_TYPE)
    frame_rows = decode_batch(via_rows, _wire.JSON_CONTENT_TYPE)
    assert batch_digest(frame_rows) == batch_digest(frame_models)
    assert frame_rows.samples.num_rows == len(output.rows) + len(extra)


def test_a_changed_value_changes_the_bytes() -> None:
    # The comparison above can fail: one row's value moved by one ulp is seen.
    rng = random.Random(7)
    rows = _rows(rng, 20)
    parts = build_parts(_identity(rng), 1, 1, SourceOutput(rows=rows), [], [])
    ts, metric, entity, labels, value = rows[5]
    moved = [
        *rows[:5],
        (ts, metric, entity, labels, math.nextafter(float(value), math.inf)),
        *rows[6:],
    ]
    _, a = _wire.encode_rows(parts.header, rows)
    _, b = _wire.encode_rows(parts.header, moved)
    assert a != b


def test_rows_give_the_same_arrow_bytes() -> None:
    rng = random.Random(3)
    processes, events, caps = _header_parts(rng)
    output = SourceOutput(processes=processes, events=events, rows=_rows(rng, 40))
    parts = build_parts(_identity(rng), 5, 10, output, caps, [])
    assert _wire.encode_rows(parts.header, parts.rows, "arrow") == _wire.encode(
        parts.batch(), "arrow"
    )


def test_a_header_with_samples_is_refused() -> None:
    sample = Sample(ts_ns=1, metric="procs_running", entity="host", value=1.0)
    header = Batch(
        collector_id="c", host="h", producer_epoch="e", seq=1, sent_at_ns=1, samples=[sample]
    )
    with pytest.raises(ValueError, match="must not carry samples"):
        _wire.encode_rows(header, [])


def test_a_real_sample_gives_the_same_bytes_both_ways() -> None:
    options = SamplerOptions(process_every=1, inventory_every=1, disabled=frozenset({"scrape"}))
    with Sampler(options=options) as sampler:
        sampler.prime(time.time_ns())
        time.sleep(0.05)
        now = time.time_ns()
        output = sampler.sample(now)
        caps = sampler.capabilities()
    assert len(output.rows) > 20 and output.processes and output.inventory is not None
    for one in output.rows:
        assert len(one) == 5 and isinstance(one[3], dict), one
        assert type(one[4]) in (int, float) and math.isfinite(one[4]), one
    identity = Identity("node-1", "host-1", "0000000000000001-aa", {})
    parts = build_parts(identity, 1, now, output, caps, [])
    via_models, via_rows = _both_ways(parts)
    assert via_rows == via_models
    # Every row the sources made passes the contract's full validation unchanged.
    assert Batch.model_validate(parts.batch().model_dump()).model_dump_json().encode() == via_rows


def test_source_output_materialises_and_takes_models() -> None:
    made = Sample(
        ts_ns=5, metric="cpu_mode_ratio", entity="host", labels={"mode": "user"}, value=0.5
    )
    out = SourceOutput([made])
    out.add(Sample(ts_ns=6, metric="procs_running", entity="host", value=3))
    assert out.rows == [
        (5, "cpu_mode_ratio", "host", {"mode": "user"}, 0.5),
        (6, "procs_running", "host", {}, 3.0),
    ]
    assert out.samples == [made, Sample(ts_ns=6, metric="procs_running", entity="host", value=3.0)]
    # A materialised sample without labels gets its own dict, never the shared one.
    bare = SourceOutput(rows=[(1, "procs_running", "host", NO_LABELS, 2)])
    assert bare.samples[0].labels == {} and bare.samples[0].value == 2.0
    assert isinstance(bare.samples[0].value, float)


def test_the_daemon_builds_no_sample_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(
        None,
        {
            "state_dir": tmp_path / "state",
            "sources": {
                "enabled": ["cpu", "memory", "psi", "disk", "netlink", "tcp", "cgroup"],
                "disabled": ["kmsg", "ebpf"],
            },
        },
    )
    daemon = CollectorDaemon(settings, make_sampler(settings))

    def refuse(*args: object, **kwargs: object) -> Sample:
        raise AssertionError("a Sample model was built on the daemon's path")

    try:
        daemon.step()
        monkeypatch.setattr(_source, "sample", refuse)
        parts, _ = daemon.step()
        assert daemon.spool.stats().records == 2
    finally:
        daemon.close()
    monkeypatch.undo()
    # the second batch as spooled: every row, self-metrics included
    frame = decode_batch(*_last_body(tmp_path))
    assert frame.samples.num_rows == len(parts.rows) > 30
    assert frame.header.seq == parts.seq == 2


def _last_body(tmp_path: Path) -> tuple[bytes, str]:
    from sreagent.collector.spool import Spool

    spool = Spool(tmp_path / "state" / "spool")
    try:
        last = None
        while (record := spool.peek()) is not None:
            last = SpooledBatch.from_bytes(record.payload)
            spool.commit(record)
        assert last is not None
        return last.body, last.content_type
    finally:
        spool.close()
