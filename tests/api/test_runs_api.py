"""Detection -> incident -> run -> approval -> evidence, through the API (ASGI client)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sreagent.api import create_app
from sreagent.artifacts import ArtifactKind
from sreagent.evidence import verify_package
from tests.controller.helpers import ARROW, auth, body, make_batch, make_settings, wait_for


def _run_in(client: TestClient, state: str) -> dict:
    def find() -> dict | None:
        runs = client.get("/api/v1/runs", headers=auth("read")).json()["runs"]
        return next((r for r in runs if r["state"] == state), None)
    return wait_for(find, what=f"a run in state {state}")


def _hot_batch(client: TestClient, seq: int = 1) -> None:
    ok = client.post("/api/v1/ingest/batches", content=body(make_batch(seq=seq, value=0.99)),
                     headers={**ARROW, **auth("ingest")})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_threshold_opens_incident_and_run_waits_for_approval(tmp_path: Path, decision: str) -> None:
    # The built-in chain (workflow.chain: builtin); test_role_chain_api.py runs the role chain.
    with TestClient(create_app(make_settings(tmp_path, workflow={"chain": "builtin"}))) as client:
        client.post("/api/v1/ingest/batches", content=body(make_batch(seq=1, value=0.2)),
                    headers={**ARROW, **auth("ingest")})
        assert client.get("/api/v1/incidents", headers=auth("read")).json()["count"] == 0
        _hot_batch(client, seq=2)
        incidents = client.get("/api/v1/incidents", headers=auth("read")).json()["incidents"]
        assert len(incidents) == 1 and incidents[0]["state"] == "open"
        assert incidents[0]["fingerprint"] == "node-1:cpu_saturation"
        _hot_batch(client, seq=3)  # still firing: enriches nothing, opens nothing new
        assert client.get("/api/v1/incidents", headers=auth("read")).json()["count"] == 1

        run = _run_in(client, "awaiting_approval")
        assert run["incident_id"] == incidents[0]["incident_id"]
        detail = client.get(f"/api/v1/runs/{run['run_id']}", headers=auth("read")).json()
        assert detail["approvals"][0]["state"] == "pending"
        # approving needs the approve scope
        assert client.post(f"/api/v1/runs/{run['run_id']}/{decision}",
                           headers=auth("read")).status_code == 403
        done = client.post(f"/api/v1/runs/{run['run_id']}/{decision}",
                           json={"reason": "checked"}, headers=auth("approve"))
        assert done.status_code == 200, done.text
        # a second decision is refused: the run no longer awaits approval
        again = client.post(f"/api/v1/runs/{run['run_id']}/{decision}", headers=auth("approve"))
        assert again.status_code == 409
        _run_in(client, "completed")

        artifacts = client.get(f"/api/v1/runs/{run['run_id']}/artifacts",
                               headers=auth("read")).json()["artifacts"]
        assert [a["kind"] for a in artifacts] == [
            "observation_summary", "anomaly_finding", "execution_plan", "execution_result",
            "incident_report"]
        finding = artifacts[1]["payload"]["findings"][0]
        assert finding["metric"] == "cpu_utilisation_ratio" and finding["value"] == 0.99
        outcome = artifacts[3]["payload"]["results"][0]["outcome"]
        assert outcome == ("dry_run" if decision == "approve" else "skipped")

        zipped = client.get(f"/api/v1/runs/{run['run_id']}/evidence", headers=auth("read"))
        assert zipped.headers["content-type"] == "application/zip"
        out = tmp_path / "unzipped"
        zipfile.ZipFile(io.BytesIO(zipped.content)).extractall(out)
        report = verify_package(out / run["run_id"])
        assert report.rows["samples.parquet"] > 0
        files = client.get(f"/api/v1/runs/{run['run_id']}/evidence/files",
                           headers=auth("read")).json()["files"]
        assert set(files) == {p.name for p in (out / run["run_id"]).iterdir()} - {"manifest.json"}

        rca = client.get("/api/v1/agent/rca", headers=auth("read")).json()["hosts"]
        assert rca["node-1"]["run_id"] == run["run_id"]
        assert rca["node-1"]["report"]["kind"] == ArtifactKind.INCIDENT_REPORT.value

        # back below the threshold: the incident closes
        client.post("/api/v1/ingest/batches", content=body(make_batch(seq=9, value=0.1)),
                    headers={**ARROW, **auth("ingest")})
        closed = client.get("/api/v1/incidents?state=closed", headers=auth("read")).json()
        assert closed["count"] == 1
        audit = client.get("/api/v1/audit", headers=auth("admin")).json()["entries"]
        assert any(e["action"] == f"run_{decision.removesuffix('e')}ed" and e["actor"] == "approve-user"
                   for e in audit)


def test_alertmanager_webhook_opens_enriches_and_closes(tmp_path: Path) -> None:
    alert = {"status": "firing", "fingerprint": "abc123",
             "labels": {"alertname": "HighLoad", "instance": "node-7:9100",
                        "severity": "critical"},
             "annotations": {"summary": "load is high"}}
    with TestClient(create_app(make_settings(tmp_path))) as client:
        url = "/api/v1/alerts/alertmanager"
        first = client.post(url, json={"version": "4", "groupKey": "g", "alerts": [alert]},
                            headers=auth("ingest")).json()
        assert len(first["opened"]) == 1
        second = client.post(url, json={"alerts": [alert]}, headers=auth("ingest")).json()
        assert second["enriched"] == first["opened"]
        incident = client.get(f"/api/v1/incidents/{first['opened'][0]}",
                              headers=auth("read")).json()
        assert incident["host"] == "node-7" and incident["alert_count"] == 2
        assert incident["severity"] == "critical" and incident["source"] == "alertmanager"
        resolved = client.post(url, json={"alerts": [{**alert, "status": "resolved"}]},
                               headers=auth("ingest")).json()
        assert resolved["closed"] == ["alertmanager:abc123"]
        bad = client.post(url, json={"alerts": [{**alert, "status": "sideways"}]},
                          headers=auth("ingest"))
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "alerts.0.status"


def test_unknown_run_is_404(client: TestClient) -> None:
    response = client.get("/api/v1/runs/run-nope", headers=auth("read"))
    assert response.status_code == 404 and response.json()["error"]["field"] == "run_id"
    assert client.get("/api/v1/runs/run-nope/evidence", headers=auth("read")).status_code == 404
