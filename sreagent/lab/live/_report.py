"""The postmortem HTML of a live run, through ``sreagent report postmortem`` (issue 8).

Run as its own process, exactly the command an operator would type, so the lab depends only on
that command's interface; when it is not available (not built, or it failed) the run says so
and prints the command to run later, instead of failing the game day.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPORT_TIMEOUT_S = 300.0
"""papermill executes a notebook in a fresh kernel; slow on a loaded machine."""


def postmortem_command(package: Path, out: Path) -> list[str]:
    return ["sreagent", "report", "postmortem", str(package), "-o", str(out)]


def postmortem(package: Path, out: Path) -> tuple[str | None, str]:
    """Render the postmortem of ``package`` into ``out``: (path or None, what happened)."""
    argv = [sys.executable, "-m", "sreagent", *postmortem_command(package, out)[1:]]
    shown = " ".join(postmortem_command(package, out))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=REPORT_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, f"postmortem report: timed out after {REPORT_TIMEOUT_S:.0f} s; run: {shown}"
    if done.returncode == 0 and out.is_file():
        return str(out), f"postmortem report: {out}"
    reason = (done.stderr or done.stdout).strip().splitlines()
    why = reason[-1] if reason else f"exit code {done.returncode}"
    return None, f"postmortem report not rendered ({why}); run: {shown}"
