"""One router per resource."""

from sreagent.api.routes import (
    agent,
    alerts,
    audit,
    health,
    incidents,
    ingest,
    replay,
    runs,
    status,
)

ROUTERS = [
    health.router,
    status.router,
    ingest.router,
    runs.router,
    agent.router,
    incidents.router,
    audit.router,
    alerts.router,
    replay.router,
]
