"""Determinism: same inputs, same artifact ids; roles never touch clock, randomness or I/O."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sreagent.artifacts import Posture
from sreagent.chain import Chain, ReplayActivities, artifact_ids, live_activities
from sreagent.runtime import ChainConfig, EffectForbidden, forbid_effects
from sreagent.testing import RoleEnvironment

from . import windows

ROLES = Path(__file__).resolve().parents[2] / "sreagent" / "roles"
BANNED_MODULES = {"time", "random", "uuid", "os", "subprocess", "socket", "httpx", "requests",
                  "urllib", "shutil", "pathlib", "io", "tempfile", "threading", "secrets",
                  "sqlite3", "sreagent.actions._actuator", "sreagent.llm", "sreagent.collector",
                  "sreagent.controller", "sreagent.evidence.journal"}
BANNED_CALLS = {"open", "print", "input", "exec", "eval", "__import__", "breakpoint"}
BANNED_ATTRS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"),
                ("date", "today"), ("np", "random"), ("numpy", "random")}


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in BANNED_MODULES or alias.name.split(".")[0] in BANNED_MODULES:
                    found.append(f"{path.name}:{node.lineno} import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in BANNED_MODULES or node.module.split(".")[0] in BANNED_MODULES:
                found.append(f"{path.name}:{node.lineno} from {node.module} import")
            if node.module == "numpy.random" and {a.name for a in node.names} - {"Generator"}:
                found.append(f"{path.name}:{node.lineno} from numpy.random import")
            if node.module == "datetime":
                found.append(f"{path.name}:{node.lineno} from datetime import")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in BANNED_CALLS:
            found.append(f"{path.name}:{node.lineno} {node.func.id}()")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                (node.value.id, node.attr) in BANNED_ATTRS:
            found.append(f"{path.name}:{node.lineno} {node.value.id}.{node.attr}")
    return found


def test_static_check_finds_nothing_in_roles() -> None:
    files = sorted(ROLES.glob("*.py"))
    assert len(files) >= 10
    problems = [v for f in files for v in _violations(f)]
    assert problems == []


def test_static_check_catches_a_bad_role(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nimport numpy as np\nfrom datetime import datetime\n"
                   "from numpy.random import rand\n"
                   "def role(view, ctx):\n    x = np.random.rand()\n    open('f')\n"
                   "    return time.time()\n")
    found = _violations(bad)
    assert len(found) == 5, found


@pytest.mark.parametrize("effect", [
    lambda: time.time(),
    lambda: __import__("random").random(),
    lambda: __import__("uuid").uuid4(),
    lambda: os.urandom(4),
    lambda: __import__("numpy").random.rand(),
    lambda: open("/tmp/sreagent-guard-probe", "w"),  # noqa: SIM115
    lambda: subprocess.run(["true"], check=False),
])
def test_runtime_guard_trips_on_effects(effect) -> None:  # type: ignore[no-untyped-def]
    def role(ctx):  # type: ignore[no-untyped-def]
        return effect()

    with pytest.raises(EffectForbidden):
        RoleEnvironment().run(role)
    # Outside the guard, everything works again (the guard is per context).
    assert time.time() > 0


def test_guard_is_off_in_other_threads() -> None:
    import threading

    seen: list[float] = []
    with forbid_effects():
        t = threading.Thread(target=lambda: seen.append(time.time()))
        t.start()
        t.join()
    assert seen


def test_same_window_twice_gives_identical_artifacts() -> None:
    a = Chain().run(windows.cpu_saturation().view())
    b = Chain().run(windows.cpu_saturation().view())
    assert len(a.artifacts) == 8
    assert artifact_ids(a.artifacts) == artifact_ids(b.artifacts)
    assert [x.canonical() for x in a.artifacts] == [x.canonical() for x in b.artifacts]
    # The chain links: each artifact names the one(s) before it.
    for prev, nxt in zip(a.artifacts[1:], a.artifacts[2:], strict=False):
        assert set(nxt.input_artifact_ids) & {x.artifact_id for x in a.artifacts}
        del prev


def test_frame_order_does_not_matter() -> None:
    from sreagent.runtime import EvidenceView

    frames = windows.noisy_neighbour().frames()
    a = Chain().run(EvidenceView.from_frames(frames))
    b = Chain().run(EvidenceView.from_frames(list(reversed(frames))))
    assert artifact_ids(a.artifacts) == artifact_ids(b.artifacts)


_CHILD = """
import json, sys
sys.path.insert(0, {tests!r})
from roles import windows
from sreagent.chain import Chain, artifact_ids
print(json.dumps(artifact_ids(Chain().run(windows.cgroup_throttling().view()).artifacts)))
"""


def test_another_process_and_time_zone_gives_the_same_ids() -> None:
    here = artifact_ids(Chain().run(windows.cgroup_throttling().view()).artifacts)
    tests = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "TZ": "Asia/Kathmandu", "PYTHONHASHSEED": "12345", "LC_ALL": "C"}
    out = subprocess.run([sys.executable, "-c", _CHILD.format(tests=tests)], env=env,
                         capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == here


def test_replay_feeds_recorded_activities_back(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    from sreagent.actions import ActionSpec, ApprovalBook
    from sreagent.actions.catalogue import DEFAULT_CATALOGUE

    spec = ActionSpec(name="append_marker", safety_class="safe_reversible",
                      target_kind="process", argv=("sh", "-c", f"echo {{pid}} >> {marker}"),
                      rollback="truncate", expected_metric="pressure_some_ratio",
                      expected_direction="down", fault_classes=("cpu_saturation",),
                      description="test action")
    config = ChainConfig(posture=Posture(dry_run=False, require_approval=True,
                                         blocked_classes=["impacting", "destructive"],
                                         target_allowlist=["process/*"]))
    chain = Chain(config=config, catalogue=DEFAULT_CATALOGUE.with_actions(spec))
    view = windows.cpu_saturation().view()
    approvals = ApprovalBook()
    dry = chain.run(view, activities=live_activities(approvals=approvals))
    plan = dry.of_kind("execution_plan")
    for d in plan.payload.decisions:  # type: ignore[union-attr]
        approvals.approve(d.idempotency_key, by="alice")
    live = chain.run(view, activities=live_activities(approvals=approvals))
    ex = live.of_kind("execution_result").payload  # type: ignore[union-attr]
    proposal = live.of_kind("remediation_proposal").payload  # type: ignore[union-attr]
    name_of = {a.action_id: a.action for a in proposal.actions}
    outcome = {name_of[r.action_id]: r.outcome for r in ex.results}
    assert outcome["append_marker"] == "executed"
    assert outcome["kill_process"] == "blocked"
    # renice and ps really ran against pid 4242, which does not exist on this machine.
    assert outcome["renice_process"] in ("executed", "failed")
    assert marker.read_text() == "4242\n"
    replayed = chain.run(view, activities=ReplayActivities(live.activity_records))
    assert artifact_ids(replayed.artifacts) == artifact_ids(live.artifacts)
    assert marker.read_text() == "4242\n", "a replay must not act"
