"""The operations app's view of a running controller, through its HTTP API and a token.

:class:`ControllerClient` is a thin httpx client (docs/controller.md lists the endpoints); the
functions below it turn API answers into the tables the app shows. Approving or rejecting goes
through the API with the operator's token, so the controller's scopes and audit log apply.
"""

from __future__ import annotations

from typing import Any

import httpx
import polars as pl

from sreagent.errors import BadInput, CheckFailed

DEFAULT_TIMEOUT_S = 10.0


class ControllerClient:
    """``GET``/``POST`` against ``base_url`` with ``Authorization: Bearer <token>``."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = DEFAULT_TIMEOUT_S):
        if not base_url.startswith(("http://", "https://")):
            raise BadInput("the controller URL must start with http:// or https://", field="url")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise CheckFailed(f"cannot reach the controller: {err}", path=path) from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("error", {}).get("message") or response.text
            except ValueError:
                detail = response.text
            raise CheckFailed(
                f"{method} {path} answered {response.status_code}: {detail}", path=path
            )
        data: dict[str, Any] = response.json()
        return data

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/api/v1/status")

    def hosts(self) -> dict[str, dict[str, Any]]:
        hosts: dict[str, dict[str, Any]] = self._call("GET", "/api/v1/ingest/status").get(
            "hosts", {}
        )
        return hosts

    def latest_reports(self) -> dict[str, dict[str, Any]]:
        """Per host, the newest incident report and its run (``/api/v1/agent/rca``)."""
        hosts: dict[str, dict[str, Any]] = self._call("GET", "/api/v1/agent/rca").get("hosts", {})
        return hosts

    def incidents(self, state: str = "open") -> list[dict[str, Any]]:
        return list(
            self._call("GET", "/api/v1/incidents", params={"state": state}).get("incidents", [])
        )

    def runs(self, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        return list(self._call("GET", "/api/v1/runs", params=params).get("runs", []))

    def run(self, run_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/runs/{run_id}")

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/api/v1/runs/{run_id}/artifacts").get("artifacts", []))

    def decide(self, run_id: str, *, approve: bool, reason: str = "") -> dict[str, Any]:
        verb = "approve" if approve else "reject"
        return self._call("POST", f"/api/v1/runs/{run_id}/{verb}", json={"reason": reason})


def _ns_time(ns: int | None) -> str:
    if not ns:
        return ""
    return str(pl.Series([int(ns)]).cast(pl.Datetime("ns")).dt.strftime("%Y-%m-%d %H:%M:%S")[0])


def hosts_table(hosts: dict[str, dict[str, Any]]) -> pl.DataFrame:
    """One row per host the controller holds in hot state, newest first."""
    rows = [
        {
            "host": name,
            "last_seen": _ns_time(h.get("last_seen_ns")),
            "batches": int(h.get("batches", 0)),
            "series": int(h.get("series", 0)),
            "processes": int(h.get("process_count", 0)),
            "collector": str(h.get("collector_id") or ""),
        }
        for name, h in sorted(hosts.items(), key=lambda kv: -(kv[1].get("last_seen_ns") or 0))
    ]
    schema = {
        "host": pl.String,
        "last_seen": pl.String,
        "batches": pl.Int64,
        "series": pl.Int64,
        "processes": pl.Int64,
        "collector": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)


def latest_reports_table(reports: dict[str, dict[str, Any]]) -> pl.DataFrame:
    """Per host, the newest incident report's headline: what the chain last concluded there."""
    keys = ("host", "run_id", "title", "severity", "top_hypothesis", "verification")
    rows = []
    for host, entry in sorted(reports.items()):
        report = entry.get("report", {})
        top = (report.get("top_hypotheses") or [{}])[0]
        rows.append(
            {
                "host": host,
                "run_id": str(entry.get("run_id", "")),
                "title": str(report.get("title", "")),
                "severity": str(report.get("severity", "")),
                "top_hypothesis": f"{top['fault_class']} at {top['entity']}" if top else "",
                "verification": str(report.get("verification", "")),
            }
        )
    return pl.DataFrame(rows, schema=dict.fromkeys(keys, pl.String))


def runs_table(runs: list[dict[str, Any]]) -> pl.DataFrame:
    keys = ("run_id", "state", "host", "incident_id", "chain", "current_step")
    rows = [{k: str(r.get(k, "")) for k in keys} for r in runs]
    return pl.DataFrame(rows, schema=dict.fromkeys(keys, pl.String))


def incidents_table(incidents: list[dict[str, Any]]) -> pl.DataFrame:
    keys = ("incident_id", "host", "title", "severity", "state", "run_id")
    rows = [{k: str(i.get(k, "")) for k in keys} for i in incidents]
    return pl.DataFrame(rows, schema=dict.fromkeys(keys, pl.String))


def chain_table(artifacts: list[dict[str, Any]]) -> pl.DataFrame:
    """A run's artifacts so far, in chain order (the run's chain grows as steps complete)."""
    keys = ("kind", "artifact", "producer", "status", "inputs")
    rows = [
        {
            "kind": a["kind"],
            "artifact": a["artifact_id"][:12],
            "producer": a.get("producer", ""),
            "status": a.get("status", ""),
            "inputs": ", ".join(i[:12] for i in a.get("input_artifact_ids", [])),
        }
        for a in artifacts
    ]
    return pl.DataFrame(rows, schema=dict.fromkeys(keys, pl.String))


def gate_decisions(artifacts: list[dict[str, Any]]) -> pl.DataFrame:
    """The policy gate's decision on each action of a run, with its reasons: what an
    operator reads before approving. Empty when the gate has not run yet."""
    plan = next((a for a in artifacts if a["kind"] == "execution_plan"), None)
    proposal = next((a for a in artifacts if a["kind"] == "remediation_proposal"), None)
    names = {
        p["action_id"]: (p["action"], p["target"], p.get("safety_class", ""))
        for p in (proposal["payload"].get("actions", []) if proposal else [])
    }
    rows = []
    for d in plan["payload"].get("decisions", []) if plan else []:
        action, target, safety = names.get(d["action_id"], (d["action_id"], "", ""))
        rows.append(
            {
                "action": action,
                "target": target,
                "safety_class": safety,
                "decision": d["decision"],
                "reasons": "; ".join(d.get("reasons", [])),
                "command": " ".join(d.get("command", [])),
            }
        )
    keys = ("action", "target", "safety_class", "decision", "reasons", "command")
    return pl.DataFrame(rows, schema=dict.fromkeys(keys, pl.String))


def execution_outcomes(artifacts: list[dict[str, Any]]) -> pl.DataFrame:
    """What the executor did (empty until the run's execution_result exists)."""
    result = next((a for a in artifacts if a["kind"] == "execution_result"), None)
    keys = ("action_id", "outcome", "exit_code", "output")
    rows = [
        {
            "action_id": r["action_id"],
            "outcome": r["outcome"],
            "exit_code": "" if r.get("exit_code") is None else str(r["exit_code"]),
            "output": (r.get("output") or "")[:300],
        }
        for r in (result["payload"].get("results", []) if result else [])
    ]
    return pl.DataFrame(rows, schema=dict.fromkeys(keys, pl.String))
