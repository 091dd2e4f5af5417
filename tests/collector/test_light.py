"""What keeps the collector light: the JSON encoding, no pyarrow/polars in the daemon, the
light entry point, and the process scan's kept descriptors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sreagent.collector import Roots
from sreagent.collector._procs import PidFiles, ProcessSource
from sreagent.collector._wire import ARROW_CONTENT_TYPE, JSON_CONTENT_TYPE, encode
from sreagent.errors import BadInput
from sreagent.telemetry import Batch, Inventory, Sample, batch_digest, decode_batch, wire
from tests.conftest import REPO


def _batch() -> Batch:
    return Batch(
        collector_id="c1",
        host="h1",
        producer_epoch="e1",
        seq=3,
        sent_at_ns=1_800_000_000_000_000_000,
        labels={"cluster": "a"},
        samples=[
            Sample(
                ts_ns=1, metric="cpu_mode_ratio", entity="host", value=0.25, labels={"mode": "user"}
            ),
            Sample(ts_ns=1, metric="load_average_1m", entity="host", value=1e-7),
        ],
        inventory=Inventory(cpu_model="x", cpu_count=4, cpu_sockets=1, cpu_cores=2, numa_nodes=1),
    )


def test_content_types_are_the_contracts() -> None:
    assert (JSON_CONTENT_TYPE, ARROW_CONTENT_TYPE) == (
        wire.JSON_CONTENT_TYPE,
        wire.ARROW_CONTENT_TYPE,
    )


def test_json_and_arrow_carry_the_same_batch() -> None:
    batch = _batch()
    json_type, json_body = encode(batch, "json")
    arrow_type, arrow_body = encode(batch, "arrow")
    assert (json_type, arrow_type) == (JSON_CONTENT_TYPE, ARROW_CONTENT_TYPE)
    from_json = decode_batch(json_body, json_type)
    from_arrow = decode_batch(arrow_body, arrow_type)
    assert batch_digest(from_json) == batch_digest(from_arrow)
    assert from_json.header.inventory == batch.inventory  # topology survives both
    assert from_arrow.header.inventory == batch.inventory
    assert from_json.samples.column("value").to_pylist() == [0.25, 1e-7]


def test_an_unknown_encoding_is_named() -> None:
    with pytest.raises(BadInput, match="'msgpack'") as caught:
        encode(_batch(), "msgpack")  # type: ignore[arg-type]
    assert caught.value.field == "transport.encoding"


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_the_daemon_and_its_entry_point_import_neither_pyarrow_nor_polars() -> None:
    done = _run_python(
        "import sys, json\n"
        "import sreagent.collector.daemon, sreagent.collector.__main__\n"
        "import sreagent.collector._kmsg, sreagent.collector._ebpf\n"
        "print(json.dumps(sorted(m for m in ('pyarrow', 'polars', 'numpy') if m in sys.modules)))"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_the_light_entry_point_is_sreagent_collect(tmp_path: Path) -> None:
    # The same command: capabilities as JSON, and a usage error exits 2, without ever loading
    # pyarrow (the sampler and every source run).
    done = _run_python(
        "import sys, json\n"
        "from sreagent.collector.__main__ import main\n"
        f"rc = main(['capabilities', '--json', '--state-dir', {str(tmp_path)!r}])\n"
        "print('RESULT', rc, 'pyarrow' in sys.modules)\n"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout[: done.stdout.rindex("RESULT")])
    assert {s["source"] for s in report["sources"]} >= {"cpu", "memory", "processes"}
    assert done.stdout.rsplit("RESULT", 1)[1].split() == ["0", "False"]
    bad = subprocess.run(
        [sys.executable, "-m", "sreagent.collector", "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**os.environ, "SREAGENT_COLLECTOR_STATE_DIR": str(tmp_path)},
    )
    assert bad.returncode == 2, bad.stderr
    assert "--json goes with --once" in bad.stderr


def test_sreagent_collect_loads_no_other_command_group(tmp_path: Path) -> None:
    # `sreagent collect` is the same light process as the entry point: the other command
    # groups (which import polars and pyarrow) are not registered for it.
    done = _run_python(
        "import sys\n"
        "from sreagent.cli import _main\n"
        f"rc = _main(['collect', 'capabilities', '--json', '--state-dir', {str(tmp_path)!r}])\n"
        "print('RESULT', rc, *(m in sys.modules for m in ('pyarrow', 'polars')))\n"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout[: done.stdout.rindex("RESULT")])["sources"]
    assert done.stdout.rsplit("RESULT", 1)[1].split() == ["0", "False", "False"]


def _open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


def _wait_until(check, timeout_s: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_kept_descriptors_follow_the_process_not_the_number() -> None:
    child = subprocess.Popen(["sleep", "600"])
    files = PidFiles("/proc", max_processes=10)
    try:
        before = _open_fds()
        got = files.read(child.pid)
        assert got is not None
        raw, _, _ = got
        assert raw.startswith(f"{child.pid} (sleep)".encode())
        assert len(_open_fds() - before) == 2  # stat and io kept
        again = files.read(child.pid)  # pread at 0 re-reads the live file
        assert again is not None and again[0].split()[:3] == raw.split()[:3]
        child.kill()
        child.wait()
        # Reaped: the kept descriptor answers ESRCH and nothing is returned for the number,
        # which is reopened by path (gone); the descriptors are closed.
        assert _wait_until(lambda: files.read(child.pid) is None)
        assert _open_fds() == before
    finally:
        child.kill()
        child.wait()
        files.close()


def test_beyond_the_limit_files_are_read_and_closed() -> None:
    files = PidFiles("/proc", max_processes=0)
    before = _open_fds()
    got = files.read(os.getpid())
    assert got is not None and got[0].startswith(f"{os.getpid()} (".encode())
    assert got[1] is not None and b"read_bytes:" in got[1]
    assert _open_fds() == before
    assert len(files) == 0


def test_the_scan_closes_descriptors_of_exited_processes() -> None:
    source = ProcessSource(Roots(), top_n=3)
    children = [subprocess.Popen(["sleep", "600"]) for _ in range(3)]
    try:
        out = source.read(time.time_ns())
        pids = {row.pid for row in out.processes}
        assert {c.pid for c in children} <= pids
        kept = len(source._kept)
        assert kept >= len(pids) - 5  # processes may exit during the scan
        for child in children:
            child.kill()
            child.wait()
        out = source.read(time.time_ns())
        assert not {c.pid for c in children} & {row.pid for row in out.processes}
        # Other processes come and go on a busy machine: check our children's descriptors.
        assert not {c.pid for c in children} & set(source._kept._fds)
    finally:
        for child in children:
            child.kill()
            child.wait()
        source.close()
    assert len(source._kept) == 0
