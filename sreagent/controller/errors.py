"""Controller errors beyond :mod:`sreagent.errors`; the API maps each to one HTTP status."""

from __future__ import annotations

from sreagent.errors import BadInput, SreagentError


class Unauthenticated(SreagentError):
    """No bearer token, or one the controller does not know (HTTP 401)."""

    code = "unauthenticated"


class Forbidden(SreagentError):
    """A known token without the scope the endpoint needs (HTTP 403)."""

    code = "forbidden"


class NotFound(BadInput):
    """No run, incident or file by that id (HTTP 404)."""

    code = "not_found"


class BatchConflict(SreagentError):
    """The same (collector_id, producer_epoch, seq) arrived with a different payload (409)."""

    code = "batch_conflict"


class InvalidState(SreagentError):
    """The operation does not apply in the object's current state, e.g. approving a run that
    is not awaiting approval (HTTP 409)."""

    code = "invalid_state"


class NotLeader(SreagentError):
    """This controller is a follower; writes go to the leader (HTTP 503 with its address)."""

    code = "not_leader"

    def __init__(self, message: str, *, leader: str | None):
        super().__init__(message)
        self.leader = leader


class Overloaded(SreagentError):
    """The journal's queue is full; retry later (HTTP 503 with Retry-After)."""

    code = "overloaded"


class NotImplementedYet(SreagentError):
    """An endpoint whose feature belongs to an issue that has not landed (HTTP 501)."""

    code = "not_landed"
