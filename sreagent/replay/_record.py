"""Recording a chain run as an evidence package that replays exactly.

Everything the chain reads besides telemetry goes into ``config.json["run"]``: the chain
configuration, the runbook texts, the incident memory it searched, the previous window's
finding (incident hysteresis), the window and the verification window, and (for runs of the
controller) the incident id the controller gave the run. Activity results go to
``activities.parquet``. Replay needs nothing from the machine that recorded the run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import ValidationError

from sreagent.artifacts import Artifact
from sreagent.chain import Chain, ChainConfig, ChainResult
from sreagent.errors import BadInput, SchemaVersionError
from sreagent.evidence import EvidencePackage, Manifest, write_package
from sreagent.roles.knowledge import IncidentMemory, PastIncident, RunbookIndex
from sreagent.runtime import EvidenceView, RoleContext
from sreagent.telemetry.arrow import BatchFrame

RUN_FORMAT = "sreagent.run/v1"


@dataclass(frozen=True)
class RunInputs:
    """Everything besides telemetry and activity results that a chain run depends on."""

    run_id: str
    host: str
    window: tuple[int, int]
    chain: ChainConfig = field(default_factory=ChainConfig)
    runbooks: Mapping[str, str] = field(default_factory=dict)
    memory: tuple[PastIncident, ...] = ()
    prior: Artifact | None = None
    verify_window: tuple[int, int] | None = None
    incident_id: str | None = None
    """The incident id a caller gave the run (the controller's); None: the analyzer derives
    one from the evidence, as in lab and imported runs. Absent from the config when None, so
    packages recorded before this field read back the same."""

    def chain_object(self, config: ChainConfig | None = None) -> Chain:
        """The chain these inputs describe (``config`` replaces the recorded one: what-if)."""
        runbooks = RunbookIndex.from_texts(dict(self.runbooks)) if self.runbooks else None
        if self.incident_id is not None:
            return _GivenIncidentChain(config=config or self.chain, runbooks=runbooks,
                                       memory=IncidentMemory(self.memory),
                                       incident_id=self.incident_id)
        return Chain(config=config or self.chain, runbooks=runbooks,
                     memory=IncidentMemory(self.memory))

    def to_config(self) -> dict[str, Any]:
        return {
            "format": RUN_FORMAT,
            "run_id": self.run_id,
            "host": self.host,
            "window": list(self.window),
            "verify_window": list(self.verify_window) if self.verify_window else None,
            "chain": self.chain.redacted(),
            "runbooks": dict(sorted(self.runbooks.items())),
            "memory": [
                {
                    "incident_id": p.incident_id,
                    "fault_class": p.fault_class,
                    "signature": dict(sorted(p.signature.items())),
                }
                for p in self.memory
            ],
            "prior": self.prior.model_dump(mode="json") if self.prior else None,
            **({"incident_id": self.incident_id} if self.incident_id is not None else {}),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, path: str = "config.json") -> RunInputs:
        run = config.get("run")
        if not isinstance(run, Mapping):
            raise BadInput(
                "the package records no chain run (config.json has no 'run'); telemetry-only "
                "packages (lab generate, import) are replayed with `sreagent replay --run`",
                path=path,
                field="run",
            )
        if run.get("format") != RUN_FORMAT:
            raise SchemaVersionError(
                f"unknown run format {run.get('format')!r}; this sreagent replays {RUN_FORMAT!r}",
                path=path,
                field="run.format",
            )
        try:
            verify = run.get("verify_window")
            return cls(
                run_id=str(run["run_id"]),
                host=str(run["host"]),
                window=(int(run["window"][0]), int(run["window"][1])),
                chain=ChainConfig.model_validate(run["chain"]),
                runbooks=dict(run.get("runbooks") or {}),
                memory=tuple(
                    PastIncident(m["incident_id"], m["fault_class"], dict(m["signature"]))
                    for m in run.get("memory") or []
                ),
                prior=Artifact.model_validate(run["prior"]) if run.get("prior") else None,
                verify_window=(int(verify[0]), int(verify[1])) if verify else None,
                incident_id=str(run["incident_id"]) if run.get("incident_id") else None,
            )
        except (KeyError, TypeError, IndexError, ValueError, ValidationError) as err:
            raise BadInput(
                f"the recorded run cannot be read: {err}", path=path, field="run"
            ) from None


@dataclass
class _GivenIncidentChain(Chain):
    """The chain with the caller's incident id in every role context, as the controller's
    workflow engine gives it (sreagent/chain/_engine.py); the analyzer names the incident it
    opens after it instead of deriving an id."""

    incident_id: str | None = None

    def context(self, run_id: str, now_ns: int, activities: Any) -> RoleContext:
        return replace(super().context(run_id, now_ns, activities), incident_id=self.incident_id)


def runbook_texts(folder: Path) -> dict[str, str]:
    """The runbook folder as ``{name: text}`` (what a recorded run keeps)."""
    return {
        p.stem: p.read_text(encoding="utf-8")
        for p in sorted(folder.glob("*.md"))
        if p.name.lower() != "readme.md"
    }


def run_chain(
    inputs: RunInputs,
    view: EvidenceView,
    verify_view: EvidenceView | None = None,
    *,
    activities: Any = None,
    config: ChainConfig | None = None,
) -> ChainResult:
    """Run the chain exactly as ``inputs`` describe."""
    return inputs.chain_object(config).run(
        view,
        run_id=inputs.run_id,
        activities=activities,
        prior=inputs.prior,
        verify_view=verify_view,
    )


def record_run(
    path: Path | str,
    *,
    inputs: RunInputs,
    result: ChainResult,
    source: str,
    frames: Sequence[BatchFrame] = (),
    tables: dict[str, pa.Table] | None = None,
    extra_config: Mapping[str, Any] | None = None,
) -> Manifest:
    """Write a chain run (telemetry, artifacts, activities, inputs) as an evidence package."""
    if result.run_id != inputs.run_id:
        raise BadInput(f"result is of run {result.run_id}, inputs of {inputs.run_id}")
    config = {**(extra_config or {}), "run": inputs.to_config()}
    json.dumps(config)  # fail here, not half-way through writing, if something is not JSON
    end = inputs.verify_window[1] if inputs.verify_window else inputs.window[1]
    return write_package(
        path,
        run_id=inputs.run_id,
        source=source,
        config=config,
        frames=frames,
        tables=tables,
        artifacts=result.artifacts,
        activities=result.activity_records,
        window=(inputs.window[0], end),
    )


def package_views(
    package: EvidencePackage, inputs: RunInputs
) -> tuple[EvidenceView, EvidenceView | None]:
    """The run's evidence view (and verification view) rebuilt from the package's tables
    (the sample keys as read from disk, dictionary-encoded)."""
    tables = {name: package.encoded_table(name)
              for name in ("batches", "samples", "processes", "events")}
    view = EvidenceView.from_tables(
        tables, host=inputs.host, start_ns=inputs.window[0], end_ns=inputs.window[1]
    )
    verify_view = None
    if inputs.verify_window:
        verify_view = EvidenceView.from_tables(
            tables,
            host=inputs.host,
            start_ns=inputs.verify_window[0],
            end_ns=inputs.verify_window[1],
        )
    return view, verify_view
