"""JournalWriter.flush builds and writes a part file one row group at a time: the same rows
and row groups as building the whole table first, with less memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from sreagent.evidence import JournalWriter
from sreagent.evidence.journal import LAYOUT_KEY
from sreagent.evidence.tables import frames_to_tables
from sreagent.telemetry import ARROW_CONTENT_TYPE, Batch, Event, Sample, decode_batch, encode_batch
from sreagent.telemetry.arrow import BatchFrame

REPO = Path(__file__).resolve().parents[2]
T0 = 1_767_225_600_000_000_000


def _frames(collectors: int, batches: int, samples: int) -> list[BatchFrame]:
    frames = []
    for seq in range(1, batches + 1):
        for c in reversed(range(collectors)):  # arrival order is not host order
            batch = Batch(
                collector_id=f"c{c}", host=f"node-{c:03d}", producer_epoch="e1", seq=seq,
                sent_at_ns=T0 + seq * 10**9,
                samples=[Sample(ts_ns=T0 + seq * 10**9 - i, metric="cpu_utilisation_ratio",
                                entity=f"cpu/{i % 7}", value=i / 10) for i in range(samples)],
                events=[Event(ts_ns=T0 + seq * 10**9, kind="oom_kill", entity="process/1",
                              source="kmsg", severity="error")] if c % 2 else [])
            frames.append(decode_batch(encode_batch(batch, ARROW_CONTENT_TYPE),
                                       ARROW_CONTENT_TYPE))
    return frames


def test_a_flush_writes_the_rows_of_the_whole_table_in_row_groups(tmp_path: Path) -> None:
    frames = _frames(collectors=5, batches=7, samples=33)
    writer = JournalWriter(tmp_path, writer_id="w", row_group_rows=100)
    for frame in frames:
        writer.append(frame, "0" * 64)
    files = {p.parts[-4]: p for p in writer.flush()}
    ordered = sorted(frames, key=lambda f: (f.header.host, f.header.sent_at_ns))
    expected = frames_to_tables(ordered)
    for table in ("samples", "events"):
        written = pq.ParquetFile(files[table])
        assert written.read().equals(expected[table]), table
        sizes = [written.metadata.row_group(i).num_rows
                 for i in range(written.metadata.num_row_groups)]
        rows = expected[table].num_rows
        assert sizes == [100] * (rows // 100) + ([rows % 100] if rows % 100 else []), table
        assert written.schema_arrow.metadata[LAYOUT_KEY] == b"2"


_PEAK = """
import json, sys, tempfile
from pathlib import Path
import pyarrow as pa
from sreagent.evidence import JournalWriter
from tests.evidence.test_journal_flush import _frames
frames = _frames(collectors=20, batches=15, samples=500)
pool = pa.default_memory_pool()
floor = max(pool.max_memory(), pa.total_allocated_bytes())
writer = JournalWriter(Path(tempfile.mkdtemp()), writer_id="x", row_group_rows=int(sys.argv[1]))
for frame in frames:
    writer.append(frame, "0" * 64)
writer.flush()
print(json.dumps(pool.max_memory() - floor))
"""


def _extra_arrow_bytes(row_group_rows: int) -> int:
    """Arrow memory a flush of 150,000 sample rows needs beyond the frames it holds, in a
    fresh process (the pool's peak cannot be reset)."""
    done = subprocess.run([sys.executable, "-c", _PEAK, str(row_group_rows)], cwd=REPO,
                          capture_output=True, text=True, check=True, timeout=300)
    return int(json.loads(done.stdout))


def test_a_flush_needs_memory_for_a_row_group_not_for_the_whole_file() -> None:
    per_row_group = _extra_arrow_bytes(8_192)
    whole_file = _extra_arrow_bytes(10**9)  # one row group: the table built at once
    assert per_row_group < whole_file / 2, (per_row_group, whole_file)
