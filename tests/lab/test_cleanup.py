"""Cleanup under every exit: SIGKILL of the owner (sweeper, and the guardian), SIGTERM and
SIGINT, a refusal that touches nothing, and a sweep that spares runs in progress."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sreagent.lab.live import (
    LabFailed,
    LabRefused,
    find_leftovers,
    new_tag,
    run_injection,
    run_name,
    sweep,
)
from tests.conftest import REPO, require_binary, requires_root

from .observe import CGROUP, everything_with_tag, poll

pytestmark = [requires_root, pytest.mark.slow, pytest.mark.root]

OWNER = textwrap.dedent(
    """
    import json, sys, time
    from sreagent.lab.live import run_injection
    name, guardian = sys.argv[1], sys.argv[2] == "guard"
    try:
        with run_injection(name, 30, guardian=guardian) as inj:
            print(json.dumps({"tag": inj.tag, "entity": inj.injected_entity}), flush=True)
            time.sleep(60)
    finally:
        cleanup = locals().get("inj") and inj.cleanup
        print(json.dumps({"cleanup_ok": bool(cleanup and cleanup.ok)}), flush=True)
    """
)


def start_owner(name: str, *, guardian: bool) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", OWNER, name, "guard" if guardian else "noguard"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        pytest.fail(f"the owner exited ({proc.returncode}) before the fault was ready")
    return proc, json.loads(line)


@pytest.mark.parametrize("name", ["noisy-neighbour", "net-loss", "fd-leak"])
def test_sigkill_leftovers_are_swept(name: str, nothing_left: list[str]) -> None:
    if name == "net-loss":
        require_binary("nft")
    proc, ready = start_owner(name, guardian=False)
    tag = ready["tag"]
    nothing_left.append(tag)
    proc.kill()
    proc.wait(timeout=10)
    traces = everything_with_tag(tag)
    kinds = {x.kind for x in find_leftovers(tag=tag)}
    assert traces, "a SIGKILLed run should leave its fault behind until the sweep"
    assert "process" in kinds  # the workload outlives its owner (bounded by its own timer)
    report = sweep()
    assert report.ok, report.failed
    assert not everything_with_tag(tag), everything_with_tag(tag)
    assert any(label.startswith("process:") for label in report.removed)


def test_guardian_cleans_up_after_sigkill(nothing_left: list[str]) -> None:
    proc, ready = start_owner("cgroup-throttle", guardian=True)
    tag = ready["tag"]
    nothing_left.append(tag)
    assert (CGROUP / "cpu" / run_name(tag)).is_dir()
    proc.kill()
    proc.wait(timeout=10)
    left = poll(lambda: not everything_with_tag(tag), 15.0)
    assert left, everything_with_tag(tag)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_undoes_the_fault(signum: int, nothing_left: list[str]) -> None:
    proc, ready = start_owner("cgroup-throttle", guardian=False)
    nothing_left.append(ready["tag"])
    pid = int(
        Path(f"/sys/fs/cgroup/cpu/{run_name(ready['tag'])}/cgroup.procs").read_text().split()[0]
    )
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=20)
    assert json.loads(out.strip().splitlines()[-1]) == {"cleanup_ok": True}
    # Python re-raises an unhandled KeyboardInterrupt as death by SIGINT.
    assert proc.returncode == (-signum if signum == signal.SIGINT else 128 + signum)
    assert not Path(f"/proc/{pid}").exists()
    assert not everything_with_tag(ready["tag"])


def test_refuses_a_name_that_exists_and_touches_nothing(nothing_left: list[str]) -> None:
    tag = new_tag()
    nothing_left.append(tag)
    theirs = CGROUP / "cpu" / run_name(tag)
    theirs.mkdir()
    (theirs / "cpu.cfs_quota_us").write_text("50000")
    try:
        with (
            pytest.raises(LabRefused, match=str(theirs.name)) as err,
            run_injection("cgroup-throttle", 3, tag=tag, sweep_stale=False, guardian=False),
        ):
            pytest.fail("the injection ran over an existing cgroup")
        assert "already exists" in str(err.value)
        assert theirs.is_dir()
        assert (theirs / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert [p for p in everything_with_tag(tag) if p != str(theirs)] == []
    finally:
        theirs.rmdir()


def test_refuses_a_tag_in_use_by_a_live_run(nothing_left: list[str]) -> None:
    with run_injection("fd-leak", 3, options={"limit": 256}, guardian=False) as first:
        nothing_left.append(first.tag)
        with (
            pytest.raises(LabRefused, match="in progress"),
            run_injection("fd-leak", 3, tag=first.tag),
        ):
            pytest.fail("a second run took a live tag")
        assert first.injector.workers()[0].running()


def test_sweep_spares_a_run_in_progress(nothing_left: list[str]) -> None:
    with run_injection("cgroup-throttle", 3, guardian=False) as inj:
        nothing_left.append(inj.tag)
        report = sweep()
        assert inj.tag in report.kept_live
        assert (CGROUP / "cpu" / inj.plan.run_name).is_dir()
        assert inj.injector.workers()[0].running()
    assert inj.cleanup is not None and inj.cleanup.ok


def test_an_exception_in_the_body_still_undoes(nothing_left: list[str]) -> None:
    with (
        pytest.raises(RuntimeError, match="boom"),
        run_injection("cpu-hog", 3, options={"threads": 1}) as inj,
    ):
        nothing_left.append(inj.tag)
        raise RuntimeError("boom")
    assert inj.cleanup is not None and inj.cleanup.ok
    assert not everything_with_tag(inj.tag)


def test_workers_stop_on_their_own_at_the_deadline(nothing_left: list[str]) -> None:
    # Even with nobody to undo it, a fault ends: the workload carries its own timer.
    with run_injection("cpu-hog", 1, options={"threads": 1}, guardian=False) as inj:
        nothing_left.append(inj.tag)
        inj.wait()
        assert poll(inj.finished, 10.0)
        assert inj.injector.workers()[0].returncode() == 0
    assert inj.cleanup is not None and inj.cleanup.ok


def test_a_step_failing_mid_injection_undoes_what_was_made(nothing_left: list[str]) -> None:
    # Forcing netem: on a kernel without it, the namespaces and veth exist when the qdisc
    # fails; everything made so far must go. On a kernel with netem, the fault must use it.
    require_binary("nft")
    tag = new_tag()
    nothing_left.append(tag)
    try:
        with run_injection(
            "net-loss", 3, options={"mechanism": "netem"}, tag=tag, guardian=False
        ) as inj:
            assert inj.injector.mechanism == "netem"  # type: ignore[attr-defined]
    except LabFailed as err:
        assert "netem qdisc" in str(err)
    assert not everything_with_tag(tag)


def test_the_sweep_leaves_look_alike_names_alone(nothing_left: list[str]) -> None:
    # Near misses of the lab naming, none of them the lab's: the sweep must not touch them.
    cgroups = [CGROUP / "cpu" / n for n in ("sreagent-lab-nothex00", "my-sreagent-lab-12345678")]
    netns = "sreagent-lab-1234567"  # seven hex digits
    tmp = Path("/tmp/sreagent-lab-XYZ")
    for c in cgroups:
        c.mkdir()
    subprocess.run(["ip", "netns", "add", netns], check=True)
    tmp.mkdir()
    try:
        report = sweep()
        assert report.ok
        assert all(c.is_dir() for c in cgroups)
        assert Path("/run/netns", netns).exists()
        assert tmp.is_dir()
        assert not any(
            n in label
            for label in report.removed
            for n in ("nothex", "my-sreagent", "1234567", "XYZ")
        )
    finally:
        for c in cgroups:
            c.rmdir()
        subprocess.run(["ip", "netns", "del", netns], check=True)
        tmp.rmdir()
