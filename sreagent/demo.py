"""The demo behind ``make demo``: sreagent end to end on this machine.

Live, when it can be (root on Linux): the controller (``sreagent serve``: SQLite run store, a
local evidence folder) and the collector (``sreagent collect``) start as processes on loopback,
a baseline is recorded, the ``cpu-hog`` fault is injected for real, the controller opens the
incident and the role chain explains it under the default posture (nothing executes); the run's
evidence package is exported, verified and replayed, the postmortem is rendered and the fault
is undone (sreagent.lab.live, docs/live-lab.md).

Otherwise, saying why, the synthetic demo: a scenario from the library (a runaway process
saturating a web VM's CPUs) is generated as the collector would send it: every batch is encoded
for the wire, decoded and validated as the controller does, and written to the Hive-partitioned
journal. The role chain then analyses the window under the default posture, the run is recorded
as an evidence package, verified, and replayed to prove it is identical.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Literal

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
LIVE_SCENARIO = "cpu-hog"
LIVE_DURATION_S = 45.0
"""The fault's upper bound; it is undone as soon as the incident's run is done."""
LIVE_BASELINE_S = 20.0
"""Normal telemetry before the fault: the chain's baselines come from it (and the whole demo
must stay under two minutes)."""
LIVE_STEADY_TIMEOUT_S = 20.0
"""How long the demo waits for a busy host to settle before it falls back to the synthetic
demo (a game day starts from a steady host; the whole demo must stay under two minutes)."""


def live_demo_unavailable() -> str | None:
    """Why the live demo cannot run on this machine, or None when it can."""
    if sys.platform != "linux":
        return f"live faults need Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return ("live faults need root (cgroups, process control); `sudo make demo` runs the "
                "live demo")
    from sreagent.lab.live import LabRefused, make_injector, new_tag

    try:
        make_injector(LIVE_SCENARIO, new_tag(), LIVE_DURATION_S).preflight()
    except LabRefused as refused:
        return str(refused)
    return None


def run_demo(out: Path, console: Console | None = None,
             mode: Literal["auto", "live", "synthetic"] = "auto") -> dict[str, Path]:
    """Run the demo into ``out`` (replacing an earlier demo there) and return its outputs:
    live when this machine allows it (``auto``), else the synthetic one, saying why."""
    console = console or Console(soft_wrap=True)
    if out.exists():
        shutil.rmtree(out)
    if mode != "synthetic":
        reason = live_demo_unavailable()
        if reason is None:
            outputs = run_live_demo(out / "live", console)
            if outputs is not None:
                return outputs
            reason = "the live run ended without an incident report (its notes say why)"
        if mode == "live":
            from sreagent.lab.live import LabRefused

            raise LabRefused(f"live demo not possible: {reason}")
        console.print(f"[yellow]live demo not run:[/] {reason}.\nRunning the synthetic demo "
                      "(a recorded scenario through the same chain) instead.", highlight=False)
    return run_synthetic_demo(out, console)


def run_live_demo(out: Path, console: Console) -> dict[str, Path] | None:
    """The live demo; its outputs, or None when it produced no incident report."""
    from sreagent.lab.live import HostNotSteady, run_live

    started = time.monotonic()

    def progress(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/dim] {message}", highlight=False)

    console.print(f"[bold]live demo[/]: {LIVE_SCENARIO} on this host, through the collector, "
                  "the controller and the role chain", highlight=False)
    with console.status("live demo", spinner="dots"):
        try:
            r = run_live(LIVE_SCENARIO, duration_s=LIVE_DURATION_S, baseline_s=LIVE_BASELINE_S,
                         steady_timeout_s=LIVE_STEADY_TIMEOUT_S, out=out, progress=progress)
        except HostNotSteady as busy:
            console.print(f"  note: {busy.message}", highlight=False)
            return None
    for note in r.notes:
        console.print(f"  note: {note}", highlight=False)
    if r.report_title is None or r.package is None:
        return None
    detected = f"{r.detection_seconds:.1f} s" if r.detection_seconds is not None else "-"
    console.print(f"[bold]{r.report_title}[/] (incident {r.incident_id}, opened by rule "
                  f"{r.rule} {detected} after the injection)", highlight=False)
    console.print(f"  injected: {r.injected_entity} (expect {r.expected_hypothesis})",
                  highlight=False)
    console.print(f"  top hypothesis: {r.top_hypothesis} at {r.top_entity} -> "
                  f"{'correct' if r.correct else 'WRONG'}", highlight=False)
    for line in r.proposal:
        console.print(f"  proposed {line}", highlight=False)
    if r.report_summary:
        console.print(f"  report: {r.report_summary}", highlight=False)
    console.print(f"  executed: {r.executed}; cleanup: {'ok' if r.cleanup_ok else 'FAILED'}; "
                  f"replay: { {True: 'identical', False: 'DIVERGED', None: '-'}[r.replay_identical] }",
                  highlight=False)
    outputs = {"live work folder": Path(r.workdir), "evidence package": Path(r.package)}
    if r.postmortem:
        outputs["postmortem report"] = Path(r.postmortem)
    return outputs


def run_synthetic_demo(out: Path, console: Console) -> dict[str, Path]:
    """The synthetic demo into ``out``; its outputs."""
    out.mkdir(parents=True, exist_ok=True)
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
