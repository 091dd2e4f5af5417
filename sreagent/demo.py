"""The demo behind ``make demo``: the longest path through sreagent that is built today.

Today it exercises the contracts and the evidence store end to end on built-in telemetry:
batches are encoded for the wire, decoded and validated as the controller would, written to
the Hive-partitioned journal, packed into an evidence package and verified. Later work grows
it into the live path (collector, controller, role chain, replay, report).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from rich.progress import Progress

from sreagent.evidence import Journal, JournalWriter, verify_package, write_package
from sreagent.telemetry import (
    Batch,
    Inventory,
    Sample,
    SourceCapability,
    decode_batch,
    encode_batch,
)

DEMO_START_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z: a fixed start keeps output stable


def demo_batches(seconds: int = 300, seed: int = 7) -> list[Batch]:
    """Built-in telemetry: one host, one batch per second, a CPU spike in the last third."""
    rng = np.random.default_rng(seed)
    batches = []
    for second in range(seconds):
        ts = DEMO_START_NS + second * 10**9
        busy = 0.25 + 0.05 * rng.standard_normal()
        if second >= 2 * seconds // 3:
            busy = 0.97 + 0.01 * rng.standard_normal()
        busy = float(min(max(busy, 0.0), 1.0))
        samples = [
            Sample(ts_ns=ts, metric="cpu_utilisation_ratio", entity="host", value=round(busy, 6)),
            Sample(ts_ns=ts, metric="procs_running", entity="host", value=float(1 + int(busy * 4))),
            Sample(
                ts_ns=ts,
                metric="memory_used_ratio",
                entity="host",
                value=round(0.4 + 0.01 * rng.standard_normal(), 6),
            ),
        ]
        batches.append(
            Batch(
                collector_id="demo-collector",
                host="demo-host",
                producer_epoch="demo-epoch",
                seq=second + 1,
                sent_at_ns=ts,
                samples=samples,
                capabilities=[
                    SourceCapability(
                        source="demo", mode="fallback", reason="built-in telemetry, no collector"
                    )
                ],
                inventory=Inventory(cpu_model="demo", cpu_count=2, memory_bytes=24 * 2**30),
            )
        )
    return batches


def run_demo(out: Path) -> dict[str, Path]:
    """Run the demo into ``out`` (replacing an earlier demo there) and return its outputs."""
    if out.exists():
        shutil.rmtree(out)
    journal_root = out / "journal"
    writer = JournalWriter(journal_root, writer_id="demo")
    batches = demo_batches()
    frames = []
    with Progress() as progress:
        task = progress.add_task("encode, validate, journal", total=len(batches))
        for batch in batches:
            frame = decode_batch(encode_batch(batch))
            writer.append(frame)
            frames.append(frame)
            progress.advance(task)
        writer.flush()
    package = out / "evidence" / "demo-run"
    write_package(package, run_id="demo-run", source="demo", config={"demo": True}, frames=frames)
    report = verify_package(package)
    rows = Journal(journal_root).read("samples").num_rows
    print(
        f"journal holds {rows} samples; package verified ({report.rows['samples.parquet']} "
        "samples). The role chain is not built yet, so the package holds no artifacts."
    )
    return {"journal": journal_root, "evidence package": package}
