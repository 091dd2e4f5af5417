"""Evidence: per-run packages and the fleet-wide Hive-partitioned journal, both Parquet."""

from sreagent.atomic import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_parquet,
    remove_stale_temporaries,
)
from sreagent.evidence.journal import Journal, JournalWriter
from sreagent.evidence.package import (
    PACKAGE_FORMAT,
    TABLE_SCHEMAS,
    ActivityRecord,
    EvidencePackage,
    FileEntry,
    Manifest,
    VerifyReport,
    read_manifest,
    verify_package,
    write_package,
)

__all__ = [
    "PACKAGE_FORMAT",
    "TABLE_SCHEMAS",
    "ActivityRecord",
    "EvidencePackage",
    "FileEntry",
    "Journal",
    "JournalWriter",
    "Manifest",
    "VerifyReport",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_parquet",
    "read_manifest",
    "remove_stale_temporaries",
    "verify_package",
    "write_package",
]
