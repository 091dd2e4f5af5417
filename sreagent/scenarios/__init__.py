"""The scenario library: seeded synthetic telemetry with ground truth (issue 5).

The API the role chain, replay and the reports use::

    from sreagent.scenarios import load_scenario, generate, FaultClass

    definition = load_scenario("05_cpu_saturation_runaway")   # id, prefix or path
    scenario = generate(definition)                            # pure and deterministic
    scenario.frames        # list[BatchFrame], one per step: exactly what the controller decodes
    scenario.samples       # pyarrow.Table of every sample (the frames are slices of it)
    scenario.truth.primary # TruthCause: entity, fault_class, remediation, cited_metrics,
                           # onset_ns, visible_ns (first sample the fault shows), end_ns
    write_generated(scenario, out_dir)                         # journal + evidence package

``FaultClass`` is the closed set of fault classes; ``CATALOGUE`` gives each one's root entity
kind, remediation family, metrics to cite and propagation set.
"""

from sreagent.scenarios._classes import (
    CATALOGUE,
    CatalogueEntry,
    FaultClass,
    RemediationFamily,
)
from sreagent.scenarios._emit import LAB_LABEL, frame_to_wire
from sreagent.scenarios._faults import XID_CLASSES
from sreagent.scenarios._fleet import FLEET_CLASS_STATS, FleetEpisode, fleet_schedule
from sreagent.scenarios._generator import (
    GENERATOR_VERSION,
    GeneratedScenario,
    GroundTruthResolved,
    TruthCause,
    generate,
    resolve_profile,
)
from sreagent.scenarios._loader import default_root, load_all, load_scenario, scenario_ids
from sreagent.scenarios._output import GeneratedOutput, write_generated
from sreagent.scenarios._profiles import HostProfile, builtin_profile, builtin_profile_names
from sreagent.scenarios._schema import SCENARIO_FORMAT, Cause, Fault, ScenarioDefinition
from sreagent.scenarios._stats import moved

__all__ = [
    "CATALOGUE",
    "FLEET_CLASS_STATS",
    "GENERATOR_VERSION",
    "LAB_LABEL",
    "SCENARIO_FORMAT",
    "XID_CLASSES",
    "CatalogueEntry",
    "Cause",
    "Fault",
    "FaultClass",
    "FleetEpisode",
    "GeneratedOutput",
    "GeneratedScenario",
    "GroundTruthResolved",
    "HostProfile",
    "RemediationFamily",
    "ScenarioDefinition",
    "TruthCause",
    "builtin_profile",
    "builtin_profile_names",
    "default_root",
    "fleet_schedule",
    "frame_to_wire",
    "generate",
    "load_all",
    "load_scenario",
    "moved",
    "resolve_profile",
    "scenario_ids",
    "write_generated",
]
