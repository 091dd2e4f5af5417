"""A switchable root over the captured trees in fixtures/procfs/<case>/.

Sources bind their roots once; pointing a symlink at one captured case and then at the next
lets the same source object read two snapshots, as it would read a live /proc twice.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sreagent.collector import Roots
from sreagent.telemetry import Sample
from tests.conftest import FIXTURES

PROCFS = FIXTURES / "procfs"
T0 = 1_800_000_000_000_000_000
"""An arbitrary instant for the first read; the second read is one second later."""
SECOND = 1_000_000_000


class Tree:
    """A working copy of a captured case that later cases are written over, in place.

    Files keep their inode when their content changes, as /proc files keep their path, so
    sources that hold descriptors open and re-read them (``KeptFiles``) see the new content.
    """

    def __init__(self, tmp_path: Path, case: str) -> None:
        self.root = tmp_path / "root"
        assert (PROCFS / case).is_dir(), case
        shutil.copytree(PROCFS / case, self.root, symlinks=True)
        self.roots = Roots(proc=self.root / "proc", sys=self.root / "sys", dev=self.root / "dev")

    def point(self, case: str) -> None:
        source = str(PROCFS / case)
        assert os.path.isdir(source), source
        root = str(self.root)
        wanted = _listing(source)
        have = _listing(root)
        for rel in sorted(set(have) - set(wanted), reverse=True):  # children before parents
            path = os.path.join(root, rel)
            if have[rel] == "dir":
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.unlink(path)
        for rel, kind in sorted(wanted.items()):
            src, dst = os.path.join(source, rel), os.path.join(root, rel)
            if kind == "dir":
                os.makedirs(dst, exist_ok=True)
            elif kind == "link":
                if not os.path.islink(dst):
                    os.symlink(os.readlink(src), dst)
            else:
                with open(src, "rb") as f:
                    data = f.read()
                if os.path.exists(dst):
                    with open(dst, "r+b") as f:  # same inode, new content
                        if f.read() != data:
                            f.seek(0)
                            f.write(data)
                            f.truncate()
                else:
                    with open(dst, "wb") as f:
                        f.write(data)


def _listing(top: str) -> dict[str, str]:
    """Relative path -> ``dir``, ``link`` or ``file`` for everything under ``top``."""
    out = {}
    for folder, dirs, files in os.walk(top):
        for name in dirs:
            path = os.path.join(folder, name)
            out[os.path.relpath(path, top)] = "link" if os.path.islink(path) else "dir"
        for name in files:
            path = os.path.join(folder, name)
            out[os.path.relpath(path, top)] = "link" if os.path.islink(path) else "file"
    return out


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
