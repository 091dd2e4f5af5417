"""The demo behind ``make demo``: the longest path through sreagent that is built today.

A scenario from the library (a runaway process saturating a web VM's CPUs) is generated as
the collector would send it: every batch is encoded for the wire, decoded and validated as the
controller does, and written to the Hive-partitioned journal. The role chain then analyses the
window under the default posture (nothing executes), the run is recorded as an evidence
package, verified, and replayed to prove it is identical. Later work replaces the synthetic
telemetry with the live collector and controller on this host (issue 10).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from sreagent.artifacts import IncidentReport, RemediationProposal, RootCauseHypothesis
from sreagent.chain import ChainConfig, live_activities
from sreagent.chain._runner import DEFAULT_RUNBOOKS
from sreagent.evidence import JournalWriter, verify_package
from sreagent.replay import Replayer, RunInputs, record_run, run_chain, runbook_texts
from sreagent.runtime import EvidenceView
from sreagent.scenarios import generate, load_scenario
from sreagent.telemetry import decode_batch, encode_batch

DEMO_SCENARIO = "01_cpu_saturation_runaway"
DEMO_RESOLUTION_S = 5


def run_demo(out: Path, console: Console | None = None) -> dict[str, Path]:
    """Run the demo into ``out`` (replacing an earlier demo there) and return its outputs."""
    console = console or Console(soft_wrap=True)
    if out.exists():
        shutil.rmtree(out)
    definition = load_scenario(DEMO_SCENARIO)
    definition = definition.model_validate({**definition.model_dump(),
                                            "resolution_s": DEMO_RESOLUTION_S})
    scenario = generate(definition)
    journal_root = out / "journal"
    writer = JournalWriter(journal_root, writer_id="demo")
    frames = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("wire encode, validate, journal", total=len(scenario.frames))
        for frame in scenario.frames:
            decoded = decode_batch(encode_batch(frame.to_batch()))
            writer.append(decoded)
            frames.append(decoded)
            progress.advance(task)
        writer.flush()
    view = EvidenceView.from_frames(frames)
    inputs = RunInputs(run_id=scenario.run_id, host=view.host,
                       window=(view.start_ns, view.end_ns), chain=ChainConfig(),
                       runbooks=runbook_texts(DEFAULT_RUNBOOKS))
    result = run_chain(inputs, view, activities=live_activities())
    package = out / "evidence" / scenario.run_id
    record_run(package, inputs=inputs, result=result, source="demo", frames=frames,
               extra_config={"lab": scenario.config().get("lab", {})})
    verify_package(package)
    replay = Replayer().replay(package)

    console.print(f"[bold]{definition.title}[/] ({len(frames)} batches, host {view.host})")
    hypothesis = result.of_kind("root_cause_hypothesis")
    if hypothesis is not None and isinstance(hypothesis.payload, RootCauseHypothesis):
        for h in hypothesis.payload.hypotheses[:3]:
            console.print(f"  #{h.rank} {h.fault_class} at {h.entity} "
                          f"(confidence {h.confidence:.2f}): {h.title}", highlight=False)
    proposal = result.of_kind("remediation_proposal")
    plan = result.of_kind("execution_plan")
    if proposal is not None and plan is not None and isinstance(proposal.payload,
                                                                RemediationProposal):
        decisions = {d.action_id: d.decision for d in plan.payload.decisions}  # type: ignore[union-attr]
        for a in proposal.payload.actions:
            console.print(f"  proposed {a.action} on {a.target} ({a.safety_class}): "
                          f"{decisions.get(a.action_id)}", highlight=False)
    report = result.of_kind("incident_report")
    if report is not None and isinstance(report.payload, IncidentReport):
        console.print(f"  report: {report.payload.title}; verification "
                      f"{report.payload.verification}", highlight=False)
    truth = scenario.truth.primary
    console.print(f"  ground truth: {truth.fault_class} at {truth.entity}" if truth else
                  "  ground truth: no fault", highlight=False)
    console.print(f"  replay: {'identical' if replay.identical else 'DIVERGED'} "
                  f"({len(replay.recorded)} artifacts)", highlight=False)
    return {"journal": journal_root, "evidence package": package}
