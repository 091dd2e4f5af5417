"""The few controller API calls a live-lab run makes (docs/controller.md, "Endpoints").

A thin client over httpx: every failed call raises :class:`LabFailed` naming the endpoint and
what the controller answered, so a game day that cannot reach its controller says so plainly.
"""

from __future__ import annotations

from typing import Any

import httpx

from sreagent.lab.live._errors import LabFailed


class ControllerClient:
    """Bearer-token client of one controller (``token`` empty for an ``--insecure-dev`` one)."""

    def __init__(self, url: str, token: str = "", *, timeout_s: float = 15.0):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ControllerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise LabFailed(f"controller {self.url}: {method} {path} failed: {err}") from None
        if response.status_code >= 400:
            raise LabFailed(
                f"controller {self.url}: {method} {path} answered {response.status_code}: "
                f"{response.text[:300]}"
            )
        return response

    def ready(self) -> bool:
        """Whether ``/readyz`` answers 200 (False while the controller is still starting)."""
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def host_state(self, host: str) -> dict[str, Any] | None:
        """The ingest status of one host (``batches``, ``last_seen_ns`` ...), None if unseen."""
        hosts = self._call("GET", "/api/v1/ingest/status").json().get("hosts") or {}
        state = hosts.get(host)
        return dict(state) if state is not None else None

    def incidents(self, *, limit: int = 200) -> list[dict[str, Any]]:
        body = self._call("GET", "/api/v1/incidents", params={"limit": limit}).json()
        return list(body.get("incidents", []))

    def incident(self, incident_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/v1/incidents/{incident_id}").json())

    def run(self, run_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/v1/runs/{run_id}").json())

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        body = self._call("GET", f"/api/v1/runs/{run_id}/artifacts").json()
        return list(body["artifacts"] if isinstance(body, dict) else body)

    def approve(self, run_id: str, reason: str) -> dict[str, Any]:
        return dict(
            self._call("POST", f"/api/v1/runs/{run_id}/approve", json={"reason": reason}).json()
        )

    def evidence_zip(self, run_id: str) -> bytes:
        return self._call("GET", f"/api/v1/runs/{run_id}/evidence").content
