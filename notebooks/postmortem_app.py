# The postmortem app: one recorded chain run, its timeline, artifact chain, hypotheses with
# their evidence, and what-if replays. Start it with `sreagent app` (docs/notebooks.md) or
# `marimo run notebooks/postmortem_app.py -- --package PATH` / `-- --evidence-dir DIR`.
# Logic lives in sreagent.reports and sreagent.replay; the cells only lay it out.

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="full", app_title="sreagent postmortem")


@app.cell
def _():
    import os
    from pathlib import Path

    import marimo as mo

    from sreagent.reports import (
        action_table,
        artifact_table,
        diff_lines,
        hypothesis_signals,
        hypothesis_table,
        key_signals,
        knob_overrides,
        list_packages,
        load_postmortem,
        recorded_knobs,
        render_report,
        run_what_if,
        similar_table,
        timeline_figure,
        timeline_table,
        verification_table,
        WhatIfKnobs,
    )
    return (
        Path,
        WhatIfKnobs,
        action_table,
        artifact_table,
        diff_lines,
        hypothesis_signals,
        hypothesis_table,
        key_signals,
        knob_overrides,
        list_packages,
        load_postmortem,
        mo,
        os,
        recorded_knobs,
        render_report,
        run_what_if,
        similar_table,
        timeline_figure,
        timeline_table,
        verification_table,
    )


@app.cell
def _(Path, list_packages, mo, os):
    # A package from the command line, or one picked from the evidence directory.
    _args = mo.cli_args()
    package_arg = _args.get("package") or os.environ.get("SREAGENT_PACKAGE", "")
    evidence_dir = _args.get("evidence-dir") or os.environ.get("SREAGENT_EVIDENCE_DIR", "")
    _choices = [str(p) for p in list_packages(evidence_dir)] if evidence_dir and Path(evidence_dir).is_dir() else []
    if package_arg:
        _choices = [str(package_arg), *[c for c in _choices if c != str(package_arg)]]
    picker = mo.ui.dropdown(
        options=_choices,
        value=_choices[0] if _choices else None,
        label="Evidence package",
        full_width=True,
    )
    picker
    return (picker,)


@app.cell
def _(load_postmortem, mo, picker):
    mo.stop(
        not picker.value,
        mo.md("No evidence package: start with `sreagent app PACKAGE` or `--evidence-dir DIR`."),
    )
    pm = load_postmortem(picker.value)
    return (pm,)


@app.cell
def _(mo, pm):
    _report = pm.report
    mo.md(
        f"""
# {_report.title if _report else "No incident report recorded"}

| | |
|---|---|
| run | `{pm.run_id}` on host `{pm.host}` |
| severity | {_report.severity if _report else "none"} |
| **Top hypothesis** | **{pm.top_hypothesis or "none (no incident opened)"}** |
| verification verdict | {pm.verification} |
"""
    )
    return


@app.cell
def _(key_signals, mo, pm, timeline_figure):
    _signals = key_signals(pm)
    mo.vstack(
        [
            mo.md("## Timeline"),
            mo.Html(f'<div class="sreagent-timeline">{timeline_figure(pm, _signals).svg}</div>')
            if _signals
            else mo.md("No signal was flagged in this run."),
        ]
    )
    return


@app.cell
def _(mo, pm, timeline_table):
    mo.vstack([mo.md("### What happened"), mo.ui.table(timeline_table(pm), selection=None)])
    return


@app.cell
def _(hypothesis_table, mo, pm):
    hypotheses = mo.ui.table(
        hypothesis_table(pm), selection="single", initial_selection=[0] if pm.top_hypothesis else None
    )
    mo.vstack([mo.md("## Hypotheses (select one to plot its evidence)"), hypotheses])
    return (hypotheses,)


@app.cell
def _(hypotheses, hypothesis_signals, mo, pm, timeline_figure):
    _chosen = hypotheses.value
    mo.stop(_chosen is None or len(_chosen) == 0)
    _rank = int(_chosen["rank"][0])
    _signals = hypothesis_signals(pm, _rank)
    mo.Html(
        timeline_figure(pm, _signals, title=f"evidence for hypothesis #{_rank}").svg
    ) if _signals else mo.md("This hypothesis cites no telemetry.")
    return


@app.cell
def _(artifact_table, mo, pm):
    chain_table = mo.ui.table(artifact_table(pm.artifacts), selection="single")
    mo.vstack(
        [
            mo.md("## Artifact chain (select one to see its inputs, evidence and payload)"),
            chain_table,
        ]
    )
    return (chain_table,)


@app.cell
def _(chain_table, mo, pm):
    mo.stop(chain_table.value is None or len(chain_table.value) == 0)
    _artifact = pm.artifacts[int(chain_table.value["position"][0])]
    _by_id = {a.artifact_id: a for a in pm.artifacts}
    _inputs = [f"- `{i[:12]}` {_by_id[i].kind.value}" if i in _by_id else f"- `{i[:12]}`" for i in _artifact.input_artifact_ids]
    _refs = [
        f"- {r.metric} on {r.entity}, {len(r.batch_ids)} batches" for r in _artifact.evidence_refs
    ]
    mo.vstack(
        [
            mo.md(
                f"### {_artifact.kind.value} `{_artifact.artifact_id[:12]}`\n\n"
                f"**computed from**\n\n{chr(10).join(_inputs) or '- nothing (first in the chain)'}\n\n"
                f"**evidence cited**\n\n{chr(10).join(_refs) or '- none'}"
            ),
            mo.json(_artifact.payload.model_dump(mode="json")),
        ]
    )
    return


@app.cell
def _(action_table, mo, pm, similar_table, verification_table):
    mo.vstack(
        [
            mo.md("## Actions and the policy gate's decisions"),
            mo.ui.table(action_table(pm), selection=None),
            mo.md(f"## Verification: **{pm.verification}**"),
            mo.ui.table(verification_table(pm), selection=None),
            mo.md("## Similar incidents"),
            mo.ui.table(similar_table(pm), selection=None),
        ]
    )
    return


@app.cell
def _(mo, pm, recorded_knobs):
    recorded = recorded_knobs(pm.run.get("chain", {}))
    min_risk = mo.ui.slider(0.05, 1.0, step=0.05, value=recorded.min_risk_to_open, show_value=True, label="joint risk to open an incident (detection.min_risk_to_open)")
    z_open = mo.ui.slider(1.0, 20.0, step=0.5, value=recorded.z_open, show_value=True, label="robust z-score to flag a series (detection.z_open)")
    max_hypotheses = mo.ui.slider(1, 8, step=1, value=recorded.max_hypotheses, show_value=True, label="hypotheses kept (max_hypotheses)")
    dry_run = mo.ui.switch(value=recorded.dry_run, label="dry run (posture.dry_run)")
    require_approval = mo.ui.switch(value=recorded.require_approval, label="require approval (posture.require_approval)")
    mo.vstack(
        [
            mo.md("## What-if: replay this run with other thresholds or posture"),
            min_risk,
            z_open,
            max_hypotheses,
            mo.hstack([dry_run, require_approval], justify="start"),
        ]
    )
    return dry_run, max_hypotheses, min_risk, recorded, require_approval, z_open


@app.cell
def _(
    WhatIfKnobs,
    diff_lines,
    dry_run,
    knob_overrides,
    max_hypotheses,
    min_risk,
    mo,
    pm,
    recorded,
    require_approval,
    run_what_if,
    z_open,
):
    _chosen = WhatIfKnobs(
        min_risk_to_open=round(float(min_risk.value), 4),
        z_open=float(z_open.value),
        max_hypotheses=int(max_hypotheses.value),
        dry_run=bool(dry_run.value),
        require_approval=bool(require_approval.value),
    )
    _overrides = knob_overrides(recorded, _chosen)
    with mo.status.spinner(title="replaying the run"):
        _result = run_what_if(pm.path, _overrides)
    _set = " ".join(f"--set {k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in _overrides.items())
    mo.md(
        "### Decision diff\n\n"
        + (f"`sreagent replay {pm.path} {_set}`\n\n" if _overrides else "")
        + "\n".join(f"- {line}" for line in diff_lines(_result))
    ).callout(kind="warn" if _result.decisions is not None and _result.decisions.changed else "neutral")
    return


@app.cell
def _(mo):
    export = mo.ui.run_button(label="Export the postmortem report (static HTML)")
    export
    return (export,)


@app.cell
def _(Path, export, mo, pm, render_report):
    mo.stop(not export.value)
    _out = Path.cwd() / f"postmortem-{pm.run_id}.html"
    with mo.status.spinner(title="rendering the report"):
        render_report("postmortem", {"package": str(pm.path.resolve()), "output": str(_out)}, _out)
    mo.md(f"Wrote `{_out}` (self-contained: opens with no network).")
    return


if __name__ == "__main__":
    app.run()
