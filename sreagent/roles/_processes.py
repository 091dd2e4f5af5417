"""The process rows of one pid, filtered once per view and shared by the roles that ask."""

from __future__ import annotations

import polars as pl

from sreagent.runtime._view import EvidenceView


def process_rows(view: EvidenceView, pid: int) -> pl.DataFrame:
    """``view.processes`` rows of ``pid``, in the view's order (time, then pid).

    The hypotheses (which cgroup a process ran in) and the planner (its unit) ask for the
    same pid's rows several times per chain; each filter of the whole frame costs about a
    millisecond. A pure function of the view, so the view's memo may keep it.
    """
    key = ("process_rows", pid)
    found = view.memo.get(key)
    if not isinstance(found, pl.DataFrame):
        procs = view.processes
        found = procs.filter(pl.col("pid") == pid)
        view.memo[key] = found
    return found
