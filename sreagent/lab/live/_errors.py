"""Errors of the live lab, in sreagent's hierarchy (refusals are bad input: exit 2, HTTP 4xx)."""

from __future__ import annotations

from sreagent.errors import BadInput, SreagentError


class LabRefused(BadInput):
    """The injection would touch something it did not create, or cannot run here; nothing done."""

    code = "lab_refused"


class LabFailed(SreagentError):
    """Injecting or undoing failed part way; the message names the step and what was left."""

    code = "lab_failed"
