"""Find, read and validate scenario definitions (``<root>/<NN_slug>/scenario.yaml``)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from sreagent.errors import BadInput
from sreagent.scenarios._schema import ScenarioDefinition, slug_ok

DEFINITION_FILE = "scenario.yaml"
ENV_ROOT = "SREAGENT_SCENARIOS"


def default_root() -> Path:
    """``$SREAGENT_SCENARIOS``, else the checkout's ``fixtures/scenarios``, else ``./fixtures/scenarios``."""
    if env := os.environ.get(ENV_ROOT):
        return Path(env)
    checkout = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios"
    return checkout if checkout.is_dir() else Path.cwd() / "fixtures" / "scenarios"


def scenario_ids(root: Path | None = None) -> list[str]:
    """Ids of every scenario folder under ``root``, sorted."""
    base = root or default_root()
    if not base.is_dir():
        raise BadInput("no scenario folder here (set SREAGENT_SCENARIOS or pass --scenarios)",
                       path=str(base))
    return sorted(p.name for p in base.iterdir()
                  if p.is_dir() and slug_ok(p.name) and (p / DEFINITION_FILE).exists())


def read_definition(path: Path) -> ScenarioDefinition:
    """Read and validate one ``scenario.yaml``; its id must equal its folder name."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise BadInput(f"cannot read: {err.strerror}", path=str(path)) from None
    except yaml.YAMLError as err:
        raise BadInput(f"not valid YAML: {err}", path=str(path)) from None
    if not isinstance(raw, dict):
        raise BadInput("a scenario definition is a YAML mapping", path=str(path))
    try:
        definition = ScenarioDefinition.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        raise BadInput(first["msg"], path=str(path),
                       field=".".join(map(str, first["loc"])) or None) from None
    if definition.id != path.parent.name:
        raise BadInput(f"id {definition.id!r} differs from its folder name {path.parent.name!r}",
                       path=str(path), field="id")
    return definition


def load_scenario(name: str | Path, root: Path | None = None) -> ScenarioDefinition:
    """A scenario by id (``05_cpu_saturation``), unique prefix (``05``), folder or file path."""
    candidate = Path(name)
    if candidate.is_file():
        return read_definition(candidate)
    if (candidate / DEFINITION_FILE).is_file():
        return read_definition(candidate / DEFINITION_FILE)
    base = root or default_root()
    ids = scenario_ids(base)
    text = str(name)
    matches = [i for i in ids if i == text] or [i for i in ids if i.startswith(text)] or [
        i for i in ids if i.split("_", 1)[1] == text]
    if len(matches) != 1:
        what = "matches several scenarios: " + ", ".join(matches) if matches else "is not a scenario"
        raise BadInput(f"{text!r} {what}; `sreagent lab list` shows them", field="scenario")
    return read_definition(base / matches[0] / DEFINITION_FILE)


def load_all(root: Path | None = None) -> list[ScenarioDefinition]:
    base = root or default_root()
    return [read_definition(base / i / DEFINITION_FILE) for i in scenario_ids(base)]
