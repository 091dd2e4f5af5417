"""``sreagent collect`` as a user runs it: real processes, real signals, a real ingest server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sreagent.collector.spool import Spool
from sreagent.telemetry import JSON_CONTENT_TYPE, decode_batch
from tests.collector.stubs import stub_server, wait_until
from tests.conftest import IS_ROOT

# eBPF programs take seconds to build; they have their own tests. kmsg is cheap but global.
QUICK_ENV = {"SREAGENT_COLLECTOR_SOURCES__DISABLED": '["ebpf"]'}


def sreagent(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, quick: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sreagent", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(QUICK_ENV if quick else {}), **(env or {})},
    )


def test_once_json_prints_one_valid_batch_without_a_controller(tmp_path: Path) -> None:
    state = tmp_path / "state"
    done = sreagent("collect", "--once", "--json", "--window", "0.2", "--state-dir", str(state))
    assert done.returncode == 0, done.stderr
    frame = decode_batch(done.stdout.encode(), JSON_CONTENT_TYPE)
    header = frame.header
    assert header.seq == 1
    sources = {cap.source: cap.mode for cap in header.capabilities}
    assert {"cpu", "memory", "processes", "kmsg"} <= set(sources)
    assert "ebpf" not in sources, "disabled through the environment"
    metrics = set(frame.samples.column("metric").to_pylist())
    assert {"cpu_utilisation_ratio", "collector_rss_bytes", "collector_mode"} <= metrics
    assert frame.processes.num_rows > 0
    assert not state.exists(), "--once writes nothing"


def test_once_reads_the_config_file_and_flags_override_it(tmp_path: Path) -> None:
    config = tmp_path / "collector.toml"
    config.write_text(
        'host = "from-file"\nlabels = { cluster = "lab" }\n'
        '[sources]\nenabled = ["cpu", "memory"]\ndisabled = ["kmsg", "ebpf"]\n'
    )
    done = sreagent(
        "collect",
        "--config",
        str(config),
        "--once",
        "--json",
        "--window",
        "0",
        "--state-dir",
        str(tmp_path / "s"),
        env={"SREAGENT_COLLECTOR_HOST": "from-env"},
        quick=False,  # the file's own [sources] list is under test
    )
    assert done.returncode == 0, done.stderr
    batch = json.loads(done.stdout)
    assert batch["host"] == "from-env", "environment over file"
    assert batch["labels"] == {"cluster": "lab"}
    assert {cap["source"] for cap in batch["capabilities"]} == {"cpu", "memory"}


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("[spool]\nmax_bytez = 1\n", "spool.max_bytez"),
        ("interval_seconds = -1\n", "interval_seconds"),
        ("[transport]\nendpoints = ['ftp://x']\n", "ftp://x"),
        ("[sources]\ndisabled = ['nosuch']\n", "nosuch"),
        ("not toml [\n", "not valid TOML"),
    ],
)
def test_bad_config_exits_2_naming_what_is_wrong(tmp_path: Path, content: str, named: str) -> None:
    config = tmp_path / "collector.toml"
    config.write_text(content)
    done = sreagent(
        "collect", "--config", str(config), "--state-dir", str(tmp_path / "s"), quick=False
    )
    assert done.returncode == 2
    assert named in done.stderr
    assert "Traceback" not in done.stderr


def test_json_without_once_and_a_missing_config_are_refused(tmp_path: Path) -> None:
    assert sreagent("collect", "--json").returncode == 2
    missing = sreagent("collect", "--config", str(tmp_path / "none.toml"), "--once")
    assert missing.returncode == 2 and "config file not found" in missing.stderr


def test_capabilities_reports_every_source_and_the_spool(tmp_path: Path) -> None:
    done = sreagent("collect", "capabilities", "--json", "--state-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    modes = {s["source"]: s["mode"] for s in report["sources"]}
    assert modes["nvml"] == "off", "no GPU on this machine, and it says so"
    assert all(mode in ("kernel", "fallback", "off") for mode in modes.values())
    assert report["shed_order"] and report["spool"] is None


@pytest.mark.slow
def test_daemon_stops_gracefully_on_sigterm_having_sent_everything(tmp_path: Path) -> None:
    with stub_server(tmp_path / "server.jsonl") as server:
        config = tmp_path / "collector.toml"
        config.write_text(
            f'interval_seconds = 0.2\nstate_dir = "{tmp_path / "state"}"\n'
            f'[transport]\nendpoints = ["{server.url}"]\n'
            '[sources]\nenabled = ["cpu", "memory", "psi"]\ndisabled = ["kmsg", "ebpf"]\n'
        )
        collector_ids, epochs = set(), []
        for run in range(2):
            proc = subprocess.Popen(
                [sys.executable, "-m", "sreagent", "collect", "--config", str(config)],
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                wanted = 3 * (run + 1)
                assert wait_until(lambda n=wanted: len(server.accepted_seqs()) >= n, 30)
                proc.send_signal(signal.SIGTERM)
                _, stderr = proc.communicate(timeout=20)
            finally:
                if proc.poll() is None:
                    proc.kill()
            assert proc.returncode == 0, stderr
            assert "SIGTERM" in stderr
            requests = server.requests()
            epochs.append(requests[-1]["producer_epoch"])
            collector_ids |= {r["collector_id"] for r in requests}
            seqs = [r["seq"] for r in requests if r["producer_epoch"] == epochs[-1]]
            assert seqs == list(range(1, len(seqs) + 1)), "seq from 1, in order, none lost"
            with Spool(tmp_path / "state" / "spool") as spool:
                assert spool.stats().records == 0, "everything spooled was sent before exit"
        assert len(collector_ids) == 1, "collector_id survives the restart"
        assert epochs[0] != epochs[1], "a new epoch per start"


@pytest.mark.skipif(not IS_ROOT or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_once_as_an_unprivileged_user_stays_up_and_reports_fallbacks(tmp_path: Path) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-m",
            "sreagent",
            "collect",
            "--once",
            "--json",
            "--window",
            "0.2",
            "--state-dir",
            str(tmp_path / "unwritable"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **QUICK_ENV},
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    modes = {c["source"]: (c["mode"], c["reason"]) for c in json.loads(done.stdout)["capabilities"]}
    assert modes["kmsg"][0] == "off" and "kmsg" in modes["kmsg"][1]
    assert any(mode == "fallback" for mode, _ in modes.values())
    assert time.monotonic() - started < 120


@pytest.mark.skipif(not IS_ROOT or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_daemon_with_an_unwritable_state_dir_exits_2_naming_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-m",
            "sreagent",
            "collect",
            "--state-dir",
            "/var/lib/sreagent-nope",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env={**os.environ, **QUICK_ENV},
    )
    assert done.returncode == 2
    assert "/var/lib/sreagent-nope" in done.stderr and "not writable" in done.stderr
