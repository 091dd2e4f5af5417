"""The guardian: started by ``run_injection``, it waits for the owner process to exit and, if
the owner died without undoing (SIGKILL, OOM, power to the process cut), sweeps the run's tag.

``python -m sreagent.lab.live._guard --tag T --owner PID --state DIR --tmp DIR --max-wait S``
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import time
from pathlib import Path

from sreagent.lab.live._host import LabHost
from sreagent.lab.live._sweep import sweep, tag_is_live


def _wait_for_exit(pid: int, max_wait_s: float) -> None:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        select.select([fd], [], [], max_wait_s)
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sreagent-lab-guard")
    parser.add_argument("--tag", required=True)
    parser.add_argument("--owner", type=int, required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--tmp", type=Path, required=True)
    parser.add_argument("--max-wait", type=float, required=True)
    a = parser.parse_args(argv)
    host = LabHost(state=a.state, tmp=a.tmp)
    _wait_for_exit(a.owner, a.max_wait)
    # The owner is gone, or overran its bound by a minute: in both cases the fault must end.
    # A live lock with a live owner past the bound is left alone (the owner is still undoing).
    for _ in range(50):
        if not tag_is_live(host, a.tag):
            break
        time.sleep(0.1)
    if not tag_is_live(host, a.tag):
        sweep(host, tag=a.tag)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
