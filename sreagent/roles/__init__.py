"""The role chain's pure roles: ``(input artifacts, evidence view, context) -> artifact``.

No role reads the clock, global randomness, files, sockets or processes: they take time,
randomness, ids and recorded activity results from their
:class:`~sreagent.runtime.RoleContext` (tests/roles/test_determinism.py checks this statically
and at run time). The runner in :mod:`sreagent.runtime` calls them in chain order.
"""

from sreagent.roles._catalogue import BY_NAME as FAULT_CLASSES
from sreagent.roles._catalogue import CATALOGUE as HYPOTHESIS_CATALOGUE
from sreagent.roles._catalogue import FaultClass
from sreagent.roles.analyzer import detect, hypothesise
from sreagent.roles.executor import execute
from sreagent.roles.knowledge import IncidentMemory, PastIncident, RunbookIndex
from sreagent.roles.memory import past_incident, remember, signature_of
from sreagent.roles.observer import NO_INCIDENT, observe
from sreagent.roles.planner import plan
from sreagent.roles.policy import gate, idempotency_key
from sreagent.roles.verifier import verify


def lab_verdict(scenario: object, output: object = None) -> dict[str, object]:
    """The ``sreagent lab run`` hook (sreagent.chain.lab.lab_verdict); imported lazily because
    the chain runner imports the roles."""
    from sreagent.chain.lab import lab_verdict as verdict

    return verdict(scenario, output)


__all__ = [
    "FAULT_CLASSES",
    "HYPOTHESIS_CATALOGUE",
    "NO_INCIDENT",
    "FaultClass",
    "IncidentMemory",
    "PastIncident",
    "RunbookIndex",
    "detect",
    "execute",
    "gate",
    "hypothesise",
    "idempotency_key",
    "lab_verdict",
    "observe",
    "past_incident",
    "plan",
    "remember",
    "signature_of",
    "verify",
]
