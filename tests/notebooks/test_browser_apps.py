"""The marimo apps driven in Debian's Chromium through Playwright.

The postmortem app opens on a freshly recorded lab package; the operations app talks to a
controller served by uvicorn on loopback, with a run waiting for approval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from sreagent.controller.settings import hash_token, load_settings
from tests.controller.helpers import ARROW, body, make_batch, serve_in_thread, wait_for
from tests.notebooks.conftest import marimo_app

UI_TIMEOUT_MS = 180_000  # replays and cold cell runs on a loaded 2-core CI machine


@pytest.mark.slow
@pytest.mark.browser
def test_postmortem_app_shows_timeline_hypothesis_and_what_if_diff(
    lab_package: Path, browser: Any, tmp_path: Path
) -> None:
    with marimo_app("postmortem_app.py", ["--package", str(lab_package)], log=tmp_path / "marimo.log") as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, timeout=60_000)
        page.get_by_text("packet_loss at nic/eth0: Packet loss and TCP retransmits on nic/eth0").first.wait_for(timeout=UI_TIMEOUT_MS)
        timeline = page.locator(".sreagent-timeline svg").first
        timeline.wait_for(timeout=UI_TIMEOUT_MS)
        assert timeline.bounding_box()["height"] > 200
        assert "tcp_retransmit_ratio on host" in timeline.inner_html()
        # unchanged knobs: a plain replay, identical to the recording
        page.get_by_text("no override: the replay is identical to the recording").wait_for(timeout=UI_TIMEOUT_MS)

        slider = page.get_by_role("slider").first  # joint risk to open an incident
        slider.focus()
        page.keyboard.press("End")  # 1.0: the run's peak risk (0.75) no longer opens one
        page.get_by_text("incident closed (no longer opened)").wait_for(timeout=UI_TIMEOUT_MS)
        page.get_by_text("--set detection.min_risk_to_open=1.0").wait_for(timeout=UI_TIMEOUT_MS)
        shot = tmp_path / "postmortem_app.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000


OPERATOR_TOKEN = "tok-operator"
INGEST_TOKEN = "tok-ingest-ops"


@pytest.mark.slow
@pytest.mark.browser
def test_ops_app_approves_a_pending_run_and_shows_the_execution(browser: Any, tmp_path: Path) -> None:
    settings = load_settings(
        None,
        data_dir=tmp_path / "data",
        auth={"tokens": [
            {"name": "operator", "sha256": hash_token(OPERATOR_TOKEN), "scopes": ["read", "approve"]},
            {"name": "collector", "sha256": hash_token(INGEST_TOKEN), "scopes": ["ingest"]},
        ]},
        hot_state={"rebuild_window_s": 0},
        journal={"compact_interval_s": 3600},
        workflow={"chain": "builtin"},
    )  # fmt: skip
    with serve_in_thread(settings) as controller:
        headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        for seq, value in ((1, 0.2), (2, 0.99)):  # a CPU saturation opens an incident and a run
            sent = httpx.post(f"{controller}/api/v1/ingest/batches", content=body(make_batch(seq=seq, value=value)),
                              headers={**ARROW, "Authorization": f"Bearer {INGEST_TOKEN}"}, timeout=30)
            assert sent.status_code == 200, sent.text

        def waiting() -> dict[str, Any] | None:
            runs = httpx.get(f"{controller}/api/v1/runs", headers=headers, timeout=30).json()["runs"]
            return next((r for r in runs if r["state"] == "awaiting_approval"), None)

        run = wait_for(waiting, timeout=120, what="a run awaiting approval")
        with marimo_app("ops_app.py", ["--url", controller], env={"SREAGENT_TOKEN": OPERATOR_TOKEN},
                        log=tmp_path / "marimo.log") as url:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.goto(url, timeout=60_000)
            page.get_by_role("heading", name=f"Run {run['run_id']}: awaiting_approval").wait_for(timeout=UI_TIMEOUT_MS)
            # the gate's reasons are on the page before the buttons are used
            page.get_by_role("heading", name="The policy gate's decisions and reasons").wait_for(timeout=UI_TIMEOUT_MS)
            page.get_by_text("approval_required").first.wait_for(timeout=UI_TIMEOUT_MS)
            page.get_by_text("Nothing executed yet.").wait_for(timeout=UI_TIMEOUT_MS)
            page.get_by_role("button", name="Approve").click()
            page.get_by_role("heading", name=f"Run {run['run_id']}: completed").wait_for(timeout=UI_TIMEOUT_MS)
            page.get_by_text("dry_run").first.wait_for(timeout=UI_TIMEOUT_MS)
            page.screenshot(path=str(tmp_path / "ops_app.png"), full_page=True)

        detail = httpx.get(f"{controller}/api/v1/runs/{run['run_id']}", headers=headers, timeout=30).json()
        assert detail["state"] == "completed"
        assert detail["approvals"][0]["state"] == "approved"
        assert detail["approvals"][0]["actor"] == "operator"  # the operator's token, through the API
        artifacts = httpx.get(f"{controller}/api/v1/runs/{run['run_id']}/artifacts", headers=headers,
                              timeout=30).json()["artifacts"]
        result = next(a for a in artifacts if a["kind"] == "execution_result")
        assert [r["outcome"] for r in result["payload"]["results"]] == ["dry_run"]
