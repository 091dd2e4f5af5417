"""Live-lab evidence packages (issue 10, recorded on this machine at load 8-11) re-run
through today's role chain: each ranks the injected fault first, at its entity. When they
were recorded, each ranked something else first (a process busy all along: the busy-host
penalties; another process's fd use over the OOM-killed leaker: the victim's growth up to
its kill, docs/roles.md). They are inputs here, so their replay diverges on purpose and only
the new ranking is checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from sreagent.artifacts import ArtifactKind, RootCauseHypothesis
from sreagent.replay import Replayer

PACKAGES = Path(__file__).parent / "live_packages"


@pytest.mark.parametrize(("package", "fault_class", "entity"), [
    ("memory-oom-run-20261129T132432-a133a331", "memory_leak_oom", "process/15803"),
    ("memory-oom-run-20261129T134740-b0ebb0aa", "memory_leak_oom", "process/28795"),
    ("net-loss-run-20261129T132534-4399de2d", "packet_loss", "nic/slab7e2798afa"),
    ("io-saturation-run-20261129T132626-85237235", "disk_io_saturation", "disk/vda"),
])
def test_a_live_package_ranks_its_fault_first(package: str, fault_class: str,
                                              entity: str) -> None:
    result = Replayer().replay(PACKAGES / package)
    ranked = next(a for a in result.replayed if a.kind == ArtifactKind.ROOT_CAUSE_HYPOTHESIS)
    assert isinstance(ranked.payload, RootCauseHypothesis)
    top = ranked.payload.hypotheses[0]
    assert (top.fault_class, top.entity) == (fault_class, entity), [
        (h.fault_class, h.entity, h.score) for h in ranked.payload.hypotheses[:3]]
