"""Evidence packages and the journal: round trips, verification, crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sreagent.canonical import canonical_digest, canonical_json
from sreagent.errors import CorruptFile, ManifestMismatch, SchemaVersionError
from sreagent.evidence import (
    ActivityRecord,
    EvidencePackage,
    Journal,
    JournalWriter,
    remove_stale_temporaries,
    verify_package,
    write_package,
)
from sreagent.telemetry import (
    Batch,
    Inventory,
    ProcessRow,
    Sample,
    SourceCapability,
    frame_from_batch,
)
from tests.test_artifacts import golden_chain

T0 = 1_767_225_600_000_000_000


def frames(host: str = "node-1", count: int = 5):  # type: ignore[no-untyped-def]
    out = []
    for seq in range(1, count + 1):
        ts = T0 + seq * 10**9
        out.append(frame_from_batch(Batch(
            collector_id=f"c-{host}"[:20].replace("/", "-").replace(" ", "-"), host=host,
            producer_epoch="e1", seq=seq, sent_at_ns=ts,
            samples=[Sample(ts_ns=ts, metric="cpu_utilisation_ratio", entity="host", value=seq / 10),
                     Sample(ts_ns=ts, metric="disk_await_seconds", entity="disk/sda",
                            labels={"kind": "hdd"}, value=0.01)],
            processes=[ProcessRow(ts_ns=ts, pid=42, ppid=1, comm="spin", cpu_ratio=0.9, fds=3)],
            capabilities=[SourceCapability(source="cpu", mode="kernel")],
            inventory=Inventory(cpu_count=2),
        )))
    return out


def make_package(path: Path) -> Path:
    write_package(
        path, run_id="run-1", source="lab", config={"analyzer": {"cpu_high": 0.9}},
        frames=frames(), artifacts=golden_chain(),
        activities=[ActivityRecord(activity_id="act-1", kind="execute_action", key="k",
                                   logical_time=T0, result={"exit_code": 0})],
    )
    return path


def test_package_round_trip(tmp_path: Path) -> None:
    package_dir = make_package(tmp_path / "pkg")
    report = verify_package(package_dir)
    assert report.rows == {"activities.parquet": 1, "artifacts.parquet": 8, "batches.parquet": 5,
                           "events.parquet": 0, "processes.parquet": 5, "samples.parquet": 10}
    package = EvidencePackage(package_dir)
    assert package.artifacts == golden_chain()
    assert package.activities[0].result == {"exit_code": 0}
    assert package.config == {"analyzer": {"cpu_high": 0.9}}
    samples = package.table("samples")
    assert samples.column("value").to_pylist()[::2] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert set(samples.column("batch_id").to_pylist()) == {f"c-node-1/e1/{i}" for i in range(1, 6)}
    assert package.manifest.window_start_ns == T0 + 10**9
    assert package.manifest.hosts == ["node-1"]


def test_same_inputs_give_the_same_bytes(tmp_path: Path) -> None:
    one, two = make_package(tmp_path / "one"), make_package(tmp_path / "two")
    assert (one / "manifest.json").read_bytes() == (two / "manifest.json").read_bytes()


def test_packages_are_written_once(tmp_path: Path) -> None:
    make_package(tmp_path / "pkg")
    with pytest.raises(Exception, match="written once"):
        make_package(tmp_path / "pkg")


def test_truncated_parquet_is_named(tmp_path: Path) -> None:
    package_dir = make_package(tmp_path / "pkg")
    victim = package_dir / "samples.parquet"
    victim.write_bytes(victim.read_bytes()[:-100])
    with pytest.raises(CorruptFile) as caught:
        verify_package(package_dir)
    assert caught.value.path == str(victim)
    assert "truncated" in caught.value.message


def test_edited_manifest_is_detected(tmp_path: Path) -> None:
    package_dir = make_package(tmp_path / "pkg")
    manifest = json.loads((package_dir / "manifest.json").read_bytes())
    manifest["files"]["samples.parquet"]["rows"] = 11
    (package_dir / "manifest.json").write_bytes(canonical_json(manifest))
    with pytest.raises(ManifestMismatch, match="edited"):
        verify_package(package_dir)


def test_edited_file_is_named_even_with_a_resigned_manifest(tmp_path: Path) -> None:
    package_dir = make_package(tmp_path / "pkg")
    table = pq.read_table(package_dir / "samples.parquet")
    pq.write_table(table.slice(1), package_dir / "samples.parquet")
    with pytest.raises(ManifestMismatch) as caught:
        verify_package(package_dir)
    assert caught.value.path == str(package_dir / "samples.parquet")
    # An attacker who also fixes the manifest's entry and self-hash still fails on the artifacts.
    pkg2 = make_package(tmp_path / "pkg2")
    rows = pq.read_table(pkg2 / "artifacts.parquet").to_pylist()
    rows[2]["payload"] = rows[2]["payload"].replace("0.91", "0.99")
    import pyarrow as pa

    from sreagent.evidence.tables import ARTIFACTS_SCHEMA
    pq.write_table(pa.Table.from_pylist(rows, schema=ARTIFACTS_SCHEMA), pkg2 / "artifacts.parquet")
    manifest = json.loads((pkg2 / "manifest.json").read_bytes())
    data = (pkg2 / "artifacts.parquet").read_bytes()
    from sreagent.canonical import sha256_hex
    manifest["files"]["artifacts.parquet"].update(sha256=sha256_hex(data), bytes=len(data))
    del manifest["manifest_sha256"]
    manifest["manifest_sha256"] = canonical_digest(manifest)
    (pkg2 / "manifest.json").write_bytes(canonical_json(manifest))
    with pytest.raises(ManifestMismatch, match="does not match its id"):
        verify_package(pkg2)


def test_unknown_format_missing_and_unlisted_files(tmp_path: Path) -> None:
    package_dir = make_package(tmp_path / "pkg")
    (package_dir / "notes.txt").write_text("hello")
    with pytest.raises(ManifestMismatch, match="not listed"):
        verify_package(package_dir)
    (package_dir / "notes.txt").unlink()
    (package_dir / "events.parquet").unlink()
    with pytest.raises(ManifestMismatch, match="missing"):
        verify_package(package_dir)
    manifest = json.loads((package_dir / "manifest.json").read_bytes())
    manifest["format"] = "sreagent.evidence/v0"
    (package_dir / "manifest.json").write_bytes(canonical_json(manifest))
    with pytest.raises(SchemaVersionError):
        verify_package(package_dir)


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import pyarrow as pa
    from sreagent.evidence import atomic_write_parquet
    target = Path(sys.argv[1])
    table = pa.table({"x": list(range(400_000)), "y": [str(i) for i in range(400_000)]})
    print("ready", flush=True)
    while True:
        atomic_write_parquet(target, table)
    """
)


@pytest.mark.slow
def test_killing_a_writer_never_leaves_a_half_written_file(tmp_path: Path) -> None:
    target = tmp_path / "data.parquet"
    for attempt in range(5):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        if attempt == 0:  # one complete write first, however slow a loaded machine is
            deadline = time.monotonic() + 60
            while not target.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        time.sleep(0.2 + 0.13 * attempt)  # land the kill at different points of a write
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if target.exists():
            assert pq.read_table(target).num_rows == 400_000  # complete, never partial
        leftovers = [p for p in tmp_path.iterdir() if p.name != "data.parquet"]
        assert all(p.name.startswith(".tmp-") for p in leftovers)
        remove_stale_temporaries(tmp_path)
        assert [p.name for p in tmp_path.iterdir()] in ([], ["data.parquet"])
    assert target.exists()


@pytest.mark.slow
def test_killing_a_package_writer_leaves_no_verifiable_package(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        import sreagent.evidence.package as package
        real = package.atomic_write_bytes
        def slow(path, data):
            if path.name == "manifest.json":
                print("before-manifest", flush=True)
                time.sleep(60)
            real(path, data)
        package.atomic_write_bytes = slow
        from tests.test_evidence import make_package
        make_package(Path(sys.argv[1]))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "pkg")],
                            stdout=subprocess.PIPE, cwd=Path(__file__).parent.parent)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"before-manifest"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with pytest.raises(CorruptFile, match="no manifest"):
        verify_package(tmp_path / "pkg")


def test_journal_partitions_and_reads_back(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, writer_id="w1")
    for frame in frames("node-1") + frames("edge/host 2", count=2):
        writer.append(frame)
    assert writer.pending_batches == 7
    written = writer.flush()
    assert writer.pending_batches == 0
    assert all(p.exists() for p in written)
    journal = Journal(tmp_path)
    assert journal.hosts() == ["edge/host 2", "node-1"]
    assert (tmp_path / "samples" / "date=2026-01-01" / "hour=00").is_dir()  # layout 2
    assert journal.read("samples").num_rows == 14
    assert journal.read("samples", hosts=["node-1"]).num_rows == 10
    assert journal.read("batches", batch_ids=["c-node-1/e1/3"]).column("seq").to_pylist() == [3]
    lazy = journal.scan("processes").collect()
    assert lazy.height == 7 and set(lazy["comm"]) == {"spin"}
    assert writer.flush() == []  # nothing pending, nothing written
