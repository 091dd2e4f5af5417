"""The scenario definitions and the schema that validates them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sreagent.errors import BadInput
from sreagent.scenarios import (
    CATALOGUE,
    FaultClass,
    RemediationFamily,
    ScenarioDefinition,
    builtin_profile,
    builtin_profile_names,
    load_all,
    load_scenario,
    scenario_ids,
)
from sreagent.scenarios._faults import INJECTORS
from sreagent.scenarios._loader import read_definition
from sreagent.telemetry.names import METRICS_BY_NAME

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios"


def _minimal(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "90_test_case", "title": "t", "profile": "web-vm", "seed": 1,
        "start": "2026-03-02T14:00:00Z", "duration_s": 600,
        "faults": [{"class": "fd_exhaustion", "target": "process/1100", "onset_s": 300,
                    "ramp_s": 120}],
        "ground_truth": {"incident": True, "causes": [
            {"entity": "process/1100", "fault_class": "fd_exhaustion",
             "remediation": "restart_fd_leaking_process",
             "cited_metrics": ["process_fds_used_ratio"]}]},
    }
    base.update(changes)
    return base


def test_the_library_has_every_kind_of_case() -> None:
    definitions = load_all(FIXTURES)
    assert len(definitions) >= 25
    tags = [set(d.tags) for d in definitions]
    assert sum("multi-fault" in t for t in tags) >= 2
    assert sum("look-alike" in t for t in tags) >= 4
    controls = [d for d in definitions if "control" in d.tags]
    assert len(controls) >= 3
    assert all(not d.faults and not d.ground_truth.incident for d in controls)
    multi = [d for d in definitions if "multi-fault" in d.tags]
    assert all(len(d.ground_truth.causes) >= 2 for d in multi)


def test_every_fault_class_is_injected_by_some_scenario() -> None:
    injected = {f.fault_class for d in load_all(FIXTURES) for f in d.faults}
    assert injected == set(FaultClass)


def test_catalogue_and_injectors_cover_the_closed_enum() -> None:
    assert set(CATALOGUE) == set(FaultClass) == set(INJECTORS)
    for entry in CATALOGUE.values():
        assert isinstance(entry.remediation, RemediationFamily)
        assert set(entry.cited) <= entry.moves
        assert entry.moves <= set(METRICS_BY_NAME), entry.moves - set(METRICS_BY_NAME)


def test_scenario_ids_equal_folders_and_targets_exist() -> None:
    for scenario_id in scenario_ids(FIXTURES):
        definition = read_definition(FIXTURES / scenario_id / "scenario.yaml")
        assert definition.id == scenario_id
        profile = (builtin_profile(definition.profile) if isinstance(definition.profile, str)
                   else definition.profile)
        for fault in definition.faults:
            assert fault.target in profile.entities()


def test_builtin_profiles_validate() -> None:
    names = builtin_profile_names()
    assert {"web-vm", "k8s-node", "db-server", "gpu-node-8x-h100"} <= set(names)
    gpu = builtin_profile("gpu-node-8x-h100")
    assert gpu.gpus is not None and gpu.gpus.count == 8 and gpu.gpus.nvlink_links == 18
    assert {d.kind for d in builtin_profile("db-server").disks} == {"nvme", "hdd"}


def test_lookup_by_prefix_and_slug() -> None:
    assert load_scenario("01", FIXTURES).id.startswith("01_")
    assert load_scenario("cpu_saturation_runaway", FIXTURES).id == "01_cpu_saturation_runaway"
    with pytest.raises(BadInput, match="is not a scenario"):
        load_scenario("nope", FIXTURES)
    with pytest.raises(BadInput, match="matches several"):
        load_scenario("0", FIXTURES)


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"colour": "red"}, "Extra inputs"),
        ({"start": "2026-03-02T14:00:00"}, "explicit UTC offset"),
        ({"id": "cpu"}, "pattern"),
        ({"resolution_s": 7}, "multiple of resolution_s"),
        ({"faults": [{"class": "fd_exhaustion", "target": "gpu/0", "onset_s": 300}]},
         "targets a process entity"),
        ({"faults": [{"class": "no_such_class", "target": "process/1100", "onset_s": 300}]},
         "Input should be"),
        ({"faults": [{"class": "fd_exhaustion", "target": "process/1100", "onset_s": 10}]},
         "greater than or equal to 120"),
        ({"ground_truth": {"incident": False}}, "exactly when there are faults"),
    ],
)
def test_bad_definitions_are_refused_naming_the_problem(change: dict[str, Any],
                                                        complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        ScenarioDefinition.model_validate(_minimal(**change))


def test_ground_truth_must_match_an_injected_fault_and_cite_real_metrics() -> None:
    wrong_entity = _minimal()
    wrong_entity["ground_truth"]["causes"][0]["entity"] = "process/1101"
    with pytest.raises(ValueError, match="not one of the injected faults"):
        ScenarioDefinition.model_validate(wrong_entity)
    unknown_metric = _minimal()
    unknown_metric["ground_truth"]["causes"][0]["cited_metrics"] = ["cpu_hotness"]
    with pytest.raises(ValueError, match=r"not a metric in sreagent\.telemetry\.names"):
        ScenarioDefinition.model_validate(unknown_metric)
    unmoved = _minimal()
    unmoved["ground_truth"]["causes"][0]["cited_metrics"] = ["gpu_power_watts"]
    with pytest.raises(ValueError, match="does not move"):
        ScenarioDefinition.model_validate(unmoved)


def test_a_broken_file_names_path_and_field(tmp_path: Path) -> None:
    folder = tmp_path / "90_test_case"
    folder.mkdir()
    (folder / "scenario.yaml").write_text(yaml.safe_dump(_minimal(seed=-1)))
    with pytest.raises(BadInput) as err:
        read_definition(folder / "scenario.yaml")
    assert err.value.field == "seed" and err.value.path == str(folder / "scenario.yaml")
    renamed = tmp_path / "91_other_name"
    folder.rename(renamed)
    (renamed / "scenario.yaml").write_text(yaml.safe_dump(_minimal()))
    with pytest.raises(BadInput, match="differs from its folder name"):
        read_definition(renamed / "scenario.yaml")
