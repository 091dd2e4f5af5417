"""Telemetry contracts: the batch (``sreagent.batch/v1``), its Arrow form and wire encodings."""

from typing import TYPE_CHECKING, Any

from sreagent.telemetry.batch import (
    SCHEMA_VERSION,
    Batch,
    DiskInfo,
    Event,
    GpuInfo,
    IbPortInfo,
    Inventory,
    NicInfo,
    ProcessRow,
    Sample,
    SourceCapability,
    batch_id,
)

if TYPE_CHECKING:
    from sreagent.telemetry.arrow import (
        BATCH_SCHEMA,
        EVENTS_SCHEMA,
        PROCESSES_SCHEMA,
        SAMPLES_SCHEMA,
        BatchFrame,
        BatchHeader,
        batch_to_table,
        frame_from_batch,
        frame_from_table,
    )
    from sreagent.telemetry.wire import (
        ARROW_CONTENT_TYPE,
        JSON_CONTENT_TYPE,
        batch_digest,
        decode_batch,
        encode_batch,
    )

# The Arrow form and the wire encodings load pyarrow (about 50 MiB of RSS); the node collector
# needs only the pydantic models, so those names are imported on first use (PEP 562).
_LAZY = {
    "BATCH_SCHEMA": "arrow",
    "EVENTS_SCHEMA": "arrow",
    "PROCESSES_SCHEMA": "arrow",
    "SAMPLES_SCHEMA": "arrow",
    "BatchFrame": "arrow",
    "BatchHeader": "arrow",
    "batch_to_table": "arrow",
    "frame_from_batch": "arrow",
    "frame_from_table": "arrow",
    "ARROW_CONTENT_TYPE": "wire",
    "JSON_CONTENT_TYPE": "wire",
    "batch_digest": "wire",
    "decode_batch": "wire",
    "encode_batch": "wire",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value

__all__ = [
    "ARROW_CONTENT_TYPE",
    "BATCH_SCHEMA",
    "EVENTS_SCHEMA",
    "JSON_CONTENT_TYPE",
    "PROCESSES_SCHEMA",
    "SAMPLES_SCHEMA",
    "SCHEMA_VERSION",
    "Batch",
    "BatchFrame",
    "BatchHeader",
    "DiskInfo",
    "Event",
    "GpuInfo",
    "IbPortInfo",
    "Inventory",
    "NicInfo",
    "ProcessRow",
    "Sample",
    "SourceCapability",
    "batch_digest",
    "batch_id",
    "batch_to_table",
    "decode_batch",
    "encode_batch",
    "frame_from_batch",
    "frame_from_table",
]
