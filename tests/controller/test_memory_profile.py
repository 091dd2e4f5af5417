"""The opt-in memory profile (``debug.memory_profile_dir``): off by default, and when on it
writes samples, tracemalloc growth naming the allocation site, and the journal's activity."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import pytest

from sreagent.controller.memprofile import (
    MemoryProfile,
    malloc_figures,
    resident_from_status,
    start_memory_profile,
)
from sreagent.controller.settings import Settings, load_settings
from sreagent.errors import BadInput
from tests.controller.helpers import (
    ARROW,
    auth,
    body,
    make_batch,
    make_settings,
    serve_in_thread,
    wait_for,
)


def test_it_is_off_by_default_and_bad_values_are_named() -> None:
    assert Settings().debug.memory_profile_dir is None
    assert start_memory_profile(Settings().debug) is None
    assert not tracemalloc.is_tracing()
    with pytest.raises(BadInput, match="memory_sample_interval_s"):
        load_settings(None, debug={"memory_sample_interval_s": 0})
    with pytest.raises(BadInput, match="memory_profil"):
        load_settings(None, debug={"memory_profiling": True})  # unknown key


def test_resident_figures_come_from_proc_status() -> None:
    figures = resident_from_status(Path("/proc/self/status").read_bytes())
    assert figures["rss"] > 10 * 2**20  # a Python process with pyarrow loaded
    assert 0 < figures["anon"] <= figures["rss"] and 0 < figures["file"] <= figures["rss"]
    assert resident_from_status(b"VmRSS:\t 2048 kB\nRssAnon:\t 1024 kB\nRssFile:\t 512 kB\n") == {
        "rss": 2 * 2**20, "anon": 2**20, "file": 2**19}
    with pytest.raises(ValueError, match="anon, file"):
        resident_from_status(b"VmRSS:\t 2048 kB\n")


def test_malloc_figures_see_a_large_allocation() -> None:
    before = malloc_figures()
    assert set(before) == {"in_use", "free_held", "heap", "mmapped"}
    block = bytearray(64 * 2**20)  # above glibc's mmap threshold
    during = malloc_figures()
    assert during["mmapped"] + during["in_use"] >= before["mmapped"] + before["in_use"] + 60 * 2**20
    del block


def test_a_snapshot_names_the_line_that_grew(tmp_path: Path) -> None:
    profile = MemoryProfile(tmp_path, sample_interval_s=3600, baseline_snapshot=1).start()
    try:
        assert tracemalloc.is_tracing()
        profile.snapshot()  # the baseline
        hoard = [bytearray(10_000) for _ in range(300)]  # the growth
        report = json.loads(profile.snapshot().read_text())
    finally:
        profile.stop()
    assert not tracemalloc.is_tracing()  # it stops what it started
    top = report["top_growth"][0]
    assert top["site"].endswith(f"{Path(__file__).name}:{_line_of('hoard = [')}")
    assert top["size_diff"] >= 300 * 10_000 and top["count_diff"] >= 300
    assert report["snapshot"] == 2 and report["baseline"] == 1
    assert len(hoard) == 300


def _line_of(text: str) -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.strip().startswith(text))


def test_the_controller_writes_samples_snapshots_and_journal_activity(tmp_path: Path) -> None:
    folder = tmp_path / "profile"
    settings = make_settings(
        tmp_path,
        journal={"compact_interval_s": 3600, "flush_interval_s": 0.2},
        debug={"memory_profile_dir": str(folder), "memory_sample_interval_s": 0.1,
               "memory_snapshot_interval_s": 0.5, "memory_baseline_snapshot": 1},
    )
    started = time.time()  # the activity log is per process: count only this test's
    with serve_in_thread(settings) as url:
        for seq in (1, 2, 3):
            response = httpx.post(f"{url}/api/v1/ingest/batches", content=body(make_batch(
                seq=seq, samples=40)), headers={**ARROW, **auth("ingest")}, timeout=30)
            assert response.status_code == 200, response.text
        wait_for(lambda: (folder / "snapshot-02.json").exists(), timeout=60,
                 what="two snapshots")
        wait_for(lambda: sum(a["batches"] for a in _flushes(folder, started)) >= 3,
                 timeout=60, what="the flushes in journal-activity.json")
    assert not tracemalloc.is_tracing()
    samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    assert len(samples) >= 3
    assert all(s["rss"] >= s["anon"] > 0 and s["traced"] > 0 for s in samples)
    assert [s["t"] for s in samples] == sorted(s["t"] for s in samples)
    flushes = _flushes(folder, started)
    assert sum(a["batches"] for a in flushes) == 3
    assert sum(a["rows"] for a in flushes) == 3 * 40
    assert all(a["seconds"] >= 0 for a in flushes)


def _flushes(folder: Path, since: float) -> list[dict[str, Any]]:
    path = folder / "journal-activity.json"
    activity = json.loads(path.read_text()) if path.exists() else []
    return [a for a in activity if a["kind"] == "flush" and a["wall"] >= since]
