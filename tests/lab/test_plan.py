"""Names, parsers, plans and refusals: no root, nothing created."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from sreagent.lab.live import INJECTORS, MAX_DURATION_S, LabHost, LabRefused, make_injector, new_tag
from sreagent.lab.live._host import parse_cgroup_mounts
from sreagent.lab.live._names import ifname, is_tag, run_name, tag_of
from sreagent.lab.live._net_loss import lab_subnet
from sreagent.telemetry.names import entity_kind

HYBRID_MOUNTS = b"""\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,relatime,memory 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,xattr,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
/dev/vda / ext4 rw,relatime 0 0
"""

COMOUNTED = (
    b"cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0\n"
)


def test_names_carry_the_tag_and_fit_the_kernel_limits() -> None:
    tag = new_tag()
    assert is_tag(tag)
    assert tag_of(run_name(tag)) == tag
    assert tag_of(run_name(tag, "victim")) == tag
    assert tag_of(ifname(tag, "a")) == tag
    assert len(ifname(tag, "b")) <= 15  # IFNAMSIZ - 1
    for other in (
        "sreagent-lab-",
        "sreagent-lab-XYZ12345",
        "sreagent-lab-1234567",
        "eth0",
        "slab1234abcdc",
        "my-sreagent-lab-12345678",
        "sreagent-lab-12345678_x",
    ):
        assert tag_of(other) is None, other


def test_cgroup_mounts_are_parsed_from_bytes(tmp_path: Path) -> None:
    m = parse_cgroup_mounts(HYBRID_MOUNTS, tmp_path)
    assert m.v1["cpu"] == tmp_path / "fs/cgroup/cpu"
    assert m.v1["memory"] == tmp_path / "fs/cgroup/memory"
    assert m.v1["name=systemd"] == tmp_path / "fs/cgroup/systemd"
    assert "relatime" not in m.v1 and "nosuid" not in m.v1 and "xattr" not in m.v1
    assert m.v2 == tmp_path / "fs/cgroup/unified"
    assert len(m.all_roots()) == 5
    co = parse_cgroup_mounts(COMOUNTED, Path("/sys"))
    assert co.v1["cpu"] == co.v1["cpuacct"] == Path("/sys/fs/cgroup/cpu,cpuacct")
    assert co.all_roots() == [Path("/sys/fs/cgroup/cpu,cpuacct")]


def test_lab_subnets_stay_in_the_benchmarking_range() -> None:
    lab = ipaddress.IPv4Network("198.18.0.0/15")
    for tag in ("00000000", "ffffffff", "7fff0003", new_tag()):
        net = lab_subnet(tag)
        assert net.prefixlen == 30 and net.subnet_of(lab)


@pytest.mark.parametrize("name", sorted(INJECTORS))
def test_every_plan_names_its_resources_and_creates_nothing(name: str, tmp_path: Path) -> None:
    tag = new_tag()
    host = LabHost(tmp=tmp_path, state=tmp_path / "state")
    injector = make_injector(name, tag, 5, host=host)
    plan = injector.plan()
    assert plan.injector == name and plan.tag == tag and plan.duration_s == 5
    assert plan.resources, "a plan lists what it will create"
    for r in plan.resources:
        assert tag in r.name, f"{r.kind} {r.name} does not carry the run tag"
    assert entity_kind(plan.entity) in {"process", "cgroup", "disk", "nic"}
    assert plan.fault_class and plan.observe
    # Planning made nothing: no temp dir, no state, no cgroup directory.
    assert list(tmp_path.iterdir()) == []
    for r in plan.resources:
        if r.kind == "cgroup":
            assert not (Path(r.where) / r.name).exists()


def test_refusals_name_what_was_wrong() -> None:
    tag = new_tag()
    with pytest.raises(LabRefused, match=r"unknown live scenario 'cpu-melt'.*cpu-hog"):
        make_injector("cpu-melt", tag, 5)
    with pytest.raises(LabRefused, match="run tag must be 8 lowercase hex"):
        make_injector("cpu-hog", "NOTATAG", 5)
    with pytest.raises(LabRefused, match="duration"):
        make_injector("cpu-hog", tag, MAX_DURATION_S + 1)
    with pytest.raises(LabRefused, match="duration"):
        make_injector("cpu-hog", tag, 0)
    with pytest.raises(LabRefused, match="bad option for memory-oom: limit_mib"):
        make_injector("memory-oom", tag, 5, limit_mib=1)
    with pytest.raises(LabRefused, match="bad option for net-loss: loss_percent"):
        make_injector("net-loss", tag, 5, loss_percent=100)
    with pytest.raises(LabRefused, match="bad option for cpu-hog: colour"):
        make_injector("cpu-hog", tag, 5, colour="red")
