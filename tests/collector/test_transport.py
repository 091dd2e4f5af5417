"""Transport and sender against a real ingest server process on 127.0.0.1."""

from __future__ import annotations

import base64
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from sreagent.collector.spool import HEADER_BYTES, Spool
from sreagent.collector.transport import (
    BatchKey,
    DeadLetters,
    Sender,
    SpooledBatch,
    Transport,
    backoff_delay,
    normalise_endpoint,
)
from sreagent.errors import BadInput, CorruptFile
from sreagent.telemetry import decode_batch, encode_batch
from tests.collector.stubs import (
    free_port,
    make_batch,
    spool_batch,
    start_stub,
    stub_server,
    wait_until,
)


def sender_for(tmp_path: Path, spool: Spool, endpoints: list[str], **kwargs: object) -> Sender:
    transport_kwargs = {
        k: kwargs.pop(k)
        for k in list(kwargs)
        if k in ("token", "compression", "ca_file", "client_cert", "client_key", "timeout_s")
    }
    transport = Transport(endpoints, timeout_s=5.0, **transport_kwargs)  # type: ignore[arg-type]
    return Sender(
        spool,
        transport,
        DeadLetters(tmp_path / "dead-letter.jsonl"),
        backoff_initial_s=0.01,
        backoff_max_s=0.2,
        **kwargs,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- pure helpers


def test_envelope_round_trips_and_refuses_garbage() -> None:
    key = BatchKey("c1", "e1", 7)
    packed = SpooledBatch(key, "application/json", b"{}").to_bytes()
    assert SpooledBatch.from_bytes(packed) == SpooledBatch(key, "application/json", b"{}")
    with pytest.raises(CorruptFile):
        SpooledBatch.from_bytes(b"not an envelope at all")


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap() -> None:
    ceilings = [backoff_delay(n, 0.5, 30.0, uniform=lambda lo, hi: hi) for n in range(8)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff_delay(3, 0.5, 30.0, uniform=lambda lo, hi: lo) == 0.0
    assert backoff_delay(10_000, 0.5, 30.0, uniform=lambda lo, hi: hi) == 30.0


def test_endpoints_are_normalised_and_bad_ones_named() -> None:
    assert normalise_endpoint("ctl:8080") == "http://ctl:8080"
    assert normalise_endpoint("https://ctl:8443/") == "https://ctl:8443"
    with pytest.raises(BadInput, match="ftp://x"):
        normalise_endpoint("ftp://x")
    with pytest.raises(BadInput, match="no controller endpoint"):
        Transport([])


# --------------------------------------------------------------------------- delivery


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_batches_are_delivered_in_order_exactly_once(tmp_path: Path, compression: str) -> None:
    with stub_server(tmp_path / "server.jsonl") as server, Spool(tmp_path / "spool") as spool:
        for seq in range(1, 6):
            spool_batch(spool, seq, value=float(seq))
        sender = sender_for(tmp_path, spool, [server.url], compression=compression)
        assert sender.drain() is None
        assert spool.peek() is None
        requests = server.requests()
        assert [r["seq"] for r in requests] == [1, 2, 3, 4, 5]
        assert all(r["outcome"] == "accepted" for r in requests)
        assert {r["encoding"] for r in requests} == {
            "identity" if compression == "none" else compression
        }
        assert sender.transport.counters.delivered_total == 5


def test_a_duplicate_acknowledgement_counts_as_delivered(tmp_path: Path) -> None:
    with stub_server(tmp_path / "server.jsonl") as server, Spool(tmp_path / "spool") as spool:
        spool_batch(spool, 1)
        spool_batch(spool, 1)  # a resend after a crash between ack and cursor write
        spool_batch(spool, 2)
        sender = sender_for(tmp_path, spool, [server.url])
        assert sender.drain() is None
        assert [r["outcome"] for r in server.requests()] == ["accepted", "duplicate", "accepted"]
        assert sender.transport.counters.duplicate_total == 1
        assert not (tmp_path / "dead-letter.jsonl").exists()


def test_an_invalid_batch_goes_to_the_dead_letter_file_and_the_head_moves_on(
    tmp_path: Path,
) -> None:
    with (
        stub_server(tmp_path / "server.jsonl", "--reject-seq", "2") as server,
        Spool(tmp_path / "spool") as spool,
    ):
        for seq in (1, 2, 3):
            spool_batch(spool, seq)
        sender = sender_for(tmp_path, spool, [server.url])
        assert sender.drain() is None
        assert server.accepted_seqs() == [1, 3]
        (letter,) = sender.dead_letters.read()
        assert letter["seq"] == 2 and letter["status"] == 422
        assert "refused by the test" in letter["reason"] and "field seq" in letter["reason"]
        body = base64.b64decode(letter["body_b64"])
        assert decode_batch(body).header.seq == 2, "the refused batch is kept whole"
        assert sender.transport.counters.dead_letter_total == 1


def test_same_key_different_payload_is_dead_lettered_as_a_conflict(tmp_path: Path) -> None:
    with stub_server(tmp_path / "server.jsonl") as server, Spool(tmp_path / "spool") as spool:
        spool_batch(spool, 1, value=1.0)
        spool_batch(spool, 1, value=2.0)
        spool_batch(spool, 2)
        sender = sender_for(tmp_path, spool, [server.url])
        assert sender.drain() is None
        assert [r["outcome"] for r in server.requests()] == ["accepted", "conflict", "accepted"]
        (letter,) = sender.dead_letters.read()
        assert letter["status"] == 409 and "batch_conflict" in letter["reason"]


def test_mismatched_acks_are_retried_and_counted_then_delivered(tmp_path: Path) -> None:
    with (
        stub_server(tmp_path / "server.jsonl", "--mismatch", "2") as server,
        Spool(tmp_path / "spool") as spool,
    ):
        spool_batch(spool, 1)
        spool_batch(spool, 2)
        sender = sender_for(tmp_path, spool, [server.url], max_ack_mismatches=5)
        waits = 0
        while sender.drain() is not None:
            waits += 1
            assert waits < 10
        assert waits == 2
        assert sender.transport.counters.ack_mismatch_total == 2
        assert spool.peek() is None
        assert [r["outcome"] for r in server.requests()] == [
            "accepted",
            "duplicate",
            "duplicate",
            "accepted",
        ]


def test_a_controller_that_never_acks_correctly_cannot_block_the_head(tmp_path: Path) -> None:
    with (
        stub_server(tmp_path / "server.jsonl", "--mismatch", "1000") as server,
        Spool(tmp_path / "spool") as spool,
    ):
        for seq in (1, 2):
            spool_batch(spool, seq)
        sender = sender_for(tmp_path, spool, [server.url], max_ack_mismatches=3)
        rounds = 0
        while sender.drain() is not None:
            rounds += 1
            assert rounds < 20
        assert spool.peek() is None
        letters = sender.dead_letters.read()
        assert [letter["seq"] for letter in letters] == [1, 2]
        assert all("mismatched acknowledgements" in letter["reason"] for letter in letters)
        assert sender.transport.counters.ack_mismatch_total == 6


def test_a_bad_token_is_retried_not_dead_lettered(tmp_path: Path) -> None:
    with (
        stub_server(tmp_path / "server.jsonl", "--token", "s3cret") as server,
        Spool(tmp_path / "spool") as spool,
    ):
        spool_batch(spool, 1)
        wrong = sender_for(tmp_path, spool, [server.url], token="nope")
        assert wrong.drain() is not None
        assert wrong.state.last_result is not None
        assert wrong.state.last_result.status_code == 401
        assert spool.peek() is not None and not wrong.dead_letters.read()
        right = sender_for(tmp_path, spool, [server.url], token="s3cret")
        assert right.drain() is None
        assert server.accepted_seqs() == [1]


def test_failover_to_the_next_endpoint_and_to_the_leader_a_follower_names(
    tmp_path: Path,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with (
        stub_server(tmp_path / "leader.jsonl") as leader,
        stub_server(
            tmp_path / "follower.jsonl", "--follower", f"127.0.0.1:{leader.port}"
        ) as follower,
        Spool(tmp_path / "spool") as spool,
    ):
        for seq in (1, 2, 3):
            spool_batch(spool, seq)
        sender = sender_for(tmp_path, spool, [dead, follower.url])
        assert sender.drain() is None
        assert leader.accepted_seqs() == [1, 2, 3]
        # the follower is asked once; the leader it named is used directly afterwards
        assert [r["outcome"] for r in follower.requests()] == ["not_leader"]
        counters = sender.transport.counters
        assert counters.failovers_total >= 2 and counters.errors_total >= 2
        # the endpoint that answered is preferred next time: no more tries of the dead one
        assert counters.last_endpoint == leader.url


@pytest.mark.slow
def test_controller_down_then_up_delivers_everything_once_in_order_and_counts_drops(
    tmp_path: Path,
) -> None:
    port = free_port()
    sample = SpooledBatch(BatchKey("c1", "e1", 1), "x", encode_batch(make_batch(1))).to_bytes()
    record_bytes = HEADER_BYTES + len(sample)
    # room for 12 records, dropped three at a time
    spool = Spool(tmp_path / "spool", max_bytes=12 * record_bytes, segment_bytes=3 * record_bytes)
    sender = sender_for(tmp_path, spool, [f"http://127.0.0.1:{port}"])
    stop = threading.Event()
    thread = threading.Thread(target=sender.run, args=(stop,), daemon=True)
    thread.start()
    try:
        appended = 30
        for seq in range(1, appended + 1):  # the controller is down the whole time
            spool_batch(spool, seq)
            sender.wake()
        assert sender.transport.counters.errors_total > 0
        held = spool.stats().records
        dropped = spool.stats().dropped_total
        assert held + dropped == appended and dropped > 0
        server = start_stub(tmp_path / "server.jsonl", port=port)
        try:
            assert wait_until(lambda: spool.stats().records == 0)
            for seq in range(appended + 1, appended + 6):  # and new ones keep flowing
                spool_batch(spool, seq)
                sender.wake()
            assert wait_until(lambda: len(server.accepted_seqs()) == held + 5)
            accepted = server.accepted_seqs()
            assert accepted == list(range(dropped + 1, appended + 6)), "once, in order"
            assert spool.stats().dropped_total == dropped
            assert all(r["outcome"] == "accepted" for r in server.requests())
        finally:
            server.stop()
    finally:
        stop.set()
        sender.wake()
        thread.join(timeout=10)
        spool.close()


# --------------------------------------------------------------------------- TLS


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_pki(directory: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, with openssl."""
    directory.mkdir()
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=directory,
    )
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=directory,
        )
        extra = ["-extfile", "san.ext"] if name == "server" else []
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            f"{name}.pem",
            *extra,
            cwd=directory,
        )


@pytest.mark.slow
def test_mutual_tls_with_a_ca_file_and_a_client_certificate(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    pki = tmp_path / "pki"
    _make_pki(pki)
    tls_args = (
        "--certfile",
        str(pki / "server.pem"),
        "--keyfile",
        str(pki / "server.key"),
        "--client-ca",
        str(pki / "ca.pem"),
    )
    with (
        stub_server(tmp_path / "server.jsonl", *tls_args, scheme="https") as server,
        Spool(tmp_path / "spool") as spool,
    ):
        spool_batch(spool, 1)
        no_client_cert = sender_for(tmp_path, spool, [server.url], ca_file=pki / "ca.pem")
        assert no_client_cert.drain() is not None, "the server demands a client certificate"
        untrusted = sender_for(tmp_path, spool, [server.url])  # system CAs only
        assert untrusted.drain() is not None
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.transport.counters.last_error
        mtls = sender_for(
            tmp_path,
            spool,
            [server.url],
            ca_file=pki / "ca.pem",
            client_cert=pki / "client.pem",
            client_key=pki / "client.key",
        )
        assert mtls.drain() is None
        assert server.accepted_seqs() == [1]


def test_unreadable_tls_material_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="TLS material"):
        Transport(["https://127.0.0.1:1"], ca_file=tmp_path / "missing.pem")
