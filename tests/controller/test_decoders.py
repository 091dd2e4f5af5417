"""Decode workers answer exactly what in-process decoding answers, survive a killed worker,
and the series keys digest they send lets hot state skip grouping without changing what it
holds."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from sreagent.controller.decoders import DecodePool
from sreagent.controller.errors import Overloaded
from sreagent.controller.hotstate import HotState, series_keys_digest
from sreagent.errors import SreagentError
from sreagent.telemetry import Batch, Sample, batch_digest, decode_batch, encode_batch
from sreagent.telemetry.arrow import BatchFrame
from sreagent.telemetry.wire import ARROW_CONTENT_TYPE, JSON_CONTENT_TYPE
from tests.controller.helpers import T0, make_batch

Run = Callable[[Callable[[DecodePool], Any]], Any]


@pytest.fixture
def with_pool() -> Run:
    """Run ``test(pool)`` on a fresh event loop with a two-worker pool."""

    def run(test: Callable[[DecodePool], Any]) -> Any:
        async def main() -> Any:
            pool = DecodePool(2)
            await pool.start()
            try:
                return await test(pool)
            finally:
                await pool.close()

        return asyncio.run(main())

    return run


def labelled_batch(seq: int, *, shuffle: bool = False) -> Batch:
    rng = np.random.default_rng(seq)
    samples = [
        Sample(ts_ns=T0 + seq * 10**9 - int(rng.integers(0, 5)), metric=metric, entity=entity,
               value=float(rng.random()), labels=labels)
        for metric in ("cpu_utilisation_ratio", "memory_used_bytes")
        for entity in ("host", "cpu/0", "cpu/1")
        for labels in ({}, {"mode": "user"}, {"mode": "system", "core": "0"})
        for _ in range(2)
    ]
    if shuffle:
        samples = [samples[i] for i in rng.permutation(len(samples))]
    return Batch(collector_id="c1", host="node-1", producer_epoch="e1", seq=seq,
                 sent_at_ns=T0 + seq * 10**9, samples=samples)


def assert_same_frame(got: BatchFrame, want: BatchFrame) -> None:
    assert got.header == want.header
    for name in ("samples", "processes", "events"):
        assert getattr(got, name).equals(getattr(want, name)), name


@pytest.mark.parametrize("content_type", [ARROW_CONTENT_TYPE, JSON_CONTENT_TYPE])
def test_worker_decodes_what_decode_batch_decodes(with_pool: Run, content_type: str) -> None:
    batches = [make_batch(seq=1, samples=50, events=3), labelled_batch(2, shuffle=True)]
    bodies = [encode_batch(b, content_type) for b in batches]

    async def test(pool: DecodePool) -> None:
        for body in bodies:
            frame, digest, keys_digest = await pool.decode(body, content_type, None)
            want = decode_batch(body, content_type)
            assert_same_frame(frame, want)
            assert digest == batch_digest(want)
            assert keys_digest is not None
            assert keys_digest == series_keys_digest(want.samples)
        assert pool.decoded == len(bodies)

    with_pool(test)


def bad_bodies() -> list[tuple[str, bytes, str, str | None]]:
    good = json.loads(encode_batch(make_batch(samples=3), JSON_CONTENT_TYPE))
    with_nan = json.loads(json.dumps(good))
    with_nan["samples"][1]["value"] = float("nan")
    nan = json.dumps(with_nan).encode()  # Python writes the NaN literal
    unknown = json.dumps({**good, "schema_version": "sreagent.batch/v9"}).encode()
    extra = json.dumps({**good, "surprise": 1}).encode()
    arrow = encode_batch(make_batch(samples=3), ARROW_CONTENT_TYPE)
    return [
        ("malformed json", b"{not json", JSON_CONTENT_TYPE, None),
        ("not arrow", b"\x00\x01garbage", ARROW_CONTENT_TYPE, None),
        ("wrong content type", arrow, "text/plain", None),
        ("unknown encoding", arrow, ARROW_CONTENT_TYPE, "br"),
        ("bad gzip", b"not gzip", ARROW_CONTENT_TYPE, "gzip"),
        ("nan", nan, JSON_CONTENT_TYPE, None),
        ("unknown schema version", unknown, JSON_CONTENT_TYPE, None),
        ("unknown field", extra, JSON_CONTENT_TYPE, None),
        ("invalid utf-8", b'{"a": "\xff"}', JSON_CONTENT_TYPE, None),
        ("gzip bomb", gzip.compress(b" " * (65 * 2**20), 1), JSON_CONTENT_TYPE, "gzip"),
    ]


@pytest.mark.parametrize("case", bad_bodies(), ids=lambda c: c[0])
def test_worker_refuses_with_the_same_error(with_pool: Run,
                                            case: tuple[str, bytes, str, str | None]) -> None:
    _, body, content_type, encoding = case
    with pytest.raises(SreagentError) as local:
        decode_batch(body, content_type, encoding)

    async def test(pool: DecodePool) -> None:
        with pytest.raises(SreagentError) as remote:
            await pool.decode(body, content_type, encoding)
        assert type(remote.value) is type(local.value)
        assert remote.value.to_dict() == local.value.to_dict()
        # the worker is still there and decodes the next body
        frame, _, _ = await pool.decode(encode_batch(make_batch(), ARROW_CONTENT_TYPE),
                                        ARROW_CONTENT_TYPE, None)
        assert frame.samples.num_rows == 10

    with_pool(test)


def test_a_killed_worker_fails_its_requests_with_503_and_is_replaced(with_pool: Run) -> None:
    body = encode_batch(make_batch(samples=2000), ARROW_CONTENT_TYPE)

    async def test(pool: DecodePool) -> None:
        victim = pool.stats()["pids"][0]
        # Fill both workers' queues, then kill one: its requests fail, the other's succeed.
        tasks = [asyncio.ensure_future(pool.decode(body, ARROW_CONTENT_TYPE, None))
                 for _ in range(40)]
        await asyncio.sleep(0)
        os.kill(victim, signal.SIGKILL)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        assert failed, "the killed worker had requests in flight"
        assert all(isinstance(r, Overloaded) for r in failed), failed
        assert len(failed) < len(results)
        for _ in range(200):  # the replacement starts in the background
            if pool.restarts == 1 and victim not in pool.stats()["pids"]:
                break
            await asyncio.sleep(0.05)
        assert pool.restarts == 1
        assert victim not in pool.stats()["pids"]
        for _ in range(4):  # both workers decode again
            frame, _, _ = await pool.decode(body, ARROW_CONTENT_TYPE, None)
            assert frame.samples.num_rows == 2000

    with_pool(test)


def test_close_stops_every_worker() -> None:
    async def main() -> list[int]:
        pool = DecodePool(2)
        await pool.start()
        pids = pool.stats()["pids"]
        await pool.close()
        with pytest.raises(Overloaded):
            await pool.decode(b"", ARROW_CONTENT_TYPE, None)
        return pids

    for pid in asyncio.run(main()):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def series_of(state: HotState) -> dict[Any, tuple[list[int], list[float]]]:
    out = {}
    for row in state.window("node-1", 0, 2**63 - 1):
        key = (row["metric"], row["entity"], tuple(sorted(row["labels"].items())))
        out[key] = (row["ts_ns"].tolist(), row["values"].tolist())
    return out


def test_hot_state_with_keys_digests_holds_what_it_holds_without() -> None:
    """Same batches into two hot states, one given each batch's series keys digest: same
    series, same rings; including repeated layouts (reused), a new series, reordered rows,
    and a series limit that drops some."""
    frames = []
    for seq in range(1, 11):
        batch = labelled_batch(seq, shuffle=seq in (3, 4))
        if seq >= 6:  # a new series appears: the layout changes, then repeats
            batch = batch.model_copy(update={"samples": [*batch.samples, Sample(
                ts_ns=T0 + seq * 10**9, metric="disk_await_seconds", entity="disk/sda",
                value=0.1)]})
        if seq in (1, 2):  # the same keys, different times and values: a reuse
            batch = labelled_batch(1).model_copy(update={"seq": seq})
        frames.append(decode_batch(encode_batch(batch, ARROW_CONTENT_TYPE), ARROW_CONTENT_TYPE))
    digests = [series_keys_digest(f.samples) for f in frames]
    assert digests[0] == digests[1] and digests[6] == digests[7] != digests[0]
    for limit in (1000, 10):
        plain = HotState(max_hosts=10, max_series_per_host=limit, samples_per_series=8,
                         events_per_host=10)
        keyed = HotState(max_hosts=10, max_series_per_host=limit, samples_per_series=8,
                         events_per_host=10)
        for frame, digest in zip(frames, digests, strict=True):
            plain.append(frame)
            keyed.append(frame, digest)
            assert series_of(keyed) == series_of(plain)
        assert keyed.stats() == plain.stats()
        assert series_of(plain)


def test_series_keys_digest_is_the_row_by_row_content() -> None:
    frame = decode_batch(encode_batch(labelled_batch(1), ARROW_CONTENT_TYPE), ARROW_CONTENT_TYPE)
    samples = frame.samples
    digest = series_keys_digest(samples)
    # the same content in other buffers: sliced, rechunked, re-encoded, other times/values
    assert series_keys_digest(pa.concat_tables([samples.slice(0, 7), samples.slice(7)])) == digest
    padded = pa.concat_tables([samples, samples]).combine_chunks().slice(len(samples))
    assert series_keys_digest(padded) == digest
    other_values = samples.set_column(samples.schema.get_field_index("value"), "value",
                                      pa.array([9.0] * len(samples)))
    assert series_keys_digest(other_values) == digest
    # any change to a key, or to the row order, changes it
    rows = samples.to_pylist()
    on_cpu0 = next(j for j, r in enumerate(rows) if r["entity"] == "cpu/0")
    user = next(j for j, r in enumerate(rows) if r["labels"] == [("mode", "user")])
    for i, change in ((0, {"metric": "memory_used_bytes"}), (5, {"entity": "cpu/9"}),
                      (on_cpu0, {"entity": "cpu/7"}),  # same length: the bytes count
                      (user, {"labels": [("mode", "idle")]}),
                      (user, {"labels": [("node", "user")]}),
                      (4, {"labels": [("mode", "idle")]}), (3, {"labels": []})):
        changed = [dict(r, **change) if j == i else r for j, r in enumerate(rows)]
        assert series_keys_digest(pa.Table.from_pylist(changed, samples.schema)) != digest
    swapped = [rows[1], rows[0], *rows[2:]]
    if (rows[0]["metric"], rows[0]["entity"], rows[0]["labels"]) != (
            rows[1]["metric"], rows[1]["entity"], rows[1]["labels"]):
        assert series_keys_digest(pa.Table.from_pylist(swapped, samples.schema)) != digest
    assert series_keys_digest(samples.slice(0, 0)) is None
