# The operations app: the live view of a running controller through its HTTP API and a token.
# Start it with `sreagent app ops --url URL` (token from $SREAGENT_TOKEN; docs/notebooks.md) or
# `SREAGENT_TOKEN=... marimo run notebooks/ops_app.py -- --url URL`.
# Every call goes through sreagent.reports.ControllerClient; approvals use the operator's token.

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="full", app_title="sreagent operations")


@app.cell
def _():
    import os

    import marimo as mo

    from sreagent.reports import (
        ControllerClient,
        chain_table,
        execution_outcomes,
        gate_decisions,
        hosts_table,
        incidents_table,
        latest_reports_table,
        runs_table,
    )
    return (
        ControllerClient,
        chain_table,
        execution_outcomes,
        gate_decisions,
        hosts_table,
        incidents_table,
        latest_reports_table,
        mo,
        os,
        runs_table,
    )


@app.cell
def _(ControllerClient, mo, os):
    _args = mo.cli_args()
    url = _args.get("url") or os.environ.get("SREAGENT_URL", "http://127.0.0.1:8080")
    client = ControllerClient(str(url), os.environ.get("SREAGENT_TOKEN", ""))
    refresh = mo.ui.refresh(options=["2s", "5s", "30s"], default_interval="5s", label="refresh")
    mo.hstack([mo.md(f"# Controller `{url}`"), refresh], justify="space-between")
    return client, refresh


@app.cell
def _(client, mo):
    # Approve/reject buttons bump this counter so the views below re-read the controller.
    get_decisions, set_decisions = mo.state(0)
    return get_decisions, set_decisions


@app.cell
def _(
    client,
    get_decisions,
    hosts_table,
    incidents_table,
    latest_reports_table,
    mo,
    refresh,
    runs_table,
):
    refresh.value, get_decisions()
    runs = client.runs()
    mo.vstack(
        [
            mo.md("## Hosts"),
            mo.ui.table(hosts_table(client.hosts()), selection=None),
            mo.md("## Latest diagnosis per host"),
            mo.ui.table(latest_reports_table(client.latest_reports()), selection=None),
            mo.md("## Open incidents"),
            mo.ui.table(incidents_table(client.incidents("open")), selection=None),
            mo.md("## Runs (newest first)"),
            mo.ui.table(runs_table(runs), selection=None),
        ]
    )
    return (runs,)


@app.cell
def _(mo, runs):
    _ids = [r["run_id"] for r in runs]
    _waiting = [r["run_id"] for r in runs if r["state"] == "awaiting_approval"]
    run_picker = mo.ui.dropdown(
        options=_ids,
        value=(_waiting or _ids or [None])[0],
        label="Run",
        full_width=True,
    )
    run_picker
    return (run_picker,)


@app.cell
def _(chain_table, client, execution_outcomes, gate_decisions, get_decisions, mo, refresh, run_picker):
    refresh.value, get_decisions()
    mo.stop(not run_picker.value, mo.md("No run yet."))
    run = client.run(run_picker.value)
    artifacts = client.artifacts(run_picker.value)
    _outcomes = execution_outcomes(artifacts)
    mo.vstack(
        [
            mo.md(f"## Run `{run['run_id']}`: **{run['state']}** (host {run['host']}, step {run['current_step']} of {len(run.get('chain', []))})"),
            mo.md("### The policy gate's decisions and reasons"),
            mo.ui.table(gate_decisions(artifacts), selection=None),
            mo.md("### Artifact chain so far"),
            mo.ui.table(chain_table(artifacts), selection=None),
            mo.md("### Execution result"),
            mo.ui.table(_outcomes, selection=None) if not _outcomes.is_empty() else mo.md("Nothing executed yet."),
        ]
    )
    return (run,)


@app.cell
def _(client, mo, run, set_decisions):
    mo.stop(run["state"] != "awaiting_approval", mo.md(f"Run `{run['run_id']}` is not awaiting approval."))

    def _decide(approve: bool):
        def _click(_value):
            client.decide(run["run_id"], approve=approve, reason=reason.value)
            set_decisions(lambda n: n + 1)
            return _value

        return _click

    reason = mo.ui.text(label="reason (kept in the audit log)", full_width=True)
    approve = mo.ui.button(label="Approve", kind="success", on_click=_decide(True))
    reject = mo.ui.button(label="Reject", kind="danger", on_click=_decide(False))
    mo.vstack(
        [
            mo.md("### Pending approval: read the gate's reasons above first"),
            reason,
            mo.hstack([approve, reject], justify="start"),
        ]
    )
    return approve, reason, reject


if __name__ == "__main__":
    app.run()
