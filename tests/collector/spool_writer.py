"""A real writer process for the spool's crash tests (run as a script, killed with SIGKILL).

Appends records ``seq=<n>`` padded to a size given on the command line, with fsync after every
append, and prints ``<n>`` on stdout only after ``append`` returned, so the parent knows which
records were fully written and synced when it kills this process. With ``tear`` it writes half
of one more frame after the last record and waits to be killed.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

from sreagent.collector.spool import Spool, frame


def payload(seq: int, size: int) -> bytes:
    """A self-checking payload: its own digest at the end, so garbage cannot pass for one."""
    body = f"seq={seq};".encode().ljust(size, b"x")
    return body + hashlib.sha256(body).digest()


def main() -> None:
    directory, size, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    start = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    tear = len(sys.argv) > 5 and sys.argv[5] == "tear"
    spool = Spool(directory, max_bytes=1 << 30, fsync="always")
    for seq in range(start, start + count):
        spool.append(payload(seq, size))
        sys.stdout.write(f"{seq}\n")
        sys.stdout.flush()
    if tear:
        # Die in the middle of a write: put the first half of one more frame on disk, exactly
        # what an interrupted write() leaves, then wait for the parent's SIGKILL.
        segment = sorted(directory.glob("*.seg"))[-1]
        half = frame(payload(start + count, size), time.time_ns())
        fd = os.open(segment, os.O_WRONLY | os.O_APPEND)
        os.write(fd, half[: len(half) // 2])
        sys.stdout.write("torn\n")
        sys.stdout.flush()
        time.sleep(60)
    spool.close()


if __name__ == "__main__":
    main()
