"""The controller's HTTP API: :func:`create_app` builds a FastAPI app from settings."""

from sreagent.api.app import create_app

__all__ = ["create_app"]
