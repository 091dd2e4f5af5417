"""``run_live``: one game-day run of a live fault, end to end through the real product.

Controller (``sreagent serve``) and collector (``sreagent collect``) run as separate processes
on loopback (or the operator's running controller is used), a baseline is recorded, the fault
is injected, the incident the controller opens is awaited through the API, its run's top
hypothesis and proposal are read back, an approval is given only when asked for (and only for
actions on what the lab created), the fault is undone, the run's evidence package is exported,
verified and replayed, and the postmortem report is rendered when that command exists.
"""

from __future__ import annotations

import io
import os
import shlex
import socket
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from sreagent.lab.live._client import ControllerClient
from sreagent.lab.live._effect import RemediationEffect, cpu_dir_of, throttle_window
from sreagent.lab.live._errors import LabFailed, LabRefused
from sreagent.lab.live._host import LabHost
from sreagent.lab.live._injector import MAX_DURATION_S, Plan
from sreagent.lab.live._names import new_tag
from sreagent.lab.live._registry import INJECTORS, make_injector
from sreagent.lab.live._report import postmortem
from sreagent.lab.live._rules import game_day_rules, parse_oom_kills, whole_disks
from sreagent.lab.live._run import Injection, run_injection
from sreagent.lab.live._stack import (
    Service,
    controller_config,
    free_port,
    new_token,
    start_collector,
    start_controller,
    stop_all,
    wait_ready,
)
from sreagent.lab.live._steady import HostNotSteady, unsteady, wait_steady

E2E_OPTIONS: dict[str, dict[str, Any]] = {
    "net-loss": {"topology": "host-peer", "send_kbit": 4000, "rate": "8mbit"},
    "memory-oom": {"limit_mib": 192, "leak_mib_per_s": 16},
}
"""Options the end-to-end run gives an injector. net-loss: a host collector sees TCP counters of
the host's namespace only, so the sender runs there (docs/live-lab.md); it sends a steady
4 Mbit/s through an 8 Mbit/s link, so the healthy pre-roll retransmits nothing and the loss
is the only source of retransmits. memory-oom: a leak the
1 s process scan sees growing for about 12 s before the kill (the default one is killed in 4 s,
too few samples for the chain to see the process's own growth)."""

APPROVE_OPTIONS: dict[str, dict[str, Any]] = {
    "cgroup-throttle": {"unit": True, "demand_cores": 0.3},
}
"""Options an ``--approve`` run adds. cgroup-throttle: a service that needs 0.3 CPU in a cgroup
capped at 0.2, named like a systemd scope, so the planner can propose
``raise_cgroup_cpu_quota`` on it (the unit is its name) and the raised quota (twice the old
one) really ends the throttling: a spinner would be throttled at any quota below a CPU."""

BEFORE_APPROVAL_S = 25.0
"""How long the run lets the fault go on before it approves (the kernel's "before" window):
the verifier compares at least ``verification.min_samples`` (20) samples on each side of the
action, and the lab's cgroup exists only since the injection."""
AFTER_ACTION_S = 20.0
"""The kernel's "after" window, from the moment the action's execution is recorded (the
controller meanwhile waits ``workflow.verify_after_s`` for the verifier's own after side)."""

PREROLL = ("net-loss",)
"""Scenarios whose fault starts after a healthy pre-roll of the same workload (their
``impair_after_s`` option), which then doubles as the baseline."""

FINAL_STATES = ("completed", "failed", "cancelled")
RUN_TIMEOUT_S = 120.0
"""How long a run may take from incident to a final state (or to awaiting approval): the
chain runs in seconds; a loaded 2-core machine is slow, and waiting costs only on failure."""
FIRST_BATCH_TIMEOUT_S = 120.0
STEADY_TIMEOUT_S = 60.0
"""How long the run waits, after the baseline, for incidents on the host to close before it
gives up on a host that is not steady (docs/live-lab.md, "Steady state")."""

Progress = Callable[[str], None]


class LiveResult(BaseModel):
    """What one ``sreagent lab live`` run found (the ``--json`` object)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scenario: str
    tag: str
    """The run tag: everything the fault created was named ``sreagent-lab-<tag>``."""
    workdir: str
    """Configs, logs, journal, package and postmortem of this run."""
    injected_entity: str
    expected_hypothesis: str
    incident_opened: bool
    detection_seconds: float | None
    answer_seconds: float | None
    """Seconds from the fault running to its incident's run done (completed, failed, or
    awaiting approval): how long the game day waited for the answer."""
    top_hypothesis: str | None
    top_entity: str | None
    top_confidence: float | None
    ranking: list[str]
    """The chain's first three hypotheses, ``class at entity (confidence)``, best first."""
    correct: bool
    """Top class is the expected one and its entity is the injected one or a related one."""
    executed: bool
    """Any action of the run's execution_result ran for real (never under the default posture)."""
    execution: list[str]
    """``action target: outcome`` per result of the run's execution_result."""
    verification: str | None
    verdicts: list[dict[str, Any]]
    """The verifier's verdicts (action, metric, entity, verdict, test, p_value, effect_size,
    sample counts, reason) as recorded in the run's verification_result."""
    remediation_effect: RemediationEffect | None
    """With ``--approve`` on cgroup-throttle: throttling of the lab's cgroup in the kernel's own
    ``cpu.stat`` over equal windows before the approval and after the action ran."""
    report_title: str | None
    """The run's incident_report: its title and summary."""
    report_summary: str | None
    cleanup_ok: bool
    package: str | None
    replay_identical: bool | None
    """Whether the exported package replays identically (the controller records the chain's
    inputs); None when there is no package (the run did not complete) or it cannot replay."""
    postmortem: str | None
    incident_id: str | None
    run_id: str | None
    run_state: str | None
    rule: str | None
    """The alert rule that opened the incident."""
    proposal: list[str]
    """``action target (safety class): decision`` per proposed action."""
    notes: list[str]
    """Anything the run could not do, said plainly (no package, not replayable ...)."""

    def json_object(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


@dataclass
class _State:
    """What the run learnt so far (filled step by step; the result is built from it)."""

    notes: list[str] = field(default_factory=list)
    incident: dict[str, Any] | None = None
    detection_s: float | None = None
    run: dict[str, Any] | None = None
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    injection: Injection | None = None
    injected_entity: str = ""
    related: list[str] = field(default_factory=list)
    injected_ns: int = 0
    answer_s: float | None = None
    quota_dir: Path | None = None
    """The lab cgroup's CPU directory, when an approved remediation's effect is measured."""
    effect: RemediationEffect | None = None


def _payload(artifacts: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    for a in reversed(artifacts):
        if a.get("kind") == kind:
            return dict(a.get("payload") or {})
    return None


def _entity_matches(entity: str | None, injected: str, related: list[str]) -> bool:
    return entity is not None and (entity == injected or entity in related)


def lab_targets_only(artifacts: list[dict[str, Any]], allowed: list[str]) -> tuple[bool, list[str]]:
    """Whether every action waiting for approval targets one of ``allowed`` (glob patterns);
    and the targets that do not. The lab approves nothing that touches what it did not create."""
    plan = _payload(artifacts, "execution_plan") or {}
    proposal = _payload(artifacts, "remediation_proposal") or {}
    target_of = {a["action_id"]: a["target"] for a in proposal.get("actions", [])}
    foreign = sorted(
        {
            target_of.get(d["action_id"], "?")
            for d in plan.get("decisions", [])
            if d.get("decision") == "approval_required"
            and not any(fnmatchcase(target_of.get(d["action_id"], "?"), p) for p in allowed)
        }
    )
    return not foreign, foreign


def execution_lines(artifacts: list[dict[str, Any]]) -> list[str]:
    """``action target: outcome`` per result of the run's execution_result."""
    proposal = _payload(artifacts, "remediation_proposal") or {}
    action_of = {a["action_id"]: f"{a['action']} {a['target']}"
                 for a in proposal.get("actions", [])}
    execution = _payload(artifacts, "execution_result") or {}
    return [f"{action_of.get(r['action_id'], r['action_id'])}: {r['outcome']}"
            for r in execution.get("results", [])]


def proposal_lines(artifacts: list[dict[str, Any]]) -> list[str]:
    plan = _payload(artifacts, "execution_plan") or {}
    decided = {d["action_id"]: d["decision"] for d in plan.get("decisions", [])}
    proposal = _payload(artifacts, "remediation_proposal") or {}
    return [
        f"{a['action']} {a['target']} ({a['safety_class']}): {decided.get(a['action_id'], '?')}"
        for a in proposal.get("actions", [])
    ]


def _wait_first_batches(client: ControllerClient, host: str, collector: Service | None,
                        baseline_s: float, progress: Progress) -> None:
    """Wait until the host has reported, then for ``baseline_s`` more (the baseline window)."""
    start = time.monotonic()
    while True:
        state = client.host_state(host)
        if state and state.get("batches", 0) > 0:
            break
        if collector is not None and not collector.running():
            raise LabFailed(
                f"the collector exited with code {collector.popen.returncode}; its log "
                f"({collector.log_path}) ends:\n{collector.log_tail()}"
            )
        if time.monotonic() - start > FIRST_BATCH_TIMEOUT_S:
            raise LabFailed(f"no batch from host {host!r} reached the controller within "
                            f"{FIRST_BATCH_TIMEOUT_S:.0f} s (is a collector pushing to it?)")
        time.sleep(0.5)
    if baseline_s > 0:
        progress(f"baseline: recording {baseline_s:.0f} s of normal telemetry from {host}")
        time.sleep(baseline_s)


def _wait_incident(client: ControllerClient, host: str, since_ns: int, ignore: set[str],
                   injection: Injection, progress: Progress) -> dict[str, Any] | None:
    """The first incident on ``host`` opened at or after ``since_ns`` (poll until the fault's
    deadline). Incidents open before the injection are never taken for the fault's."""
    while True:
        fresh = [
            i for i in client.incidents()
            if i["host"] == host and i["incident_id"] not in ignore
            and int(i["opened_at_ns"]) >= since_ns
        ]
        if fresh:
            return min(fresh, key=lambda i: int(i["opened_at_ns"]))
        if injection.remaining_s() <= 0:
            return None
        time.sleep(0.5)


def _wait_run(client: ControllerClient, run_id: str, until: tuple[str, ...],
              timeout_s: float = RUN_TIMEOUT_S) -> dict[str, Any]:
    start = time.monotonic()
    while True:
        run = client.run(run_id)
        if run["state"] in until or time.monotonic() - start > timeout_s:
            return run
        time.sleep(0.5)


def export_package(client: ControllerClient, run_id: str, into: Path) -> Path:
    """Download the run's evidence package (the controller's zip) into ``into/<run_id>``."""
    data = client.evidence_zip(run_id)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for name in z.namelist():
            target = (into / name).resolve()
            if not target.is_relative_to(into.resolve()):
                raise LabFailed(f"the evidence zip of {run_id} holds a path outside it: {name}")
        z.extractall(into)
    return into / run_id


def replay_package(path: Path) -> tuple[bool | None, str]:
    """Verify the package and replay it; (identical, note). None when it cannot be replayed."""
    from sreagent.errors import BadInput, CheckFailed
    from sreagent.evidence import verify_package
    from sreagent.replay import Replayer

    verify_package(path)
    try:
        result = Replayer().replay(path)
    except CheckFailed as err:  # e.g. ActivityNotRecorded: the replayed chain left the recording
        return False, f"replay diverged: {err}"
    except BadInput as err:
        return None, f"the package does not replay: {err}"
    if result.identical:
        return True, "replay: identical"
    first = result.divergences[0] if result.divergences else None
    return False, f"replay diverged: {first.describe() if first is not None else '?'}"


def run_live(
    scenario: str,
    *,
    duration_s: float = 60.0,
    approve: bool = False,
    controller_url: str | None = None,
    token: str = "",
    start_collector_process: bool = True,
    out: Path = Path("out/lab-live"),
    baseline_s: float = 30.0,
    steady_timeout_s: float = STEADY_TIMEOUT_S,
    interval_s: float = 1.0,
    window_s: float | None = None,
    options: dict[str, Any] | None = None,
    render_postmortem: bool = True,
    host: LabHost | None = None,
    progress: Progress = lambda message: None,
) -> LiveResult:
    """Run ``scenario`` live, end to end; see the module docstring and docs/live-lab.md.

    A started controller analyses a window of ``window_s`` (default ``baseline_s + 10``)
    ending when the incident opens. The role chain takes its robust baselines from the first
    30 % of the window, so the window must start inside the telemetry recorded before the
    fault: a longer window would begin before the collector did and leave the baseline part
    empty; ``baseline_s`` of normal telemetry keeps it filled for detections up to about
    ``0.7 * window_s`` after the injection.

    Before injecting, the host must be steady: no incident open on it and none closed in the
    last ``baseline_s`` (waiting up to ``steady_timeout_s`` for that); otherwise the run fails
    with :class:`HostNotSteady` naming the incidents, and nothing is injected.
    """
    if scenario not in INJECTORS:
        raise LabRefused(f"unknown live scenario {scenario!r}; known: {', '.join(INJECTORS)}")
    if os.geteuid() != 0:
        raise LabRefused(f"live scenario {scenario!r} needs root; nothing was done")
    host = host or LabHost()
    tag = new_tag()
    window = window_s or baseline_s + 10.0
    opts = {**E2E_OPTIONS.get(scenario, {}), **(APPROVE_OPTIONS.get(scenario, {}) if approve
                                                  else {}), **(options or {})}
    if scenario in PREROLL and baseline_s > 0:
        # The healthy pre-roll outlasts the analysis window: the link's creation is never in
        # it, and its traffic has a baseline there.
        opts.setdefault("impair_after_s", window + 2.0)
    # Plan and preflight first: a refusal (a tool missing, a name taken) starts nothing.
    planned = make_injector(scenario, tag, duration_s, host=host, **opts)
    plan = planned.plan()
    planned.preflight()
    workdir = (out / f"{scenario}-{tag}").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    # Which host the collector names in its batches (its default: the system's host name).
    host_name = socket.gethostname()
    cgroups = sorted({f"cgroup/{r.name}" for r in plan.resources if r.kind == "cgroup"})
    cgroup_patterns = [*cgroups, *(f"{c}/*" for c in cgroups)]
    # The executor's allowlist. The workers' pids are unknown until the injection, so a fault
    # in a process allows process targets (the lab's own approval check then keeps to its
    # workers); a fault in a cgroup allows only the lab's cgroups, so the gate blocks actions
    # on any other process the chain also suspects, and the approval cannot reach them.
    lab_patterns = [*(["process/*"] if plan.entity.startswith("process/") else []),
                    *cgroup_patterns]
    state = _State()
    services: list[Service] = []
    try:
        client, collector = _start_stack(
            services, workdir, plan, host, controller_url=controller_url, token=token,
            start_collector_process=start_collector_process, approve=approve,
            lab_patterns=lab_patterns, interval_s=interval_s,
            systemctl=_systemctl_stand_in(workdir, host) if approve else None,
            window_s=window, progress=progress)
        preroll = opts.get("impair_after_s", 0.0)
        _wait_first_batches(client, host_name, collector, 0.0 if preroll else baseline_s,
                            progress)
        waited = wait_steady(client.incidents, host_name, quiet_s=baseline_s,
                             timeout_s=steady_timeout_s, progress=progress)
        progress(f"steady state: no incident on {host_name}"
                 + (f" (after waiting {waited:.0f} s)" if waited >= 1 else ""))
        with run_injection(scenario, min(MAX_DURATION_S, duration_s + preroll), options=opts,
                           host=host, tag=tag) as inj:
            state.injection = inj
            state.injected_entity = inj.injected_entity
            state.related = [*inj.related_entities, *_cgroups_of(inj)]
            if preroll:
                progress(f"baseline: {scenario} carries traffic over a healthy link for "
                         f"{preroll:.0f} s before the loss starts")
            injected_ns = _fault_start(inj, preroll)
            state.injected_ns = injected_ns
            if approve and scenario in APPROVE_OPTIONS:
                state.quota_dir = cpu_dir_of(host, inj.injected_entity.removeprefix("cgroup/"))
            # Still steady when the fault began (a pre-roll lasts a while): an incident opened
            # before it would swallow the fault's alarm, so the run stops here (and undoes).
            before = [i for i in client.incidents() if i["host"] == host_name
                      and int(i["opened_at_ns"]) < injected_ns]
            still = unsteady(before, host_name, injected_ns, preroll)
            if not still.steady:
                raise HostNotSteady(
                    f"host {host_name} left its steady state before the fault began: "
                    f"{still.describe(injected_ns)}; run again on a quiet host")
            ignore = {i["incident_id"] for i in before}
            progress(f"injected {scenario} ({inj.injected_entity}, expect "
                     f"{inj.plan.fault_class}); waiting up to {duration_s:.0f} s for an incident")
            incident = _wait_incident(client, host_name, injected_ns, ignore, inj, progress)
            if incident is not None:
                state.incident = incident
                state.detection_s = (int(incident["opened_at_ns"]) - injected_ns) / 1e9
                progress(f"incident {incident['incident_id']} opened by rule "
                         f"{incident['fingerprint'].split(':', 1)[-1]} after "
                         f"{state.detection_s:.1f} s; waiting for its run")
                _follow_run(client, incident, state, approve, lab_patterns, progress)
            else:
                state.notes.append(f"no incident opened within the fault's {duration_s:.0f} s")
            progress("undoing the fault")
        return _finish(client, state, plan.fault_class, scenario, tag, workdir,
                       render_postmortem, progress)
    finally:
        stop_all(services)


def _systemctl_stand_in(workdir: Path, host: LabHost) -> Path:
    """``<workdir>/bin/systemctl``: the lab's stand-in (``_systemctl.py``) for its own scopes,
    put first on a lab-started controller's PATH (the lab's cgroup is no systemd unit, and
    this host may have no systemd at all; docs/live-lab.md, "Approved remediation")."""
    mounts = host.cgroup_mounts()
    cpu_root = mounts.v1.get("cpu") or mounts.v2
    acct_root = mounts.v1.get("cpuacct") or cpu_root
    if cpu_root is None or acct_root is None:
        raise LabRefused("no cgroup CPU hierarchy for the approved remediation")
    script = Path(__file__).with_name("_systemctl.py")
    bindir = workdir / "bin"
    bindir.mkdir(exist_ok=True)
    path = bindir / "systemctl"
    path.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(script))} "
                    f"--cpu-root {shlex.quote(str(cpu_root))} --cpuacct-root "
                    f"{shlex.quote(str(acct_root))} \"$@\"\n")
    path.chmod(0o755)
    return bindir


def _start_stack(services: list[Service], workdir: Path, plan: Plan, host: LabHost, *,
                 controller_url: str | None, token: str, start_collector_process: bool,
                 approve: bool, lab_patterns: list[str], interval_s: float, window_s: float,
                 systemctl: Path | None, progress: Progress
                 ) -> tuple[ControllerClient, Service | None]:
    """Start (or reach) the controller and start the collector; appends what it started to
    ``services`` as it goes, so the caller stops them even when this fails half way."""
    started = controller_url is None
    if controller_url is None:
        token = new_token()
        rules = game_day_rules(
            plan, disks=whole_disks(host.sys),
            oom_kills_at_baseline=parse_oom_kills((host.proc / "vmstat").read_bytes()))
        port = free_port()
        controller_url = f"http://127.0.0.1:{port}"
        progress(f"starting the controller on {controller_url} ({len(rules)} alert rules, "
                 f"posture: {'execute after approval' if approve else 'dry run'})")
        services.append(start_controller(workdir, controller_config(
            workdir, port=port, token=token, rules=rules, window_s=window_s,
            dry_run=not approve, target_allowlist=lab_patterns if approve else []),
            path_first=systemctl))
    client = ControllerClient(controller_url, token)
    collector: Service | None = None
    if start_collector_process:
        # Started at once: until the controller answers, it spools (nothing is lost).
        progress(f"starting the collector (every {interval_s:g} s) pushing to {controller_url}")
        collector = start_collector(workdir, url=controller_url, token=token,
                                    interval_s=interval_s)
        services.insert(0, collector)  # stopped first, so its last batches are acknowledged
    if started:
        waited = wait_ready(services[-1], client)
        progress(f"controller ready in {waited:.1f} s")
    elif not client.ready():
        raise LabFailed(f"the controller at {controller_url} is not ready (/readyz)")
    return client, collector


def _fault_start(inj: Injection, preroll_s: float) -> int:
    """Wall-clock ns the fault began: at once for most injectors, after the healthy pre-roll
    for a delayed one (polled; a pre-roll that never ends fails the run)."""
    deadline = time.monotonic() + preroll_s + 60.0
    while (started := inj.injector.fault_started_ns()) is None:
        if time.monotonic() > deadline:
            raise LabFailed(f"{inj.plan.injector}: the fault did not start within "
                            f"{preroll_s + 60:.0f} s")
        time.sleep(0.1)
    return started


def _cgroups_of(inj: Injection) -> list[str]:
    """The lab cgroups of a run as entities (a process in one may be blamed through it)."""
    return sorted({f"cgroup/{r.name}" for r in inj.plan.resources if r.kind == "cgroup"})


def _follow_run(client: ControllerClient, incident: dict[str, Any], state: _State,
                approve: bool, lab_patterns: list[str], progress: Progress) -> None:
    # The controller opens the incident, then attaches the run it starts: poll for the link.
    run_id = incident.get("run_id")
    start = time.monotonic()
    while not run_id and time.monotonic() - start < RUN_TIMEOUT_S:
        time.sleep(0.25)
        run_id = client.incident(incident["incident_id"]).get("run_id")
    if not run_id:
        state.notes.append(f"the incident got no run within {RUN_TIMEOUT_S:.0f} s")
        return
    run = _wait_run(client, run_id, (*FINAL_STATES, "awaiting_approval"))
    state.answer_s = (time.time_ns() - state.injected_ns) / 1e9
    state.artifacts = client.artifacts(run_id)
    if run["state"] == "awaiting_approval":
        allowed = [state.injected_entity, *state.related,
                   *(p for p in lab_patterns if p != "process/*")]
        ours, foreign = lab_targets_only(state.artifacts, allowed)
        if not approve:
            state.notes.append("the run awaits an operator's approval (not given: no "
                               "--approve); no package until it is resolved")
        elif not ours:
            state.notes.append("not approved: actions wait for approval on targets the lab "
                               f"did not create ({', '.join(foreign)})")
        else:
            before = _throttling(state, progress, "before the approval", BEFORE_APPROVAL_S)
            progress(f"approving run {run_id} through the API (actions on lab targets only)")
            client.approve(run_id, "sreagent lab live --approve: game-day remediation of "
                                   "the lab's own fault")
            if before is not None:
                _wait_executed(client, run_id)
                state.effect = RemediationEffect(
                    cgroup=state.injected_entity, before=before,
                    after=_throttling(state, progress, "after the action ran", AFTER_ACTION_S))
            progress("waiting for the verifier (the controller verifies over telemetry after "
                     "the action)")
            run = _wait_run(client, run_id, FINAL_STATES)
            state.artifacts = client.artifacts(run_id)
    state.run = run


def _wait_executed(client: ControllerClient, run_id: str) -> None:
    """Poll until the run's execution_result is recorded (the approved actions have run)."""
    start = time.monotonic()
    while time.monotonic() - start < RUN_TIMEOUT_S:
        if any(a.get("kind") == "execution_result" for a in client.artifacts(run_id)):
            return
        time.sleep(0.5)


def _throttling(state: _State, progress: Progress, when: str, seconds: float) -> Any:
    """The kernel's throttling of the lab cgroup over ``seconds`` (None when not measured or
    the cgroup is gone)."""
    if state.quota_dir is None:
        return None
    try:
        window = throttle_window(state.quota_dir, seconds)
    except OSError as err:
        state.notes.append(f"kernel throttling {when} not measured: {err}")
        return None
    progress(f"kernel: {window.throttled} of {window.periods} CFS periods throttled {when} "
             f"(quota {window.quota_cores} CPU)")
    return window


def _finish(client: ControllerClient, state: _State, expected: str, scenario: str, tag: str,
            workdir: Path, render_postmortem: bool, progress: Progress) -> LiveResult:
    inj = state.injection
    cleanup_ok = bool(inj is not None and inj.cleanup is not None and inj.cleanup.ok)
    if inj is not None and inj.cleanup is not None and not inj.cleanup.ok:
        state.notes.append(f"cleanup: errors {list(inj.cleanup.errors)}, "
                           f"leftovers {list(inj.cleanup.leftovers)}")
    run = state.run
    package: Path | None = None
    identical: bool | None = None
    html: str | None = None
    if run is not None and state.incident is not None:
        run = _wait_run(client, run["run_id"], (*FINAL_STATES, "awaiting_approval"))
        if run["state"] == "completed":
            progress("exporting the evidence package and replaying it")
            package = export_package(client, run["run_id"], workdir / "package")
            identical, note = replay_package(package)
            if identical is not True:
                state.notes.append(note)
            if render_postmortem:
                progress("rendering the postmortem report")
                html, how = postmortem(package, workdir / "postmortem.html")
                if html is None:
                    state.notes.append(how)
        elif run["state"] != "awaiting_approval":
            state.notes.append(f"run {run['run_id']} ended {run['state']}: "
                               f"{run.get('error', '')}")
    rca = _payload(state.artifacts, "root_cause_hypothesis") or {}
    top = (rca.get("hypotheses") or [None])[0]
    execution = _payload(state.artifacts, "execution_result") or {}
    verification = _payload(state.artifacts, "verification_result")
    report = _payload(state.artifacts, "incident_report") or {}
    top_class = top["fault_class"] if top else None
    top_entity = top["entity"] if top else None
    return LiveResult(
        scenario=scenario,
        tag=tag,
        workdir=str(workdir),
        injected_entity=state.injected_entity,
        expected_hypothesis=expected,
        incident_opened=state.incident is not None,
        detection_seconds=round(state.detection_s, 3) if state.detection_s is not None else None,
        answer_seconds=round(state.answer_s, 3) if state.answer_s is not None else None,
        top_hypothesis=top_class,
        top_entity=top_entity,
        top_confidence=float(top["confidence"]) if top else None,
        ranking=[f"{h['fault_class']} at {h['entity']} ({float(h['confidence']):.3f})"
                 for h in (rca.get("hypotheses") or [])[:3]],
        correct=top_class == expected
        and _entity_matches(top_entity, state.injected_entity, state.related),
        executed=any(r.get("outcome") == "executed" for r in execution.get("results", [])),
        execution=execution_lines(state.artifacts),
        verification=verification.get("overall") if verification else None,
        verdicts=[dict(v) for v in (verification or {}).get("verdicts", [])],
        remediation_effect=state.effect,
        report_title=report.get("title"),
        report_summary=report.get("summary"),
        cleanup_ok=cleanup_ok,
        package=str(package) if package is not None else None,
        replay_identical=identical,
        postmortem=html,
        incident_id=state.incident["incident_id"] if state.incident else None,
        run_id=run["run_id"] if run else None,
        run_state=run["state"] if run else None,
        rule=state.incident["fingerprint"].split(":", 1)[-1] if state.incident else None,
        proposal=proposal_lines(state.artifacts),
        notes=state.notes,
    )
