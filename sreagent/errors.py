"""The error hierarchy every part of sreagent raises.

Errors are translated once at the boundary (file, socket, HTTP body) into these classes, so a
caller can tell bad input from a broken invariant without parsing messages. The CLI maps
:class:`BadInput` to exit code 2 and :class:`CheckFailed` to exit code 1; the HTTP API maps
them to 4xx responses. Every message names what was wrong and, where it helps, what to do next.
"""

from __future__ import annotations


class SreagentError(Exception):
    """Root of every error sreagent raises on purpose."""

    #: A short, stable machine-readable code (documented in docs/formats.md).
    code = "error"

    def __init__(self, message: str, *, field: str | None = None, path: str | None = None):
        self.message = message
        self.field = field
        self.path = path
        super().__init__(message)

    def __str__(self) -> str:
        where = []
        if self.path:
            where.append(self.path)
        if self.field:
            where.append(f"field {self.field}")
        return f"{': '.join(where)}: {self.message}" if where else self.message

    def to_dict(self) -> dict[str, str | None]:
        """A JSON-ready description, the shape the HTTP API answers with."""
        return {"code": self.code, "message": self.message, "field": self.field, "path": self.path}


class BadInput(SreagentError):
    """Input that sreagent refuses: wrong shape, out of limits, or unreadable."""

    code = "bad_input"


class SchemaVersionError(BadInput):
    """A document declares a schema or format version this code does not know."""

    code = "unknown_schema_version"


class LimitExceeded(BadInput):
    """A batch or document is larger than a documented limit (bytes, rows, lengths)."""

    code = "limit_exceeded"


class NonFiniteValue(BadInput):
    """A numeric value is NaN or infinite where only finite values are allowed."""

    code = "non_finite_value"


class UnsupportedEncoding(BadInput):
    """A body arrived in an encoding or content type sreagent does not speak."""

    code = "unsupported_encoding"


class CorruptFile(BadInput):
    """A file on disk cannot be read as what it claims to be (truncated, wrong magic)."""

    code = "corrupt_file"


class ManifestMismatch(BadInput):
    """An evidence package's manifest disagrees with the files beside it, or with itself."""

    code = "manifest_mismatch"


class NotLanded(SreagentError):
    """A command whose feature has not been built yet (said plainly; exit code 2)."""

    code = "not_landed"


class CheckFailed(SreagentError):
    """The property a command checks does not hold (exit code 1): a divergent replay, say."""

    code = "check_failed"
