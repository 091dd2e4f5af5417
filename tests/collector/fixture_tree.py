"""A switchable root over the captured trees in fixtures/procfs/<case>/.

Sources bind their roots once; pointing a symlink at one captured case and then at the next
lets the same source object read two snapshots, as it would read a live /proc twice.
"""

from __future__ import annotations

from pathlib import Path

from sreagent.collector import Roots
from sreagent.telemetry import Sample
from tests.conftest import FIXTURES

PROCFS = FIXTURES / "procfs"
T0 = 1_800_000_000_000_000_000
"""An arbitrary instant for the first read; the second read is one second later."""
SECOND = 1_000_000_000


class Tree:
    def __init__(self, tmp_path: Path, case: str) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.link = tmp_path / "root"
        self.point(case)
        self.roots = Roots(proc=self.link / "proc", sys=self.link / "sys", dev=self.link / "dev")

    def point(self, case: str) -> None:
        target = PROCFS / case
        assert target.is_dir(), target
        if self.link.is_symlink():
            self.link.unlink()
        self.link.symlink_to(target)


def values(samples: list[Sample]) -> dict[tuple[str, str, tuple[tuple[str, str], ...]], float]:
    """Samples keyed by (metric, entity, labels); a duplicate key is a bug in a source."""
    out: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
    for s in samples:
        key = (s.metric, s.entity, tuple(s.labels.items()))
        assert key not in out, f"duplicate sample {key}"
        out[key] = s.value
    return out


def one(samples: list[Sample], metric: str, entity: str = "host", **labels: str) -> float:
    key = (metric, entity, tuple(sorted(labels.items())))
    got = values(samples)
    assert key in got, f"{key} missing; have {sorted(k for k in got if k[0] == metric)}"
    return got[key]


def absent(samples: list[Sample], metric: str, entity: str | None = None) -> bool:
    return not any(s.metric == metric and (entity is None or s.entity == entity) for s in samples)
