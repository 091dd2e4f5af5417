"""inotify(7) over ctypes: which watched directories changed since the last look.

The cgroup source re-walks its hierarchies only when something changed. A non-blocking read
of an inotify descriptor costs one syscall when nothing happened, where checking every
cgroup directory's ``st_nlink`` would cost one ``stat`` per directory and sample. cgroupfs
and other kernfs trees report ``mkdir``/``rmdir`` (IN_CREATE/IN_DELETE with IN_ISDIR) and
writes through ``write(2)`` (IN_MODIFY, with the file's name) to a watch on the parent
directory like any filesystem (fs/notify/fsnotify.c); the kernel's own updates of files
such as ``memory.events`` arrive as IN_MODIFY too (kernfs_notify), so callers filter by name.

The standard library has no inotify binding; the three libc calls are declared here.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import struct
from collections.abc import Iterator
from typing import NamedTuple

IN_MODIFY = 0x00000002
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

EVENT = struct.Struct("=iIII")
"""struct inotify_event: wd, mask, cookie, len; ``len`` bytes of NUL-padded name follow."""


class InotifyEvent(NamedTuple):
    wd: int
    mask: int
    name: bytes


def parse_events(raw: bytes) -> list[InotifyEvent]:
    """The events of one read of an inotify descriptor (a truncated tail is ignored)."""
    out = []
    offset = 0
    size = EVENT.size
    while offset + size <= len(raw):
        wd, mask, _cookie, length = EVENT.unpack_from(raw, offset)
        name_start = offset + size
        if name_start + length > len(raw):
            break
        out.append(InotifyEvent(wd, mask, raw[name_start : name_start + length].rstrip(b"\0")))
        offset = name_start + length
    return out


@functools.cache
def _libc() -> ctypes.CDLL:
    # Once per process: ``find_library`` runs ldconfig (and gcc where present) in
    # subprocesses, several ms of CPU and a fork, and the cgroup source creates a fresh
    # inotify instance at every walk.
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.inotify_add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
    return libc


class Inotify:
    """One non-blocking inotify instance. Raises OSError when the kernel refuses it."""

    def __init__(self) -> None:
        self._libc = _libc()
        fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd: int = fd

    def add_watch(self, path: str, mask: int) -> int:
        """The watch descriptor; OSError (ENOSPC: fs.inotify.max_user_watches) on failure."""
        wd = int(self._libc.inotify_add_watch(self.fd, os.fsencode(path), mask))
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_add_watch {path}: {os.strerror(err)}", path)
        return wd

    def pending(self) -> Iterator[InotifyEvent]:
        """Every event queued since the last call; nothing (one EAGAIN read) when idle."""
        while True:
            try:
                raw = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                return
            if not raw:
                return
            yield from parse_events(raw)

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1
