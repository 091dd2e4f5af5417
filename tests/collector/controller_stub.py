"""A small real ingest server for the collector's transport tests (run as a separate process).

It answers ``POST /api/v1/ingest/batches`` the way the controller's contract says: it decodes
the body with :func:`sreagent.telemetry.decode_batch`, deduplicates on (collector_id,
producer_epoch, seq) with the payload digest, and answers 200 ``{"status": "accepted" |
"duplicate", ...}``, 4xx ``{"error": {"code", "message", "field"}}`` for invalid input, 409 for
the same key with a different payload, 401 without the right token, 503 naming the leader in
follower mode. Misbehaviour for tests is switched on by flags (``--mismatch N``: echo a wrong
seq on the first N requests; ``--reject-seq S``: answer 422 for seq S).

Every request is appended to ``--log`` as one JSON line, so a test can prove "exactly once, in
order" from what the server really received. It prints ``listening <port>`` when ready.
"""

from __future__ import annotations

import argparse
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sreagent.errors import BadInput, LimitExceeded, UnsupportedEncoding
from sreagent.telemetry import batch_digest, decode_batch


class State:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.lock = threading.Lock()
        self.seen: dict[tuple[str, str, int], str] = {}
        self.requests = 0
        self.log = Path(args.log).open("a", buffering=1)  # noqa: SIM115 (lives as long as the server)

    def record(self, line: dict[str, Any]) -> None:
        self.log.write(json.dumps(line, sort_keys=True) + "\n")


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    args = state.args

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *a: Any) -> None:  # quiet
            pass

        def _answer(
            self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, code: str, message: str, field: str | None = None) -> None:
            self._answer(status, {"error": {"code": code, "message": message, "field": field}})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.requests += 1
                request_no = state.requests
            if self.path != "/api/v1/ingest/batches":
                self._error(404, "not_found", self.path)
                return
            if args.token and self.headers.get("Authorization") != f"Bearer {args.token}":
                state.record({"outcome": "unauthenticated"})
                self._error(401, "unauthenticated", "missing or unknown bearer token")
                return
            if args.follower:
                state.record({"outcome": "not_leader"})
                self._answer(
                    503,
                    {
                        "error": {
                            "code": "not_leader",
                            "message": "follower",
                            "field": None,
                            "leader": args.follower,
                        }
                    },
                )
                return
            try:
                frame = decode_batch(
                    body,
                    self.headers.get("Content-Type", ""),
                    self.headers.get("Content-Encoding"),
                )
            except LimitExceeded as err:
                self._error(413, err.code, err.message, err.field)
                return
            except UnsupportedEncoding as err:
                self._error(415, err.code, err.message, err.field)
                return
            except BadInput as err:
                self._error(422, err.code, err.message, err.field)
                return
            header = frame.header
            key = (header.collector_id, header.producer_epoch, header.seq)
            line: dict[str, Any] = {
                "collector_id": header.collector_id,
                "producer_epoch": header.producer_epoch,
                "seq": header.seq,
                "encoding": self.headers.get("Content-Encoding") or "identity",
                "samples": frame.samples.num_rows,
                "metrics": sorted(set(frame.samples.column("metric").to_pylist())),
            }
            if args.reject_seq is not None and header.seq == args.reject_seq:
                state.record({**line, "outcome": "rejected"})
                self._error(422, "bad_input", "this seq is refused by the test", "seq")
                return
            digest = batch_digest(frame)
            with state.lock:
                previous = state.seen.get(key)
                if previous is None:
                    state.seen[key] = digest
                    outcome = "accepted"
                elif previous == digest:
                    outcome = "duplicate"
                else:
                    outcome = "conflict"
            state.record({**line, "outcome": outcome})
            if outcome == "conflict":
                self._error(409, "batch_conflict", "same key, different payload", "seq")
                return
            seq = header.seq + 1000 if request_no <= args.mismatch else header.seq
            self._answer(
                200,
                {
                    "status": outcome,
                    "collector_id": header.collector_id,
                    "producer_epoch": header.producer_epoch,
                    "seq": seq,
                },
            )

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", required=True)
    parser.add_argument("--token")
    parser.add_argument("--follower", help="answer 503 naming this leader")
    parser.add_argument("--mismatch", type=int, default=0)
    parser.add_argument("--reject-seq", type=int)
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    parser.add_argument("--client-ca", help="require a client certificate signed by this CA")
    args = parser.parse_args()
    state = State(args)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(state))
    if args.certfile:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.certfile, args.keyfile)
        if args.client_ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(args.client_ca)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
