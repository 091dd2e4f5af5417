"""One TCPDIAG_GETSOCK dump answers for IPv4 and IPv6 like the two per-family dumps."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from sreagent.collector import Roots
from sreagent.collector._sockdiag import LISTEN_ONLY, SockDiagSource, TcpSocket


@pytest.fixture
def listeners() -> Iterator[tuple[int, int]]:
    """A v4 and a v6 listener (backlogs 5 and 7) with one queued connection on the v6 one."""
    v4 = socket.socket(socket.AF_INET)
    v6 = socket.socket(socket.AF_INET6)
    client = socket.socket(socket.AF_INET6)
    try:
        v4.bind(("127.0.0.1", 0))
        v4.listen(5)
        v6.bind(("::1", 0))
        v6.listen(7)
        client.connect(v6.getsockname()[:2])  # completes in the kernel, waits in the queue
        yield v4.getsockname()[1], v6.getsockname()[1]
    finally:
        for sock in (client, v4, v6):
            sock.close()


def _by_port(sockets: list[TcpSocket]) -> dict[int, TcpSocket]:
    return {s.local_port: s for s in sockets}


def test_the_single_dump_holds_both_families_as_the_per_family_dumps_do(
    listeners: tuple[int, int],
) -> None:
    v4_port, v6_port = listeners
    single = SockDiagSource(Roots())
    per_family = SockDiagSource(Roots())
    try:
        assert single._compat, single.capability().reason
        assert "one dump for IPv4 and IPv6" in single.capability().reason
        per_family._compat = False  # what a kernel refusing TCPDIAG_GETSOCK gets
        got = _by_port(single.sockets(LISTEN_ONLY))
        want = _by_port(per_family.sockets(LISTEN_ONLY))
    finally:
        single.close()
        per_family.close()
    assert got[v4_port] == TcpSocket(10, v4_port, 0, 5)
    assert got[v6_port] == TcpSocket(10, v6_port, 1, 7)
    # the ports of this test are stable between the two dumps; other listeners may come and go
    assert got[v4_port] == want[v4_port] and got[v6_port] == want[v6_port]
