"""Write a generated scenario: the batches as a journal (and optionally wire files) plus an
evidence package whose configuration carries the definition and the ground truth.

Layout of the output folder::

    <out>/journal/...                 Hive-partitioned journal, as the controller would keep it
    <out>/evidence/<run_id>/          evidence package (source "lab"), config.json["lab"]
    <out>/truth.json                  the resolved ground truth (canonical JSON)
    <out>/wire/<seq>.arrow            only with wire=True: each batch's Arrow IPC body
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from sreagent.canonical import canonical_json
from sreagent.errors import BadInput
from sreagent.evidence import JournalWriter, atomic_write_bytes, write_package
from sreagent.evidence.tables import BATCHES_SCHEMA, ROW_TABLES, batch_rows, with_identity
from sreagent.scenarios._emit import frame_to_wire
from sreagent.scenarios._generator import GeneratedScenario
from sreagent.telemetry.wire import batch_digest


@dataclass(frozen=True)
class GeneratedOutput:
    """Where :func:`write_generated` put things."""

    root: Path
    journal: Path
    package: Path
    truth: Path
    wire: Path | None


def write_generated(scenario: GeneratedScenario, out: Path | str, *,
                    wire: bool = False) -> GeneratedOutput:
    """Write ``scenario`` under ``out`` (which must not already hold a generated scenario)."""
    root = Path(out)
    package = root / "evidence" / scenario.run_id
    if (root / "truth.json").exists() or package.exists():
        raise BadInput("already holds a generated scenario; choose an empty folder",
                       path=str(root))
    digests = [batch_digest(f) for f in scenario.frames]
    journal = JournalWriter(root / "journal", writer_id="lab")
    for frame, digest in zip(scenario.frames, digests, strict=True):
        journal.append(frame, digest)
    journal.flush()
    tables = {
        "batches": pa.Table.from_pylist(
            [batch_rows(f, d) for f, d in zip(scenario.frames, digests, strict=True)],
            schema=BATCHES_SCHEMA),
        **{name: pa.concat_tables([with_identity(f, name) for f in scenario.frames])
           for name in ROW_TABLES},
    }
    first = scenario.truth.start_ns
    last = first + (scenario.truth.steps - 1) * scenario.truth.resolution_ns
    write_package(package, run_id=scenario.run_id, source="lab", config=scenario.config(),
                  tables=tables, window=(first, last))
    atomic_write_bytes(root / "truth.json", canonical_json(scenario.truth.to_dict()))
    wire_dir = None
    if wire:
        wire_dir = root / "wire"
        for frame in scenario.frames:
            atomic_write_bytes(wire_dir / f"{frame.header.seq:08d}.arrow", frame_to_wire(frame))
    return GeneratedOutput(root=root, journal=root / "journal", package=package,
                           truth=root / "truth.json", wire=wire_dir)
