"""``--update-goldens``: re-record a package with the current code, on purpose, with a diff.

When a role's logic changes on purpose, old recordings stop replaying identically. Rather
than letting that pass silently, the golden packages are re-recorded explicitly and the
decision diff printed, so the change is reviewed in the commit that makes it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sreagent.chain import live_activities
from sreagent.evidence import EvidencePackage
from sreagent.replay._decisions import decision_diff
from sreagent.replay._record import RunInputs, package_views, record_run, run_chain


def rerecord(path: Path) -> list[str]:
    """Re-run the package's chain with the current code and replace it; return the diff."""
    package = EvidencePackage(path)
    inputs = RunInputs.from_config(package.config, path=str(path / "config.json"))
    view, verify_view = package_views(package, inputs)
    result = run_chain(inputs, view, verify_view, activities=live_activities())
    tables = {name: package.table(name) for name in ("batches", "samples", "processes", "events")}
    extra = {k: v for k, v in package.config.items() if k != "run"}
    fresh = path.with_name(f".tmp-{path.name}")
    if fresh.exists():
        shutil.rmtree(fresh)
    record_run(
        fresh,
        inputs=inputs,
        result=result,
        source=package.manifest.source,
        tables=tables,
        extra_config=extra,
    )
    old = path.with_name(f".old-{path.name}")
    path.rename(old)
    fresh.rename(path)
    shutil.rmtree(old)
    return decision_diff(package.artifacts, result.artifacts).summary()
