"""Compile and attach the BCC programs in a short-lived child, hand the descriptors over.

Importing BCC maps libbcc and LLVM into the process (about 73 MiB before any program, 170 MiB
once compiled, docs/benchmarks.md), and that memory stays for the life of the process. The
programs, their maps and their tracepoint attachments are kernel objects that live as long
as a descriptor refers to them, so a child process does the compile, load and attach, sends
the map descriptors and the tracepoints' perf-event descriptors to the daemon over a unix
socket (SCM_RIGHTS), and leaves with ``os._exit``: BCC's clean-up, which would detach the
tracepoints, never runs, and LLVM's memory goes with the child. The daemon then reads the
maps with bpf(2) and the ring buffer through mmap (``_bpfsys.py``).

Protocol (one SOCK_SEQPACKET socket pair): the daemon sends ``{"program", "used"}`` as
JSON; the child answers with one message, either ``{"error": text}`` or
``{"version", "headers", "maps": {name: [index, key_size, value_size]}, "ringbuf_pages",
"attachments": [tracepoint...]}`` with the descriptors attached in that order (maps first).

Run as ``python -m sreagent.collector._ebpf._loader <socket fd>``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import select
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

MAPS = ("counters", "events", "retrans", "transitions", "drops", "block_hist", "runq_hist")
"""The maps the daemon reads; the programs' private maps (request start times, wake-up
times) stay alive through the programs, which the attachments keep."""
MAX_MESSAGE = 1 << 20
LOAD_TIMEOUT_S = 300.0
"""A compile on a loaded two-core machine takes tens of seconds; a child that hangs longer
is killed and its stderr quoted."""


@dataclass
class Loaded:
    """What the child handed over; the daemon owns (and must close) every descriptor."""

    version: str
    headers: str
    maps: dict[str, tuple[int, int, int]]
    """name -> (descriptor, key size, value size)."""
    ringbuf_bytes: int
    attachments: list[int] = field(default_factory=list)
    """Perf-event descriptors of the attached tracepoints: closing them detaches."""

    def close(self) -> None:
        for fd in [*(m[0] for m in self.maps.values()), *self.attachments]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.maps = {}
        self.attachments = []


def load_in_child(program: str, used: list[str], *, timeout_s: float = LOAD_TIMEOUT_S) -> Loaded:
    """Compile, load and attach ``program`` in a child; RuntimeError with its exact error."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = None
    received: list[int] = []
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sreagent.collector._ebpf._loader", str(child.fileno())],
            pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        child.close()
        parent.sendall(json.dumps({"program": program, "used": used}).encode())
        deadline = time.monotonic() + timeout_s
        while True:
            ready, _, _ = select.select([parent], [], [], 1.0)
            if ready:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                break
        if not ready:
            raise RuntimeError(_child_failure(proc, "no answer from the loader"))
        data, received, _flags, _addr = socket.recv_fds(parent, MAX_MESSAGE, 64)
        if not data:
            raise RuntimeError(_child_failure(proc, "the loader closed without an answer"))
        reply = json.loads(data)
        if "error" in reply:
            raise RuntimeError(str(reply["error"]))
        names = list(reply["maps"])
        if len(received) != len(names) + len(reply["attachments"]):
            raise RuntimeError(
                f"the loader sent {len(received)} descriptors for {len(names)} maps and "
                f"{len(reply['attachments'])} attachments"
            )
        maps = {
            name: (received[i], int(reply["maps"][name][1]), int(reply["maps"][name][2]))
            for i, name in enumerate(names)
        }
        loaded = Loaded(
            version=str(reply["version"]),
            headers=str(reply["headers"]),
            maps=maps,
            ringbuf_bytes=int(reply["ringbuf_pages"]) * os.sysconf("SC_PAGE_SIZE"),
            attachments=received[len(names) :],
        )
        received = []
        return loaded
    finally:
        for fd in received:
            with contextlib.suppress(OSError):
                os.close(fd)
        parent.close()
        with contextlib.suppress(OSError):
            child.close()
        if proc is not None:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()


def _child_failure(proc: subprocess.Popen[bytes], what: str) -> str:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    tail = proc.stderr.read().decode("utf-8", "replace")[-600:].strip() if proc.stderr else ""
    return f"{what} (exit status {proc.returncode}){': ' + tail if tail else ''}"


def _serve(sock: socket.socket) -> None:
    """The child: compile, attach, answer, and leave without BCC's clean-up."""
    request = json.loads(sock.recv(MAX_MESSAGE))
    try:
        reply, fds = _load(request["program"], list(request["used"]))
    except Exception as err:  # every failure becomes the capability reason, word for word
        reply, fds = {"error": str(err) or type(err).__name__}, []
    socket.send_fds(sock, [json.dumps(reply).encode()], fds)


def _load(program: str, used: list[str]) -> tuple[dict[str, object], list[int]]:
    from sreagent.collector._ebpf._bcc import RINGBUF_PAGES, _captured_stderr, _header_env

    headers = _header_env(platform.release())
    try:
        import bcc
    except ImportError as err:
        raise RuntimeError(f"python3-bpfcc is not importable: {err}") from err
    failure: Exception | None = None
    with _captured_stderr() as errors:
        try:
            bpf = bcc.BPF(text=program.encode(), cflags=["-Wno-ignored-attributes", "-w"])
        except Exception as err:  # bcc raises bare Exception for compile and load errors
            failure = err
    if failure is not None:
        detail = "; ".join(errors[:3])
        raise RuntimeError(f"{failure}{': ' + detail if detail else ''} ({headers})")
    if "packet_drop" in used:
        bpf.attach_tracepoint(tp=b"skb:kfree_skb", fn_name=b"on_kfree_skb")
    maps: dict[str, list[int]] = {}
    fds: list[int] = []
    for name in MAPS:
        try:
            table = bpf[name.encode()]
        except KeyError:
            continue  # that probe was left out
        key_size = ctypes.sizeof(table.Key) if getattr(table, "Key", None) else 0
        value_size = ctypes.sizeof(table.Leaf) if getattr(table, "Leaf", None) else 0
        maps[name] = [len(fds), key_size, value_size]
        fds.append(table.map_fd)
    attachments = list(bpf.tracepoint_fds)
    fds.extend(bpf.tracepoint_fds[tp] for tp in attachments)
    reply: dict[str, object] = {
        "version": getattr(bcc, "__version__", "?"),
        "headers": headers,
        "maps": maps,
        "ringbuf_pages": RINGBUF_PAGES,
        "attachments": [tp.decode() for tp in attachments],
    }
    return reply, fds


def main(argv: list[str]) -> None:
    sock = socket.socket(fileno=int(argv[1]))
    try:
        _serve(sock)
    finally:
        sys.stderr.flush()
        # No atexit, no finalizers: BCC's clean-up would disable the tracepoints that the
        # daemon now holds, and the kernel closes the child's own copies of the descriptors.
        os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
