"""The pieces of ``sreagent lab live`` that need no root: the configs it writes (read back by
the real controller and collector loaders), the alert rules, the approval safety check, the
package export, the API client's errors and the command's refusals."""

from __future__ import annotations

import http.server
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from sreagent.cli import main
from sreagent.collector.config import load_settings as load_collector_settings
from sreagent.controller.settings import hash_token
from sreagent.controller.settings import load_settings as load_controller_settings
from sreagent.lab.live import LabFailed, make_injector
from sreagent.lab.live._client import ControllerClient
from sreagent.lab.live._flow import export_package, lab_targets_only, proposal_lines
from sreagent.lab.live._report import postmortem
from sreagent.lab.live._rules import game_day_rules, parse_oom_kills, whole_disks
from sreagent.lab.live._stack import collector_toml, controller_config, free_port


def _plan(name: str) -> Any:
    return make_injector(name, "0123abcd", 30).plan()


def test_collector_config_is_read_back_by_the_collector(tmp_path: Path) -> None:
    token_file = tmp_path / "t"
    token_file.write_text("secret")
    path = tmp_path / "collector.toml"
    path.write_text(collector_toml(tmp_path, url="http://127.0.0.1:5", token_file=token_file,
                                   interval_s=0.5))
    settings = load_collector_settings(path)
    assert settings.interval_seconds == 0.5
    assert settings.state_dir == tmp_path / "collector"
    assert settings.transport.endpoints == ["http://127.0.0.1:5"]
    assert settings.transport.token_file == token_file
    # Processes and cgroups every interval: the fault's process must be in the window.
    assert settings.sources.process_interval_seconds == 0.5
    assert settings.sources.cgroup_interval_seconds == 0.5


def test_controller_config_is_read_back_by_the_controller(tmp_path: Path) -> None:
    rules = game_day_rules(_plan("cgroup-throttle"), disks=["vda"], oom_kills_at_baseline=3)
    config = controller_config(tmp_path, port=18080, token="tok", rules=rules, window_s=40,
                               dry_run=False, target_allowlist=["process/*"])
    path = tmp_path / "controller.yaml"
    path.write_text(json.dumps(config))
    settings = load_controller_settings(path)
    assert settings.port == 18080 and settings.host == "127.0.0.1"
    assert settings.auth.tokens[0].sha256 == hash_token("tok")
    assert set(settings.auth.tokens[0].scopes) == {"ingest", "read", "approve"}
    assert settings.workflow.window_s == 40
    # An approved action is verified over 30 s of telemetry after it (20+ samples at 1 s).
    assert settings.workflow.verify_after_s == 30.0
    assert [r.name for r in settings.workflow.rules] == [r["name"] for r in rules]
    posture = settings.workflow.effective_chain_config.posture
    assert posture.dry_run is False and posture.require_approval is True
    assert posture.target_allowlist == ["process/*"]


def test_default_posture_is_a_dry_run(tmp_path: Path) -> None:
    config = controller_config(tmp_path, port=1, token="t", rules=[], window_s=40,
                               dry_run=True, target_allowlist=[])
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(config))
    posture = load_controller_settings(path).workflow.effective_chain_config.posture
    assert posture.dry_run is True and posture.target_allowlist == []


def test_rules_are_the_same_for_every_scenario_but_the_workload_cgroup() -> None:
    host_only = game_day_rules(_plan("cpu-hog"), disks=["vda", "vdb"], oom_kills_at_baseline=7)
    by_name = {r["name"]: r for r in host_only}
    assert set(by_name) == {"cpu_saturation", "tcp_retransmits", "oom_kill", "disk_busy_vda",
                            "disk_busy_vdb"}
    assert by_name["oom_kill"]["above"] == 7.5 and by_name["oom_kill"]["for_samples"] == 1
    assert by_name["disk_busy_vdb"]["entity"] == "disk/vdb"
    assert game_day_rules(_plan("io-saturation"), disks=["vda", "vdb"],
                          oom_kills_at_baseline=7) == host_only
    throttle = game_day_rules(_plan("cgroup-throttle"), disks=[], oom_kills_at_baseline=0)
    workload = [r for r in throttle if r["name"] == "workload_cpu_throttled"]
    assert workload and workload[0]["entity"] == "cgroup/sreagent-lab-0123abcd"
    assert workload[0]["metric"] == "cgroup_cpu_throttled_ratio"


def test_oom_counter_and_disks_are_read_from_injected_roots(tmp_path: Path) -> None:
    assert parse_oom_kills(b"pgfault 10\noom_kill 4\nnr_free_pages 1\n") == 4
    assert parse_oom_kills(b"pgfault 10\n") == 0
    for dev in ("vda", "nvme0n1", "loop0", "ram1", "sr0", "zram0"):
        (tmp_path / "block" / dev).mkdir(parents=True)
    assert whole_disks(tmp_path) == ["nvme0n1", "vda"]
    assert whole_disks(tmp_path / "absent") == []


def _artifacts(targets: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """A proposal and an execution plan: action id -> (target, decision)."""
    actions = [{"action_id": a, "action": "renice_process", "target": t,
                "safety_class": "safe_reversible"} for a, (t, _) in targets.items()]
    decisions = [{"action_id": a, "decision": d} for a, (_, d) in targets.items()]
    return [{"kind": "remediation_proposal", "payload": {"actions": actions}},
            {"kind": "execution_plan", "payload": {"decisions": decisions}}]


def test_the_lab_approves_only_actions_on_what_it_created() -> None:
    ours = _artifacts({"a1": ("process/42", "approval_required"),
                       "a2": ("process/7", "blocked")})
    assert lab_targets_only(ours, ["process/42", "cgroup/sreagent-lab-x/*"]) == (True, [])
    foreign = _artifacts({"a1": ("process/42", "approval_required"),
                          "a2": ("process/7", "approval_required")})
    assert lab_targets_only(foreign, ["process/42"]) == (False, ["process/7"])
    nested = _artifacts({"a1": ("cgroup/sreagent-lab-x/aggressor", "approval_required")})
    assert lab_targets_only(nested, ["cgroup/sreagent-lab-x/*"])[0]
    assert proposal_lines(foreign) == [
        "renice_process process/42 (safe_reversible): approval_required",
        "renice_process process/7 (safe_reversible): approval_required",
    ]


class _Answers(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, bytes]]] = {}

    def do_GET(self) -> None:
        status, body = self.routes.get(self.path.split("?")[0], (404, b'{"error": "no"}'))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_controller() -> Iterator[tuple[str, dict[str, tuple[int, bytes]]]]:
    """A real HTTP server on loopback answering canned bodies per path."""
    routes: ClassVar[dict[str, tuple[int, bytes]]] = {}
    handler = type("Handler", (_Answers,), {"routes": routes})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", routes
    server.shutdown()
    server.server_close()


def test_client_errors_name_the_endpoint_and_the_answer(fake_controller: Any) -> None:
    url, routes = fake_controller
    routes["/api/v1/incidents"] = (503, b'{"error": {"code": "not_leader"}}')
    with ControllerClient(url, "tok") as client, pytest.raises(LabFailed) as err:
        client.incidents()
    assert "/api/v1/incidents" in str(err.value) and "503" in str(err.value)
    assert "not_leader" in str(err.value)
    with ControllerClient(f"http://127.0.0.1:{free_port()}") as nobody:
        assert nobody.ready() is False
        with pytest.raises(LabFailed, match="failed"):
            nobody.run("run-1")


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buffer.getvalue()


def test_export_unpacks_the_package_and_refuses_paths_outside(fake_controller: Any,
                                                              tmp_path: Path) -> None:
    url, routes = fake_controller
    routes["/api/v1/runs/run-1/evidence"] = (200, _zip({"run-1/manifest.json": b"{}",
                                                        "run-1/samples.parquet": b"x"}))
    routes["/api/v1/runs/run-2/evidence"] = (200, _zip({"run-2/../../evil": b"x"}))
    with ControllerClient(url) as client:
        path = export_package(client, "run-1", tmp_path / "pkg")
        assert path == tmp_path / "pkg" / "run-1"
        assert (path / "manifest.json").read_bytes() == b"{}"
        with pytest.raises(LabFailed, match="outside"):
            export_package(client, "run-2", tmp_path / "pkg")
    assert not (tmp_path / "evil").exists()


def test_postmortem_reports_why_it_was_not_rendered(tmp_path: Path) -> None:
    """Whatever state `sreagent report` is in, the answer is a rendered file or the command
    to run: never a silent success."""
    path, how = postmortem(tmp_path / "no-such-package", tmp_path / "out.html")
    assert path is None
    assert "sreagent report postmortem" in how and str(tmp_path / "out.html") in how


def test_live_refuses_an_unknown_scenario_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lab", "live", "no-such-fault", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no-such-fault" in err and "cpu-hog" in err
    assert list(tmp_path.iterdir()) == []


# --- steady state before the fault (a game day starts from a quiet host) ---------------------

def _incident(iid: str, *, host: str = "h1", opened_s: float, closed_s: float | None = None,
              rule: str = "host-cpu") -> dict[str, Any]:
    return {"incident_id": iid, "host": host, "fingerprint": f"{host}:{rule}",
            "opened_at_ns": int(opened_s * 1e9), "state": "open" if closed_s is None else
            "closed", "closed_at_ns": None if closed_s is None else int(closed_s * 1e9)}


def test_unsteady_names_open_and_recently_closed_incidents_of_the_host_only() -> None:
    from sreagent.lab.live._steady import unsteady

    rows = [_incident("inc-open", opened_s=90), _incident("inc-recent", opened_s=50,
                                                          closed_s=80, rule="host-disk"),
            _incident("inc-old", opened_s=10, closed_s=20),
            _incident("inc-other-host", host="h2", opened_s=95)]
    state = unsteady(rows, "h1", int(100e9), quiet_s=30)
    assert not state.steady
    assert [i["incident_id"] for i in state.open] == ["inc-open"]
    assert [i["incident_id"] for i in state.recently_closed] == ["inc-recent"]
    text = state.describe(int(100e9))
    assert "inc-open (rule host-cpu, opened 10 s ago)" in text
    assert "inc-recent (rule host-disk, opened 50 s ago, closed 20 s ago)" in text
    assert "inc-old" not in text and "inc-other-host" not in text
    # The closed one leaves the quiet period; the other host never counted.
    assert unsteady(rows[2:], "h1", int(100e9), quiet_s=30).steady
    assert unsteady(rows[1:], "h1", int(100e9), quiet_s=10).steady


def test_wait_steady_waits_for_incidents_to_close_then_returns() -> None:
    from sreagent.lab.live._steady import wait_steady

    now = [100.0]
    said: list[str] = []

    def incidents() -> list[dict[str, Any]]:
        # Open until t=103, closed then: steady once 5 s of quiet have passed (t >= 108).
        closed = 103.0 if now[0] >= 103.0 else None
        return [_incident("inc-busy", opened_s=95, closed_s=closed)]

    def sleep(s: float) -> None:
        now[0] += s

    waited = wait_steady(incidents, "h1", quiet_s=5, timeout_s=60, progress=said.append,
                         clock_ns=lambda: int(now[0] * 1e9), sleep=sleep)
    assert waited == pytest.approx(8.0)
    assert len(said) == 1 and "inc-busy" in said[0]


def test_wait_steady_fails_naming_the_open_incidents_and_what_to_do() -> None:
    from sreagent.lab.live import HostNotSteady, LabFailed
    from sreagent.lab.live._steady import wait_steady

    now = [100.0]

    def sleep(s: float) -> None:
        now[0] += s

    with pytest.raises(HostNotSteady) as caught:
        wait_steady(lambda: [_incident("inc-cpu", opened_s=40)], "h1", quiet_s=30,
                    timeout_s=20, progress=lambda m: None,
                    clock_ns=lambda: int(now[0] * 1e9), sleep=sleep)
    message = caught.value.message
    assert "inc-cpu (rule host-cpu, opened 80 s ago)" in message
    assert "not injected" in message and "quiet host" in message
    assert isinstance(caught.value, LabFailed) and caught.value.code == "lab_host_not_steady"
    assert now[0] == pytest.approx(120.0)  # bounded: gave up at the timeout
