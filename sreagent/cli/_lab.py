"""``sreagent lab``: the scenario library (issue 5).

``list`` shows the scenarios, ``generate`` writes one (or ``--all``) as batches plus an evidence
package, ``run`` generates and hands the result to the role chain through
:func:`run_role_chain`, the single hook the role chain (issue 6) plugs into.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from sreagent.cli import app
from sreagent.errors import BadInput, NotLanded
from sreagent.scenarios import (
    GeneratedOutput,
    GeneratedScenario,
    ScenarioDefinition,
    fleet_schedule,
    generate,
    load_all,
    load_scenario,
    write_generated,
)

lab_app = typer.Typer(
    name="lab",
    help="The scenario library: seeded synthetic incidents with ground truth.",
    no_args_is_help=True,
)
app.add_typer(lab_app, name="lab")
console = Console()

ScenariosOption = typer.Option(
    None, "--scenarios", help="Scenario folder (default: $SREAGENT_SCENARIOS or fixtures/scenarios)."
)


def run_role_chain(scenario: GeneratedScenario, output: GeneratedOutput) -> dict[str, Any]:
    """Run the role chain on a generated scenario and return its verdict.

    This is the one hook between the lab and the role chain. The role chain (issue 6) provides
    ``sreagent.roles.lab_verdict(scenario, output) -> dict`` returning the per-scenario object
    of ``sreagent lab run --all --json`` (``id``, ``expected``, ``top``, ``top_entity``,
    ``correct``, ``detection_delay_samples``). Until it exists this raises
    :class:`~sreagent.errors.NotLanded` (exit 2), after the scenario has been written.
    """
    try:
        from sreagent.roles import lab_verdict
    except ImportError:
        raise NotLanded(
            f"generated {scenario.definition.id} into {output.root} (journal, evidence package "
            f"{output.package}, truth.json), but the role chain is not built yet (issue 6), so "
            "there is no verdict against the ground truth"
        ) from None
    verdict: dict[str, Any] = lab_verdict(scenario, output)
    return verdict


def _select(scenario: str | None, all_: bool, root: Path | None) -> list[ScenarioDefinition]:
    if all_ and scenario:
        raise BadInput("give a SCENARIO or --all, not both", field="scenario")
    if all_:
        return load_all(root)
    if not scenario:
        raise BadInput("name a SCENARIO (see `sreagent lab list`) or pass --all", field="scenario")
    return [load_scenario(scenario, root)]


def _with_seed(definition: ScenarioDefinition, seed: int | None) -> ScenarioDefinition:
    if seed is None:
        return definition
    return ScenarioDefinition.model_validate(
        {**definition.model_dump(by_alias=True), "seed": seed}
    )


def _summary(definition: ScenarioDefinition) -> dict[str, Any]:
    truth = definition.ground_truth
    return {
        "id": definition.id,
        "title": definition.title,
        "profile": definition.profile if isinstance(definition.profile, str) else definition.profile.name,
        "tags": definition.tags,
        "seed": definition.seed,
        "duration_s": definition.duration_s,
        "resolution_s": definition.resolution_s,
        "incident": truth.incident,
        "causes": [
            {"entity": c.entity, "fault_class": str(c.fault_class),
             "remediation": str(c.remediation), "cited_metrics": c.cited_metrics}
            for c in truth.causes
        ],
    }


@lab_app.command("list")
def list_command(
    as_json: bool = typer.Option(False, "--json", help="One JSON object on standard output."),
    scenarios: Path | None = ScenariosOption,
) -> None:
    """List every scenario with its ground truth."""
    definitions = load_all(scenarios)
    if as_json:
        print(json.dumps({"scenarios": [_summary(d) for d in definitions]}, indent=2))
        return
    table = Table("id", "profile", "steps", "fault class", "root cause", "remediation")
    for d in definitions:
        s = _summary(d)
        causes = s["causes"] or [{"fault_class": "(control: no incident)", "entity": "",
                                  "remediation": ""}]
        table.add_row(d.id, s["profile"], f"{d.steps} x {d.resolution_s}s",
                      "\n".join(c["fault_class"] for c in causes),
                      "\n".join(c["entity"] for c in causes),
                      "\n".join(c["remediation"] for c in causes))
    console.print(table)


def _generate_into(definition: ScenarioDefinition, out: Path, wire: bool) -> tuple[GeneratedScenario, GeneratedOutput]:
    scenario = generate(definition)
    output = write_generated(scenario, out, wire=wire)
    return scenario, output


@lab_app.command("generate")
def generate_command(
    scenario: str | None = typer.Argument(None, help="Scenario id, unique prefix or path."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (with --all: one subfolder per scenario)."),
    all_: bool = typer.Option(False, "--all", help="Generate every scenario."),
    seed: int | None = typer.Option(None, "--seed", help="Override the definition's seed."),
    wire: bool = typer.Option(False, "--wire", help="Also write each batch's Arrow IPC wire body."),
    scenarios: Path | None = ScenariosOption,
) -> None:
    """Generate a scenario's batches (journal) and evidence package."""
    definitions = [_with_seed(d, seed) for d in _select(scenario, all_, scenarios)]
    for definition in definitions:
        target = out / definition.id if all_ else out
        generated, output = _generate_into(definition, target, wire)
        rows = generated.samples.num_rows
        console.print(f"{definition.id}: {len(generated.frames)} batches, {rows} samples -> "
                      f"{output.package}", highlight=False)


@lab_app.command("run")
def run_command(
    scenario: str | None = typer.Argument(None, help="Scenario id, unique prefix or path."),
    out: Path = typer.Option(Path("out/lab"), "-o", "--out", help="Where the generated scenarios go."),
    all_: bool = typer.Option(False, "--all", help="Run every scenario."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on standard output."),
    seed: int | None = typer.Option(None, "--seed", help="Override the definition's seed."),
    scenarios: Path | None = ScenariosOption,
) -> None:
    """Generate a scenario and run the role chain on it; print the verdict."""
    definitions = [_with_seed(d, seed) for d in _select(scenario, all_, scenarios)]
    results = []
    for definition in definitions:
        target = out / f"{definition.id}-seed{definition.seed}"
        if (target / "truth.json").exists():
            import shutil

            shutil.rmtree(target)  # a rerun replaces its own earlier output
        generated, output = _generate_into(definition, target, wire=False)
        results.append(run_role_chain(generated, output))
    if as_json:
        print(json.dumps({"scenarios": results, "summary": _summary_of(results)}, indent=2))
        return
    for r in results:
        console.print(_verdict_line(r), highlight=False)
    if len(results) > 1:
        console.print_json(json.dumps(_summary_of(results)))


def _summary_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The role chain's summary of many verdicts (accuracy, localisation, false positives)."""
    from sreagent.chain.lab import lab_summary  # present whenever run_role_chain succeeded

    summary: dict[str, Any] = lab_summary(results)
    return summary


def _verdict_line(r: dict[str, Any]) -> str:
    if r.get("expected") is None:
        outcome = "no incident (correct)" if r.get("correct") else (
            f"FALSE POSITIVE: {r.get('top')} at {r.get('top_entity')}")
        return f"{r['id']}: control; {outcome}"
    delay = r.get("detection_delay_samples")
    return (f"{r['id']}: expected {r['expected']} at {r.get('expected_entity')}; top "
            f"{r.get('top')} at {r.get('top_entity')} -> "
            f"{'correct' if r.get('correct') else 'WRONG'}"
            f"{'' if r.get('localised') else ' (not localised)'}"
            f"{'' if delay is None else f', detected {delay} samples after visible'}")


@lab_app.command("fleet")
def fleet_command(
    servers: int = typer.Option(64, "--servers", min=1, help="GPU servers in the fleet."),
    days: float = typer.Option(30.0, "--days", min=0.01, help="Length of the schedule."),
    seed: int = typer.Option(0, "--seed", help="Seed of the schedule."),
) -> None:
    """Print a seeded GPU fleet fault schedule calibrated on the InfiniteHBD trace (JSON)."""
    episodes = fleet_schedule(seed, servers, days)
    print(json.dumps({"servers": servers, "days": days, "seed": seed, "episodes": [
        {"server": e.server, "fault_class": str(e.fault_class), "start_s": e.start_s,
         "duration_s": e.duration_s} for e in episodes]}, indent=2))


def _record_one(definition: ScenarioDefinition, out: str, resolution_s: int | None) -> str:
    from sreagent.replay._lab import record_scenario

    record_scenario(definition, out, resolution_s=resolution_s)
    return out


@lab_app.command("record")
def record_command(
    scenario: str | None = typer.Argument(None, help="Scenario id, unique prefix or path."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder that gets one package per scenario."),
    all_: bool = typer.Option(False, "--all", help="Record every scenario."),
    resolution: int | None = typer.Option(None, "--resolution", help="Override the scenarios' "
                                          "resolution in seconds (coarser: smaller packages)."),
    workers: int = typer.Option(0, help="Parallel recordings (default: one per core)."),
    scenarios: Path | None = ScenariosOption,
) -> None:
    """Run the role chain on scenarios and record each run as a replayable evidence package."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    from rich.progress import Progress

    definitions = _select(scenario, all_, scenarios)
    targets = [(d.id, out / d.id) for d in definitions]
    for _, target in targets:
        if target.exists():
            raise BadInput("already exists; packages are written once", path=str(target))
    jobs = workers or min(len(targets), os.cpu_count() or 1)
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("recording", total=len(targets))
        with ProcessPoolExecutor(max_workers=max(jobs, 1)) as pool:
            futures = [pool.submit(_record_one, d, str(target), resolution)
                       for d, (_, target) in zip(definitions, targets, strict=True)]
            for future in futures:
                console.print(f"recorded {future.result()}", highlight=False)
                progress.advance(task)


@lab_app.command("live")
def live_command(
    scenario: str = typer.Argument(..., help="cpu-hog, cgroup-throttle, memory-oom, "
                                   "io-saturation, net-loss, fd-leak or noisy-neighbour."),
    duration: float = typer.Option(60.0, "--duration", min=1.0, max=600.0,
                                   help="Longest the fault runs (s); it ends earlier once the "
                                   "incident's run is done."),
    approve: bool = typer.Option(False, "--approve", help="Approve the run's safe_reversible "
                                 "remediation through the API (only actions on what the lab "
                                 "created); it is executed once and verified."),
    controller: str | None = typer.Option(None, "--controller", help="Use this running "
                                          "controller instead of starting one."),
    token: str = typer.Option("", "--token", envvar="SREAGENT_TOKEN", help="Bearer token for "
                              "--controller (scopes read, plus ingest for the collector and "
                              "approve for --approve)."),
    no_collector: bool = typer.Option(False, "--no-collector", help="Do not start a collector "
                                      "(one already pushes this host to --controller)."),
    out: Path = typer.Option(Path("out/lab-live"), "-o", "--out", help="Work folder: configs, "
                             "logs, journal, the evidence package, the postmortem."),
    baseline: float = typer.Option(30.0, "--baseline", min=0.0, help="Seconds of normal "
                                   "telemetry recorded before the injection."),
    steady_timeout: float = typer.Option(60.0, "--steady-timeout", min=0.0, help="After the "
                                         "baseline, how long to wait for incidents already on "
                                         "the host to close before giving up (the host is not "
                                         "steady: nothing is injected)."),
    interval: float = typer.Option(1.0, "--interval", min=0.2, help="Collector interval (s)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on standard output."),
) -> None:
    """Inject a real fault on this host and watch the collector, controller and role chain
    catch and explain it (root; docs/live-lab.md)."""
    from sreagent.errors import CheckFailed
    from sreagent.lab.live import run_live

    err = Console(stderr=True)
    started = time.monotonic()

    def progress(message: str) -> None:
        err.print(f"[dim]{time.monotonic() - started:6.1f}s[/dim] {message}", highlight=False)

    with err.status("live lab", spinner="dots"):
        result = run_live(scenario, duration_s=duration, approve=approve,
                          controller_url=controller, token=token,
                          start_collector_process=not no_collector, out=out,
                          baseline_s=baseline, steady_timeout_s=steady_timeout,
                          interval_s=interval, progress=progress)
    if as_json:
        print(json.dumps(result.json_object(), indent=2))
    else:
        _print_live(result)
    problems = live_problems(result, approved=approve)
    if problems:
        raise CheckFailed(f"live {scenario}: " + "; ".join(problems))


def live_problems(result: Any, *, approved: bool) -> list[str]:
    """What makes a live run a failed game day (exit 1): no incident, a wrong answer, an
    execution without approval, cleanup that left something, a replay that diverged."""
    problems = []
    if not result.incident_opened:
        problems.append("no incident opened")
    elif not result.correct:
        problems.append(f"top hypothesis {result.top_hypothesis} at {result.top_entity}, "
                        f"expected {result.expected_hypothesis} at {result.injected_entity}")
    if result.executed and not approved:
        problems.append("an action was executed without --approve")
    if not result.cleanup_ok:
        problems.append("cleanup left something behind")
    if result.replay_identical is False:
        problems.append("the evidence package did not replay identically")
    return problems


def _print_live(r: Any) -> None:
    table = Table(title=f"live lab: {r.scenario}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    detection = f"{r.detection_seconds:.1f} s" if r.detection_seconds is not None else "-"
    rows = [
        ("injected", f"{r.injected_entity} (expect {r.expected_hypothesis})"),
        ("incident", f"{r.incident_id or 'none'} (rule {r.rule or '-'}), after {detection}"),
        ("top hypothesis", f"{r.top_hypothesis} at {r.top_entity} "
         f"(confidence {r.top_confidence if r.top_confidence is not None else '-'}) -> "
         f"{'correct' if r.correct else 'WRONG'}"),
        ("ranking", "\n".join(r.ranking) or "-"),
        ("proposal", "\n".join(r.proposal) or "-"),
        ("executed", f"{r.executed} (verification: {r.verification or '-'})"),
        ("execution", "\n".join(r.execution) or "-"),
        ("verdicts", "\n".join(
            f"{v['metric']} on {v['entity']}: {v['verdict']} ({v['test']}, p={v['p_value']}, "
            f"effect={v['effect_size']}, n={v['before_n']}/{v['after_n']}; {v['reason']})"
            for v in r.verdicts) or "-"),
        ("cleanup", "ok" if r.cleanup_ok else "LEFT SOMETHING (see notes)"),
        ("evidence package", f"{r.package or '-'} (replay "
         f"{ {True: 'identical', False: 'DIVERGED', None: '-'}[r.replay_identical] })"),
        ("postmortem", r.postmortem or "-"),
    ]
    effect = r.remediation_effect
    if effect is not None:
        rows.append(("kernel throttling", "; ".join(
            f"{when}: {w.throttled}/{w.periods} CFS periods at quota {w.quota_cores} CPU"
            for when, w in (("before", effect.before), ("after", effect.after))
            if w is not None)))
    for what, value in rows:
        table.add_row(what, value)
    console.print(table)
    for note in r.notes:
        console.print(f"note: {note}", highlight=False)
