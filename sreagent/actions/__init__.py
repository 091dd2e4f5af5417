"""Actions: the catalogue with safety classes, and the actuators that run them."""

from sreagent.actions._actuator import ExecutionLedger, execute_action_handler, run_argv
from sreagent.actions._approvals import ApprovalBook
from sreagent.actions.catalogue import (
    BUILTIN,
    DEFAULT_CATALOGUE,
    SAFETY_ORDER,
    ActionSpec,
    Catalogue,
    SafetyClass,
)

__all__ = [
    "BUILTIN",
    "DEFAULT_CATALOGUE",
    "SAFETY_ORDER",
    "ActionSpec",
    "ApprovalBook",
    "Catalogue",
    "ExecutionLedger",
    "SafetyClass",
    "execute_action_handler",
    "run_argv",
]
