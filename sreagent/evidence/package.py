"""Evidence packages: one folder per run, holding everything needed to replay it.

Layout (docs/formats.md has every column)::

    <package>/
      manifest.json      format, code version, config hash, per-file sha256, bytes and rows
      config.json        the effective configuration of the run (canonical JSON)
      batches.parquet    one row per batch the run saw (identity, header, digest)
      samples.parquet    the telemetry window, one row per sample
      processes.parquet  process rows
      events.parquet     events (OOM kills, Xids, link flaps...)
      artifacts.parquet  every artifact of the run, in chain order
      activities.parquet recorded activity results (executions, model answers)

Every file is written atomically and the manifest last, so a package either has a manifest
that matches its files or is visibly incomplete. Nothing in a package depends on the wall
clock of the machine that wrote it: the same inputs give the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from sreagent import __version__
from sreagent.artifacts import Artifact
from sreagent.atomic import TMP_PREFIX, atomic_write_bytes, atomic_write_parquet
from sreagent.canonical import canonical_digest, canonical_json, sha256_hex
from sreagent.errors import BadInput, CorruptFile, ManifestMismatch, SchemaVersionError
from sreagent.evidence.tables import (
    ACTIVITIES_SCHEMA,
    ARTIFACTS_SCHEMA,
    BATCHES_SCHEMA,
    ROW_TABLES,
    artifacts_from_table,
    artifacts_table,
    frames_to_tables,
    stored_artifact_ids,
)
from sreagent.telemetry.arrow import BatchFrame

PACKAGE_FORMAT = "sreagent.evidence/v1"
MANIFEST = "manifest.json"
CONFIG = "config.json"

TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "batches": BATCHES_SCHEMA,
    **ROW_TABLES,
    "artifacts": ARTIFACTS_SCHEMA,
    "activities": ACTIVITIES_SCHEMA,
}
"""Every Parquet table of a package, by name (file ``<name>.parquet``)."""

KEY = pa.dictionary(pa.int32(), pa.string())

DICTIONARY_COLUMNS: dict[str, list[str]] = {
    "samples": ["batch_id", "host", "metric", "entity",
                "labels.key_value.key", "labels.key_value.value"],
    "processes": ["batch_id", "host", "comm", "cmdline", "state", "cgroup"],
}
"""String columns read as Arrow dictionaries (Parquet paths). They repeat a few values
across up to millions of rows and are dictionary-encoded on disk: read so, they decode
several times faster, and the evidence view numbers the sample keys without hashing a
string per row."""


def _dictionary_schema(schema: pa.Schema, paths: list[str]) -> pa.Schema:
    """``schema`` with the columns at ``paths`` as dictionaries (what Arrow reads them as)."""
    fields = []
    for f in schema:
        if f.name in paths:
            f = f.with_type(KEY)
        elif pa.types.is_map(f.type) and f"{f.name}.key_value.key" in paths:
            f = f.with_type(pa.map_(KEY, KEY))
        fields.append(f)
    return pa.schema(fields)


ENCODED_SCHEMAS: dict[str, pa.Schema] = {
    name: _dictionary_schema(TABLE_SCHEMAS[name], paths)
    for name, paths in DICTIONARY_COLUMNS.items()
}


class ActivityRecord(BaseModel):
    """The recorded result of one activity: an effect replay must not redo."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    activity_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    """Unique id within the run."""
    kind: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    """``execute_action``, ``llm_complete``, ``read_telemetry``..."""
    key: Annotated[str, StringConstraints(max_length=512)] = ""
    """Idempotency key or request hash the activity was looked up by."""
    logical_time: Annotated[int, Field(ge=0)]
    """Telemetry time at which it ran."""
    status: Annotated[str, StringConstraints(min_length=1, max_length=32)] = "ok"
    """`ok`, `error`, `timeout`..."""
    request: dict[str, Any] = {}
    """What was asked (command, prompt...)."""
    result: dict[str, Any] = {}
    """What came back."""


class FileEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    """SHA-256 of the file's bytes."""
    bytes: Annotated[int, Field(ge=0)]
    """File size."""
    rows: Annotated[int, Field(ge=0)] | None = None
    """Row count for Parquet files; None for JSON files."""


class Manifest(BaseModel):
    """The table of contents of a package, hashed over itself."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    format: str
    """Package format version."""
    code_version: str
    """sreagent version that wrote the package."""
    run_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    """The run the package holds."""
    source: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    """Where the run came from: ``live``, ``lab``, ``import`` or ``demo``."""
    hosts: list[str] = []
    """Hosts whose telemetry it holds."""
    window_start_ns: Annotated[int, Field(ge=0)]
    """First sample time."""
    window_end_ns: Annotated[int, Field(ge=0)]
    """Last sample time."""
    config_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    """SHA-256 of `config.json`."""
    files: dict[str, FileEntry]
    """Every file of the package with its hash, size and rows."""
    manifest_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    """SHA-256 of the canonical JSON of this manifest without this field."""


def _table_bytes_entry(path: Path, rows: int | None) -> FileEntry:
    data = path.read_bytes()
    return FileEntry(sha256=sha256_hex(data), bytes=len(data), rows=rows)


def write_package(
    path: Path | str,
    *,
    run_id: str,
    source: str,
    config: dict[str, Any],
    frames: Sequence[BatchFrame] = (),
    tables: dict[str, pa.Table] | None = None,
    artifacts: Sequence[Artifact] = (),
    activities: Sequence[ActivityRecord] = (),
    window: tuple[int, int] | None = None,
) -> Manifest:
    """Write an evidence package folder and return its manifest.

    Telemetry comes either as decoded ``frames`` or as ready ``tables`` (``batches``,
    ``samples``, ``processes``, ``events``; what the journal hands back). The folder may exist
    but must not already hold a manifest: packages are written once.
    """
    root = Path(path)
    if (root / MANIFEST).exists():
        raise BadInput(
            "an evidence package already exists here; packages are written once", path=str(root)
        )
    root.mkdir(parents=True, exist_ok=True)
    data_tables = dict(tables) if tables is not None else frames_to_tables(frames)
    data_tables["artifacts"] = artifacts_table(artifacts)
    data_tables["activities"] = pa.Table.from_pylist(
        [
            {
                "position": i,
                **a.model_dump(exclude={"request", "result"}),
                "request": canonical_json(a.request).decode(),
                "result": canonical_json(a.result).decode(),
            }
            for i, a in enumerate(activities)
        ],
        schema=ACTIVITIES_SCHEMA,
    )
    files: dict[str, FileEntry] = {}
    for name, schema in TABLE_SCHEMAS.items():
        table = data_tables.get(name, schema.empty_table())
        table = table.select(schema.names).cast(schema)
        target = root / f"{name}.parquet"
        atomic_write_parquet(target, table)
        files[target.name] = _table_bytes_entry(target, table.num_rows)
    config_bytes = canonical_json(config)
    atomic_write_bytes(root / CONFIG, config_bytes)
    files[CONFIG] = _table_bytes_entry(root / CONFIG, None)

    batches = data_tables["batches"]
    samples = data_tables["samples"]
    if window is None:
        ts = samples.column("ts_ns") if samples.num_rows else None
        window = (
            (int(pa.compute.min(ts).as_py()), int(pa.compute.max(ts).as_py()))
            if ts is not None
            else (0, 0)
        )
    body: dict[str, Any] = {
        "format": PACKAGE_FORMAT,
        "code_version": __version__,
        "run_id": run_id,
        "source": source,
        "hosts": sorted(set(batches.column("host").to_pylist())) if batches.num_rows else [],
        "window_start_ns": window[0],
        "window_end_ns": window[1],
        "config_sha256": sha256_hex(config_bytes),
        "files": {name: entry.model_dump() for name, entry in sorted(files.items())},
    }
    manifest = Manifest.model_validate({**body, "manifest_sha256": canonical_digest(body)})
    atomic_write_bytes(root / MANIFEST, canonical_json(manifest.model_dump(mode="json")))
    return manifest


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify_package` checked, for printing."""

    path: Path
    manifest: Manifest
    files: dict[str, FileEntry] = field(default_factory=dict)
    package: EvidencePackage | None = field(default=None, repr=False, compare=False)
    """The verified package, holding the tables and artifacts verification already decoded
    (reading them through it does not decode the files a second time)."""

    @property
    def rows(self) -> dict[str, int]:
        return {n: e.rows for n, e in self.files.items() if e.rows is not None}


def read_manifest(root: Path) -> Manifest:
    """Read and self-check a package's manifest."""
    path = root / MANIFEST
    if not root.is_dir():
        raise BadInput("not a directory; an evidence package is a folder", path=str(root))
    if not path.exists():
        raise CorruptFile(
            "no manifest.json: not an evidence package, or its writer crashed before finishing",
            path=str(path),
        )
    try:
        raw = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptFile(f"manifest is not valid JSON: {err}", path=str(path)) from None
    if not isinstance(raw, dict):
        raise CorruptFile("manifest is not a JSON object", path=str(path))
    if raw.get("format") != PACKAGE_FORMAT:
        raise SchemaVersionError(
            f"unknown evidence format {raw.get('format')!r}; this sreagent reads "
            f"{PACKAGE_FORMAT!r}",
            path=str(path),
            field="format",
        )
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        raise ManifestMismatch(
            first["msg"], path=str(path), field=".".join(map(str, first["loc"]))
        ) from None
    body = manifest.model_dump(mode="json", exclude={"manifest_sha256"})
    if canonical_digest(body) != manifest.manifest_sha256:
        raise ManifestMismatch(
            "manifest was edited after it was written (its manifest_sha256 does not match "
            "its content)",
            path=str(path),
        )
    return manifest


def verify_package(path: Path | str, *, artifact_models: bool = True) -> VerifyReport:
    """Check a package completely; raise a :class:`BadInput` naming the broken file.

    Checks, in order: the manifest (format, self-hash), that no file is missing or unlisted,
    each Parquet file is readable with the expected schema, each file's size and SHA-256 and
    row count, the config hash, that every artifact's id matches its content (hashed from
    the stored bytes), and, with ``artifact_models``, that every artifact is a valid model.
    The replay passes ``artifact_models=False``: it decides identity on the checked ids and
    builds the models only when it needs them (a divergence, a what-if), where an invalid
    one is reported the same way.
    """
    root = Path(path)
    manifest = read_manifest(root)
    expected = {f"{name}.parquet" for name in TABLE_SCHEMAS} | {CONFIG}
    listed = set(manifest.files)
    if missing := sorted(expected - listed):
        raise ManifestMismatch(f"manifest does not list {missing[0]}", path=str(root / MANIFEST))
    present = {
        p.name for p in root.iterdir() if p.is_file() and not p.name.startswith(TMP_PREFIX)
    } - {MANIFEST}
    if unknown := sorted(present - listed):
        raise ManifestMismatch("file is not listed in the manifest", path=str(root / unknown[0]))
    tables: dict[str, pa.Table] = {}
    for name in sorted(listed):
        entry = manifest.files[name]
        file = root / name
        if not file.exists():
            raise ManifestMismatch("file listed in the manifest is missing", path=str(file))
        data = file.read_bytes()
        if name.endswith(".parquet"):
            table = _check_parquet(file, data, name.removesuffix(".parquet"))
            tables[name.removesuffix(".parquet")] = table
            rows = table.num_rows
            if rows != entry.rows:
                raise ManifestMismatch(
                    f"has {rows} rows, the manifest says {entry.rows}", path=str(file)
                )
        if len(data) != entry.bytes:
            raise ManifestMismatch(
                f"has {len(data)} bytes, the manifest says {entry.bytes}", path=str(file)
            )
        if sha256_hex(data) != entry.sha256:
            raise ManifestMismatch(
                "content does not match the manifest's sha256 (edited or damaged)",
                path=str(file),
            )
    if manifest.files[CONFIG].sha256 != manifest.config_sha256:
        raise ManifestMismatch("config_sha256 does not match config.json", path=str(root / CONFIG))
    # Every artifact's id against its content, hashed once from the stored bytes (the models
    # are built, and validated, when someone reads them: EvidencePackage.artifacts).
    for position, (recorded, content) in enumerate(stored_artifact_ids(tables["artifacts"])):
        if recorded != content:
            raise ManifestMismatch(
                f"an artifact does not match its id: artifact {position} records {recorded}, "
                f"its content hashes to {content} (edited after it was made)",
                path=str(root / "artifacts.parquet"), field=f"artifacts[{position}]",
            )
    package = EvidencePackage(root, manifest, tables=tables)
    if artifact_models:
        package.artifacts  # noqa: B018 - builds and validates every model
    return VerifyReport(path=root, manifest=manifest, files=dict(manifest.files), package=package)


def _check_parquet(file: Path, data: bytes, name: str) -> pa.Table:
    """The table in ``data`` checked against its schema: with its dictionary columns as
    dictionaries when the file matches the current schema, else read plainly (and cast, for
    an older file of an additive contract change)."""
    # Parquet files start and end with the magic "PAR1"; a truncated file loses the footer.
    if len(data) < 12 or data[:4] != b"PAR1" or data[-4:] != b"PAR1":
        raise CorruptFile(
            "not a complete Parquet file (truncated or overwritten: the PAR1 footer is missing)",
            path=str(file),
        )
    schema = TABLE_SCHEMAS.get(name)
    try:
        if name in ENCODED_SCHEMAS:
            table = _read(data, DICTIONARY_COLUMNS[name])
            if table.schema.equals(ENCODED_SCHEMAS[name], check_metadata=False):
                return table
        table = _read(data)
    except (pa.ArrowInvalid, OSError) as err:
        raise CorruptFile(f"Parquet file cannot be read: {err}", path=str(file)) from None
    if schema is not None and not table.schema.equals(schema, check_metadata=False):
        table = _evolved(table, schema)
    if schema is not None and not table.schema.equals(schema, check_metadata=False):
        raise CorruptFile(
            f"Parquet schema differs from {PACKAGE_FORMAT}: {table.schema.names}",
            path=str(file),
        )
    return table


def _read(data: bytes | Path, dictionary: list[str] | None = None) -> pa.Table:
    # No Arrow worker threads: a process that exits right after a failed verification could
    # abort in Arrow's thread-pool teardown ("terminate called without an active exception",
    # apache/arrow#34314); the data is in memory already.
    source = pa.BufferReader(data) if isinstance(data, bytes) else data
    return pq.read_table(source, use_threads=False, pre_buffer=False,
                         read_dictionary=dictionary)


def _evolved(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A table written before a nullable field was added inside one of its columns (an
    additive contract change, such as the inventory's CPU topology), cast to the current
    schema with that field null; the table unchanged when it differs in any other way."""
    if table.schema.names != schema.names:
        return table
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return table


class EvidencePackage:
    """A package opened for reading. Tables load lazily; use :func:`verify_package` first
    when the package comes from elsewhere (its report's ``package`` reuses what it read)."""

    def __init__(self, path: Path | str, manifest: Manifest | None = None,
                 tables: dict[str, pa.Table] | None = None):
        self.path = Path(path)
        self.manifest = manifest or read_manifest(self.path)
        self._decoded = dict(tables or {})
        """Tables already decoded from these files (by verification), some with dictionary
        columns (:meth:`encoded_table`)."""
        self._plain: dict[str, pa.Table] = {}

    def table(self, name: str) -> pa.Table:
        """One of the package's tables by name (``samples``, ``artifacts``...), in the
        contract's schema (docs/formats.md)."""
        if name not in TABLE_SCHEMAS:
            raise BadInput(f"no table {name!r}; tables are {sorted(TABLE_SCHEMAS)}")
        if name in self._plain:
            return self._plain[name]
        if name in self._decoded:
            table = self._decoded[name]
            if not table.schema.equals(TABLE_SCHEMAS[name], check_metadata=False):
                table = table.cast(TABLE_SCHEMAS[name])  # dictionary columns back to strings
        else:
            try:
                table = pq.read_table(self.path / f"{name}.parquet", schema=TABLE_SCHEMAS[name])
            except (pa.ArrowInvalid, OSError) as err:
                raise CorruptFile(
                    f"cannot read: {err}", path=str(self.path / f"{name}.parquet")
                ) from None
        self._plain[name] = table
        return table

    def encoded_table(self, name: str) -> pa.Table:
        """The table as :meth:`table` gives it, but with the repetitive string columns of
        ``DICTIONARY_COLUMNS`` (sample keys: batch id, host, metric, entity, label keys and
        values) as Arrow dictionaries, as they are stored; what the evidence view reads.
        Tables without such columns are the same as :meth:`table`."""
        if name not in ENCODED_SCHEMAS:
            return self.table(name)
        if name not in self._decoded:
            try:
                table = _read(self.path / f"{name}.parquet", DICTIONARY_COLUMNS[name])
            except (pa.ArrowInvalid, OSError) as err:
                raise CorruptFile(
                    f"cannot read: {err}", path=str(self.path / f"{name}.parquet")
                ) from None
            if not table.schema.equals(ENCODED_SCHEMAS[name], check_metadata=False):
                return self.table(name)  # an older layout: read and cast by the contract
            self._decoded[name] = table
        return self._decoded[name]

    @cached_property
    def config(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads((self.path / CONFIG).read_bytes())
        return result

    @cached_property
    def artifacts(self) -> list[Artifact]:
        """Every artifact as a validated model (its id re-checked), in chain order."""
        try:
            return artifacts_from_table(self.table("artifacts"))
        except (ValidationError, ValueError) as err:
            message = err.errors()[0]["msg"] if isinstance(err, ValidationError) else str(err)
            raise ManifestMismatch(
                f"an artifact does not match its id or its schema: {message}",
                path=str(self.path / "artifacts.parquet"),
            ) from None

    @cached_property
    def artifact_ids(self) -> tuple[str, ...]:
        """The recorded artifact ids in chain order, without building the models."""
        table = self.table("artifacts").select(["position", "artifact_id"]).sort_by("position")
        return tuple(table.column("artifact_id").to_pylist())

    @cached_property
    def activities(self) -> list[ActivityRecord]:
        rows = self.table("activities").sort_by("position").to_pylist()
        return [
            ActivityRecord.model_validate(
                {
                    **{k: v for k, v in r.items() if k != "position"},
                    "request": json.loads(r["request"]),
                    "result": json.loads(r["result"]),
                }
            )
            for r in rows
        ]

    @property
    def run_id(self) -> str:
        return self.manifest.run_id
