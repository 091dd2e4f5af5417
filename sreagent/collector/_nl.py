"""A minimal netlink client: one request, the reply messages, their attributes.

pyroute2 decodes every attribute of every message into Python objects; on this machine that
costs 2-4 ms of CPU for an RTM_GETLINK dump of four links and about 6 ms for a sock_diag
dump of one socket, more than the whole fast-sample budget (docs/collector.md). The few
structures the collector needs are fixed ABI (include/uapi/linux/netlink.h, rtnetlink.h,
inet_diag.h, taskstats.h), so they are read here with ``struct`` over the raw replies and
checked against pyroute2 in the live tests.
"""

from __future__ import annotations

import select
import socket
import struct
from collections.abc import Callable, Iterator

NLMSG_HDR = struct.Struct("=IHHII")
"""nlmsghdr: length, type, flags, sequence, port id."""
NLA_HDR = struct.Struct("=HH")
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLA_TYPE_MASK = 0x3FFF
"""Attribute type without the NESTED/NET_BYTEORDER flag bits."""


class NetlinkError(OSError):
    """The kernel answered a request with an error code."""


def align4(n: int) -> int:
    return (n + 3) & ~3


def messages(data: bytes) -> Iterator[tuple[int, int, memoryview]]:
    """(type, sequence, payload) of each netlink message in a receive buffer."""
    view = memoryview(data)
    offset = 0
    while offset + NLMSG_HDR.size <= len(view):
        length, msg_type, _flags, seq, _pid = NLMSG_HDR.unpack_from(view, offset)
        if length < NLMSG_HDR.size or offset + length > len(view):
            break
        yield msg_type, seq, view[offset + NLMSG_HDR.size : offset + length]
        offset += align4(length)


def attributes(payload: memoryview | bytes, offset: int = 0) -> Iterator[tuple[int, memoryview]]:
    """(type, value) of each attribute from ``offset`` to the end of ``payload``."""
    view = memoryview(payload)
    while offset + NLA_HDR.size <= len(view):
        length, attr_type = NLA_HDR.unpack_from(view, offset)
        if length < NLA_HDR.size or offset + length > len(view):
            break
        yield attr_type & NLA_TYPE_MASK, view[offset + NLA_HDR.size : offset + length]
        offset += align4(length)


def error_code(payload: memoryview) -> int:
    """The (positive) errno of an NLMSG_ERROR payload; 0 is an acknowledgement."""
    (code,) = struct.unpack_from("=i", payload, 0)
    return -int(code)


class NetlinkSocket:
    """One netlink socket of a protocol, reused across requests."""

    def __init__(self, protocol: int, rcvbuf: int = 1 << 20) -> None:
        self._sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol
        )
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self._sock.bind((0, 0))
        # Non-blocking, and a 2 s wait only when the kernel has not answered yet: a kernel
        # that never answers must not hang the sampling loop. The kernel answers a request
        # while handling the send (and queues the next part of a dump while the previous one
        # is received), so the wait is almost never needed; a socket timeout instead would
        # make Python poll(2) before every send and receive (five extra syscalls a sample).
        self._sock.setblocking(False)
        self._timeout_s = 2.0
        self._seq = 0
        self._buf = bytearray(1 << 16)

    def request(self, msg_type: int, flags: int, body: bytes) -> list[tuple[int, memoryview]]:
        """Send one request; return (type, payload) of every reply message up to the end.

        A dump ends with NLMSG_DONE; a plain request with its single answer or an error.
        """
        self._seq += 1
        seq = self._seq
        header = NLMSG_HDR.pack(NLMSG_HDR.size + len(body), msg_type, NLM_F_REQUEST | flags, seq, 0)
        self._wait(select.POLLOUT, lambda: self._sock.send(header + body))
        replies: list[tuple[int, memoryview]] = []
        dump = bool(flags & NLM_F_DUMP)
        while True:
            size = self._wait(select.POLLIN, lambda: self._sock.recv_into(self._buf))
            data = bytes(self._buf[:size])
            for rtype, rseq, payload in messages(data):
                if rseq != seq:
                    continue  # the tail of an earlier request that timed out
                if rtype == NLMSG_DONE:
                    return replies
                if rtype == NLMSG_ERROR:
                    code = error_code(payload)
                    if code:
                        raise NetlinkError(code, f"netlink request type {msg_type}: errno {code}")
                    return replies
                replies.append((rtype, payload))
            if not dump and replies:
                return replies

    def _wait(self, event: int, call: Callable[[], int]) -> int:
        """``call()``, after waiting up to the timeout for ``event`` if it would block."""
        try:
            return call()
        except BlockingIOError:
            poller = select.poll()
            poller.register(self._sock, event)
            if not poller.poll(self._timeout_s * 1000):
                raise TimeoutError(f"netlink: no answer within {self._timeout_s} s") from None
            return call()

    def close(self) -> None:
        self._sock.close()
