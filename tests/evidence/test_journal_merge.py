"""merge_parts: the streaming merge behind journal compaction.

Two properties: the merged rows are exactly a stable sort by host of the sources taken in
order (the whole-table merge compaction did before), and the merge's Arrow memory does not
grow with the sources' size, only with their row-group size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sreagent.evidence.journal import (
    JOURNAL_TABLES,
    LAYOUT_KEY,
    _HostRuns,
    merge_parts,
    sort_by_host,
    write_parquet,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLES = JOURNAL_TABLES["samples"]


def samples_part(path: Path, *, rows: int, hosts: list[str], seed: int,
                 row_group_rows: int = 4096) -> Path:
    """A samples part file as the journal writes one: rows sorted by host (stably)."""
    rng = np.random.default_rng(seed)
    host_index = rng.integers(0, len(hosts), rows)
    table = pa.Table.from_arrays([
        pa.array([f"c{seed}/e1/{i // 50}" for i in range(rows)], pa.string()),
        pa.array([hosts[i] for i in host_index], pa.string()),
        pa.array(rng.integers(0, 2**62, rows), pa.int64()),
        pa.array([("cpu_utilisation_ratio", "memory_used_bytes")[i % 2] for i in range(rows)],
                 pa.string()),
        pa.array([f"cpu/{i % 64}" for i in range(rows)], pa.string()),
        pa.array([[("device", f"sd{i % 3}")] if i % 5 else [] for i in range(rows)],
                 SAMPLES.field("labels").type),
        pa.array(rng.random(rows), pa.float64()),
    ], schema=SAMPLES)
    write_parquet(path, sort_by_host(table), row_group_rows=row_group_rows)
    return path


def whole_table_merge(sources: list[Path]) -> pa.Table:
    """The oracle: what compaction wrote before, every source read and sorted at once."""
    return sort_by_host(pa.concat_tables([pq.read_table(p, schema=SAMPLES) for p in sources]))


@pytest.mark.parametrize("batch_rows", [1, 7, 4096])
def test_the_merge_equals_a_stable_sort_of_all_sources(tmp_path: Path, batch_rows: int) -> None:
    hosts = ["node-b", "edge/host 2", "node-a", "z", "ä-host"]
    sources = [
        samples_part(tmp_path / "p0.parquet", rows=900, hosts=hosts, seed=0, row_group_rows=64),
        samples_part(tmp_path / "p1.parquet", rows=1, hosts=hosts, seed=1),
        samples_part(tmp_path / "p2.parquet", rows=500, hosts=hosts[:2], seed=2,
                     row_group_rows=100),
        samples_part(tmp_path / "p3.parquet", rows=300, hosts=["node-a"], seed=3),  # layout 1
        samples_part(tmp_path / "p4.parquet", rows=0, hosts=hosts, seed=4),
    ]
    target = tmp_path / "merged.parquet"
    rows = merge_parts(sources, target, schema=SAMPLES, row_group_rows=256,
                       metadata={b"k": b"v"}, batch_rows=batch_rows)
    merged = pq.read_table(target)
    assert rows == merged.num_rows == 1701
    assert merged.equals(whole_table_merge(sources))
    file = pq.ParquetFile(target)
    assert max(file.metadata.row_group(i).num_rows
               for i in range(file.metadata.num_row_groups)) <= 256
    assert file.schema_arrow.metadata[b"k"] == b"v"
    assert file.schema_arrow.metadata[LAYOUT_KEY] == b"2"


def test_merging_only_empty_sources_writes_an_empty_file(tmp_path: Path) -> None:
    source = samples_part(tmp_path / "p.parquet", rows=0, hosts=["h"], seed=0)
    target = tmp_path / "merged.parquet"
    assert merge_parts([source], target, schema=SAMPLES) == 0
    assert pq.read_table(target).num_rows == 0


_PEAK = """
import json, sys
from pathlib import Path
import pyarrow as pa
import pyarrow.parquet as pq
from sreagent.evidence.journal import JOURNAL_TABLES, merge_parts, sort_by_host
sources, how = [Path(p) for p in sys.argv[2:]], sys.argv[1]
pool = pa.default_memory_pool()
before = pool.max_memory()
if how == "stream":
    merge_parts(sources, sources[0].with_name("out.parquet"),
                schema=JOURNAL_TABLES["samples"], row_group_rows=4096, batch_rows=1024)
else:
    table = sort_by_host(pa.concat_tables([pq.read_table(p) for p in sources]))
    pq.write_table(table, sources[0].with_name("out.parquet"), row_group_size=4096)
print(json.dumps(pool.max_memory() - before))
"""


def _peak_arrow_bytes(sources: list[Path], how: str) -> int:
    """The Arrow memory pool's peak during one merge, in a fresh process (the peak is per
    process and cannot be reset)."""
    done = subprocess.run([sys.executable, "-c", _PEAK, how, *map(str, sources)], cwd=REPO,
                          capture_output=True, text=True, check=True, timeout=300)
    return int(json.loads(done.stdout))


def test_the_merge_memory_is_bounded_by_row_groups_not_by_the_sources(tmp_path: Path) -> None:
    hosts = [f"node-{i:03d}" for i in range(20)]

    def sources(folder: str, rows: int) -> list[Path]:
        (tmp_path / folder).mkdir()
        return [samples_part(tmp_path / folder / f"p{i}.parquet", rows=rows, hosts=hosts,
                             seed=i, row_group_rows=4096) for i in range(8)]

    small, large = sources("small", 8_192), sources("large", 65_536)  # 8x the rows
    stream_small = _peak_arrow_bytes(small, "stream")
    stream_large = _peak_arrow_bytes(large, "stream")
    whole_large = _peak_arrow_bytes(large, "whole")
    # Same row groups, 8x the rows: the streaming merge's peak stays about the same...
    assert stream_large < 1.5 * stream_small, (stream_small, stream_large)
    # ...while holding the sources grows with them: the large merge held all of it.
    decoded = sum(pq.read_table(p).nbytes for p in large)
    assert whole_large > decoded
    assert stream_large < decoded / 4, (stream_large, decoded)


def test_small_sources_are_read_at_once_and_closed(tmp_path: Path) -> None:
    """A merge of many small files (the common compaction) keeps no reader open per file:
    each open reader holds a decompressor per column, which glibc keeps as heap."""
    hosts = ["a", "b"]
    small = [samples_part(tmp_path / f"s{i}.parquet", rows=50, hosts=hosts, seed=i)
             for i in range(20)]
    large = [samples_part(tmp_path / f"l{i}.parquet", rows=300, hosts=hosts, seed=i)
             for i in range(3)]
    before = len(os.listdir("/proc/self/fd"))
    cursors = [_HostRuns(p, SAMPLES, batch_rows=100) for p in small]
    assert len(os.listdir("/proc/self/fd")) == before
    cursors += [_HostRuns(p, SAMPLES, batch_rows=100) for p in large]
    assert len(os.listdir("/proc/self/fd")) == before + 3  # streamed: open until read
    assert [c.host for c in cursors] == ["a"] * 23
