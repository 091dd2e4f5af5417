"""POST /api/v1/replay: the CLI's replay (sreagent.replay.Replayer) over HTTP, confined to the
evidence folder."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sreagent.api import create_app
from sreagent.chain import Chain, live_activities
from sreagent.replay import Replayer, RunInputs, record_run
from tests.api.test_role_chain_api import saturation_window
from tests.controller.helpers import auth, make_settings

URL = "/api/v1/replay"
WHAT_IF = ["posture.dry_run=false", 'posture.target_allowlist=["process/*"]']


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A recorded role-chain run of a CPU-saturation window (default posture: dry run)."""
    window = saturation_window(4242, host="node-replay", seconds=660)
    view = window.view()
    chain = Chain()
    result = chain.run(view, activities=live_activities())
    inputs = RunInputs(run_id=result.run_id, host=view.host, window=(view.start_ns, view.end_ns))
    path = tmp_path_factory.mktemp("recorded") / "cpu-run"
    record_run(path, inputs=inputs, result=result, source="lab", frames=window.frames())
    return path


@pytest.fixture
def evidence(tmp_path: Path, recorded: Path) -> Path:
    folder = tmp_path / "evidence"
    shutil.copytree(recorded, folder / "incidents" / "cpu-run")
    return folder


@pytest.fixture
def client(tmp_path: Path, evidence: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path, evidence_dir=evidence))) as c:
        yield c


def _expected(path: Path, overrides: dict | None = None) -> dict:
    """What the CLI's replay answers for the same package: the same Replayer, to JSON."""
    result = Replayer(overrides=overrides or {}).replay(path)
    return json.loads(json.dumps({**result.to_json(), "package": str(path)}))


def test_replay_of_a_recorded_run_is_identical(client: TestClient, evidence: Path) -> None:
    response = client.post(URL, json={"package": "incidents/cpu-run"}, headers=auth("read"))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["identical"] is True and answer["divergences"] == []
    assert answer["artifacts"] == 8 and answer["decisions"] is None
    package = evidence / "incidents" / "cpu-run"
    assert {k: v for k, v in answer.items() if k not in ("describe", "summary")} == _expected(
        package.resolve())


def test_what_if_answers_the_decision_diff(client: TestClient, evidence: Path) -> None:
    package = (evidence / "incidents" / "cpu-run").resolve()
    response = client.post(URL, json={"package": str(package), "overrides": WHAT_IF},
                           headers=auth("read"))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["overrides"] == {"posture.dry_run": False,
                                   "posture.target_allowlist": ["process/*"]}
    assert answer["identical"] is False
    assert answer["divergences"][0]["kind"] == "execution_plan"
    changed = {(c["action"], c["target"]): (c["before"], c["after"])
               for c in answer["decisions"]["actions"]}
    assert changed[("renice_process", "process/4242")] == ("blocked", "approval_required")
    expected = _expected(package, {"posture.dry_run": False,
                                   "posture.target_allowlist": ["process/*"]})
    assert answer["decisions"] == expected["decisions"]
    assert any("renice_process" in line for line in answer["summary"])


@pytest.mark.parametrize("package", ["../outside", "/etc", "incidents/../../outside"])
def test_paths_outside_the_evidence_folder_are_refused(client: TestClient, evidence: Path,
                                                       package: str) -> None:
    (evidence.parent / "outside").mkdir()
    response = client.post(URL, json={"package": package}, headers=auth("read"))
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["field"] == "package" and "outside the evidence folder" in error["message"]


def test_a_symlink_out_of_the_evidence_folder_is_refused(client: TestClient, evidence: Path,
                                                         recorded: Path) -> None:
    (evidence / "sneaky").symlink_to(recorded, target_is_directory=True)
    response = client.post(URL, json={"package": "sneaky"}, headers=auth("read"))
    assert response.status_code == 403 and response.json()["error"]["field"] == "package"


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"package": "incidents/cpu-run", "overrides": ["no-equals-sign"]}, 422, "overrides[0]"),
    ({"package": "incidents/cpu-run", "overrides": ["detection.nope=1"]}, 422,
     "overrides.detection.nope"),
    ({"package": "incidents/cpu-run", "overrides": ["detection.z_open=-1"]}, 422,
     "overrides.detection.z_open"),
    ({}, 422, None),
    ({"package": "incidents/cpu-run", "run_id": "run-1"}, 422, None),
    ({"package": "incidents/cpu-run", "bogus": 1}, 422, "bogus"),
    ({"package": "incidents/missing"}, 404, "package"),
    ({"run_id": "run-unknown"}, 404, "run_id"),
])
def test_bad_requests_name_what_was_wrong(client: TestClient, body: dict, status: int,
                                          field: str | None) -> None:
    response = client.post(URL, json=body, headers=auth("read"))
    assert response.status_code == status, response.text
    if field is not None:
        assert response.json()["error"]["field"] == field


def test_a_damaged_package_is_refused_naming_the_file(client: TestClient, evidence: Path) -> None:
    artifacts = evidence / "incidents" / "cpu-run" / "artifacts.parquet"
    artifacts.write_bytes(artifacts.read_bytes()[:-10])
    response = client.post(URL, json={"package": "incidents/cpu-run"}, headers=auth("read"))
    assert response.status_code in (400, 422), response.text
    assert "artifacts.parquet" in json.dumps(response.json())


def test_replay_needs_a_token_with_read(client: TestClient) -> None:
    assert client.post(URL, json={"package": "incidents/cpu-run"}).status_code == 401
    response = client.post(URL, json={"package": "incidents/cpu-run"}, headers=auth("ingest"))
    assert response.status_code == 403
