"""The approved remediation's pieces that need no root: the lab's ``systemctl`` stand-in (run
as the executor runs it: a separate process from the generated wrapper script) against a
cgroup tree in a temp folder, and the kernel-side throttling window's parsing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sreagent.lab.live import make_injector
from sreagent.lab.live._effect import parse_cpu_stat, read_quota, throttle_window
from sreagent.lab.live._flow import APPROVE_OPTIONS, _systemctl_stand_in, execution_lines
from sreagent.lab.live._host import LabHost
from sreagent.lab.live._rules import game_day_rules

UNIT = "sreagent-lab-0123abcd.scope"


def _hybrid_host(tmp_path: Path) -> tuple[LabHost, Path]:
    """A LabHost whose mounts name a v1 cpu hierarchy under tmp_path, with the lab's unit."""
    proc, sys_root = tmp_path / "proc", tmp_path / "sys"
    (proc / "self").mkdir(parents=True)
    cpu = tmp_path / "cgroup" / "cpu"
    (cpu / UNIT).mkdir(parents=True)
    (cpu / UNIT / "cpu.cfs_period_us").write_text("100000\n")
    (cpu / UNIT / "cpu.cfs_quota_us").write_text("20000\n")
    (cpu / UNIT / "cpuacct.usage").write_text("123456789\n")
    (proc / "self/mounts").write_text(
        f"cgroup {cpu} cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0\n")
    return LabHost(proc=proc, sys=sys_root, tmp=tmp_path, state=tmp_path / "state"), cpu


def _systemctl(bindir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bindir / "systemctl"), *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_stand_in_raises_the_lab_scopes_quota_as_the_catalogue_command_says(
        tmp_path: Path) -> None:
    host, cpu = _hybrid_host(tmp_path)
    bindir = _systemctl_stand_in(tmp_path, host)
    done = _systemctl(bindir, "set-property", "--runtime", UNIT, "CPUQuota=40%")
    assert done.returncode == 0, done.stderr
    assert (cpu / UNIT / "cpu.cfs_quota_us").read_text() == "40000"
    assert "cpu.cfs_quota_us 20000 -> 40000" in done.stdout
    assert read_quota(cpu / UNIT) == pytest.approx(0.4)
    shown = _systemctl(bindir, "show", UNIT, "-p", "CPUQuotaPerSecUSec", "-p", "CPUUsageNSec",
                       "-p", "CPUWeight")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == ["CPUQuotaPerSecUSec=400000us",
                                         "CPUUsageNSec=123456789", "CPUWeight=[not set]"]


@pytest.mark.parametrize("args, why", [
    (("set-property", "--runtime", "sshd.service", "CPUQuota=40%"), "not on 'sshd.service'"),
    (("set-property", "--runtime", "sreagent-lab-99999999.scope", "CPUQuota=40%"),
     "not on 'sreagent-lab-99999999.scope'"),  # a lab name, but no such running scope
    (("set-property", "--runtime", UNIT, "MemoryMax=1"), "not 'MemoryMax=1'"),
    (("restart", UNIT), "does not do 'restart"),
    (("set-property", "--runtime", "../../" + UNIT, "CPUQuota=40%"), "not on"),
])
def test_stand_in_refuses_everything_but_the_lab_scopes_quota(
        tmp_path: Path, args: tuple[str, ...], why: str) -> None:
    host, cpu = _hybrid_host(tmp_path)
    bindir = _systemctl_stand_in(tmp_path, host)
    done = _systemctl(bindir, *args)
    assert done.returncode == 1 and why in done.stderr, done.stderr
    assert (cpu / UNIT / "cpu.cfs_quota_us").read_text() == "20000\n"  # untouched


def test_throttle_window_counts_the_periods_between_two_reads(tmp_path: Path) -> None:
    stat = tmp_path / "cpu.stat"
    (tmp_path / "cpu.cfs_period_us").write_text("100000")
    (tmp_path / "cpu.cfs_quota_us").write_text("-1")
    stat.write_text("nr_periods 100\nnr_throttled 90\nthrottled_time 5\n")

    def later(seconds: float) -> None:
        stat.write_text("nr_periods 150\nnr_throttled 92\nthrottled_time 9\n")

    window = throttle_window(tmp_path, 5.0, sleep=later)
    assert (window.periods, window.throttled, window.quota_cores) == (50, 2, None)
    assert window.share == pytest.approx(0.04)
    assert parse_cpu_stat(b"usage_usec 7\nnr_periods 3\nbogus x\n") == {"usage_usec": 7,
                                                                        "nr_periods": 3}


def test_approve_variant_names_the_cgroup_as_a_unit_and_alerts_on_it() -> None:
    plan = make_injector("cgroup-throttle", "0123abcd", 30,
                         **APPROVE_OPTIONS["cgroup-throttle"]).plan()
    assert plan.entity == f"cgroup/{UNIT}"
    assert {r.name for r in plan.resources if r.kind == "cgroup"} == {UNIT}
    rules = {r["name"]: r for r in game_day_rules(plan, disks=[], oom_kills_at_baseline=0)}
    assert rules["workload_cpu_throttled"]["entity"] == f"cgroup/{UNIT}"
    # The service needs 0.3 CPU, more than the 0.2 quota and less than the doubled 0.4.
    spinner = next(r for r in plan.resources if r.kind == "process")
    assert spinner.name.endswith("/spinner")


def test_execution_lines_name_action_target_and_outcome() -> None:
    artifacts = [
        {"kind": "remediation_proposal", "payload": {"actions": [
            {"action_id": "a1", "action": "raise_cgroup_cpu_quota", "target": f"cgroup/{UNIT}"},
            {"action_id": "a2", "action": "inspect_cgroup_cpu", "target": f"cgroup/{UNIT}"}]}},
        {"kind": "execution_result", "payload": {"results": [
            {"action_id": "a2", "outcome": "executed"},
            {"action_id": "a1", "outcome": "dry_run"}]}},
    ]
    assert execution_lines(artifacts) == [f"inspect_cgroup_cpu cgroup/{UNIT}: executed",
                                          f"raise_cgroup_cpu_quota cgroup/{UNIT}: dry_run"]
