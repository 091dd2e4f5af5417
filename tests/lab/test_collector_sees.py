"""The live collector's sources see each injected fault under the entity the injector names:
the contract the end-to-end runs of issue 10 rely on (``injected_entity`` is what the
analysis must blame, so it has to be an entity the collector reports)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sreagent.collector import Roots, Sampler, SamplerOptions
from sreagent.lab.live import run_injection
from tests.conftest import require_binary, requires_root

from . import observe as ob

pytestmark = [requires_root, pytest.mark.slow, pytest.mark.root]


def sampled(sources: set[str], seconds: float = 1.5) -> dict[tuple[str, str], float]:
    """(metric, entity) -> value from the second of two samples ``seconds`` apart."""
    sampler = Sampler(Roots(), SamplerOptions(enabled=frozenset(sources), process_every=1))
    try:
        sampler.sample(time.time_ns(), full=True)
        time.sleep(seconds)
        out = sampler.sample(time.time_ns(), full=True)
    finally:
        sampler.close()
    return {(s.metric, s.entity): s.value for s in out.samples}


CASES: list[tuple[str, dict[str, Any], set[str], str, float]] = [
    # scenario, options, collector sources, metric on the injected entity, minimum value
    ("cpu-hog", {"threads": 2}, {"processes"}, "process_cpu_ratio", 0.1),
    ("cgroup-throttle", {"quota_cores": 0.2}, {"cgroup"}, "cgroup_cpu_throttled_ratio", 0.2),
    ("noisy-neighbour", {}, {"cgroup"}, "cgroup_cpu_usage_ratio", 0.2),
    ("io-saturation", {"size_mib": 64}, {"disk"}, "disk_utilisation_ratio", 0.5),
]


@pytest.mark.parametrize(
    ("name", "options", "sources", "metric", "minimum"), CASES, ids=[c[0] for c in CASES]
)
def test_the_collector_reports_the_injected_entity(
    name: str,
    options: dict[str, Any],
    sources: set[str],
    metric: str,
    minimum: float,
    nothing_left: list[str],
) -> None:
    if name == "io-saturation":
        require_binary("fio")
    with run_injection(name, 4, options=options) as inj:
        nothing_left.append(inj.tag)
        time.sleep(0.3)
        seen = sampled(sources)
    value = seen.get((metric, inj.injected_entity))
    assert value is not None, (
        f"{metric} for {inj.injected_entity} not reported; the collector saw "
        f"{sorted(e for m, e in seen if m == metric)[:20]}"
    )
    assert value >= minimum, f"{metric}{{{inj.injected_entity}}} = {value}"


def test_host_peer_net_loss_shows_in_the_host_tcp_counters(nothing_left: list[str]) -> None:
    require_binary("nft")
    # Long enough that a loaded CI machine (slow worker start-up) still leaves a full sampling
    # window after the loss is under way.
    with run_injection("net-loss", 15, options={"topology": "host-peer"}) as inj:
        nothing_left.append(inj.tag)
        start = ob.snmp_tcp(None, "RetransSegs")
        assert ob.poll(lambda: ob.snmp_tcp(None, "RetransSegs") - start >= 5, 10.0), (
            "no TCP retransmits on the host 10 s into the injection"
        )
        seen = sampled({"tcp"})
    assert seen.get(("tcp_retransmits_per_second", "host"), 0.0) >= 5.0, {
        k: v for k, v in seen.items() if k[0].startswith("tcp_")
    }


def test_the_memcg_oom_kill_reaches_the_kmsg_source_as_the_injected_process(
    nothing_left: list[str],
) -> None:
    from sreagent.collector._kmsg import kmsg_source  # the daemon adds it beside the facade

    sampler = Sampler(
        Roots(),
        SamplerOptions(enabled=frozenset({"memory"})),
        extra_sources=[kmsg_source(Roots(), None)],
    )
    try:
        sampler.sample(time.time_ns())  # drain what the kernel log already holds
        with run_injection("memory-oom", 5, options={"limit_mib": 32, "leak_mib_per_s": 64}) as inj:
            nothing_left.append(inj.tag)
            assert inj.wait(timeout_s=5.0)
            kills: list[str] = []
            deadline = time.monotonic() + 3.0
            while inj.injected_entity not in kills and time.monotonic() < deadline:
                time.sleep(0.2)
                events = sampler.sample(time.time_ns()).events
                kills += [e.entity for e in events if e.kind == "oom_kill"]
    finally:
        sampler.close()
    # Other OOM kills may happen on a shared host at the same time; ours must be among them.
    assert inj.injected_entity in kills, kills
