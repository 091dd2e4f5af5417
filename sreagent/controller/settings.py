"""Controller settings: one YAML or TOML file, overridden by ``SREAGENT_*`` environment variables.

Precedence, highest first: keyword arguments (tests), environment (``SREAGENT_DATA_DIR``,
nested keys with ``__``: ``SREAGENT_HOT_STATE__MAX_HOSTS``), the config file, defaults.
docs/controller.md lists every key; service/controller.example.yaml is a commented example.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from sreagent.errors import BadInput
from sreagent.runtime import ChainConfig

Scope = Literal["ingest", "read", "approve", "admin"]
SCOPES: tuple[Scope, ...] = ("ingest", "read", "approve", "admin")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TokenEntry(_Section):
    """One bearer token, stored as the SHA-256 of the token (never the token itself)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    """Who holds it (shown in the audit log as the actor)."""
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    """``sreagent serve hash-token`` prints this for a token; hex SHA-256 of its UTF-8 bytes."""
    scopes: Annotated[list[Scope], Field(min_length=1)]


class AuthSettings(_Section):
    tokens: list[TokenEntry] = []


class TlsSettings(_Section):
    certfile: Path | None = None
    keyfile: Path | None = None


class HotStateSettings(_Section):
    max_hosts: Annotated[int, Field(ge=1)] = 5000
    """Hosts kept; the least recently updated host is evicted beyond this."""
    max_series_per_host: Annotated[int, Field(ge=1)] = 2000
    """Series (metric, entity, labels) per host; new series beyond this are dropped (counted)."""
    samples_per_series: Annotated[int, Field(ge=2)] = 720
    """Ring buffer length per series; older samples are overwritten (counted)."""
    events_per_host: Annotated[int, Field(ge=1)] = 1000
    rebuild_window_s: Annotated[float, Field(ge=0)] = 900.0
    """At start-up, refill hot state from the journal's last this-many seconds (0: off)."""


class JournalSettings(_Section):
    buffer_rows: Annotated[int, Field(ge=1)] = 2_000_000
    """Acknowledged rows kept in memory (they are in the write-ahead log) before a Parquet
    flush is forced."""
    flush_interval_s: Annotated[float, Field(gt=0)] = 30.0
    """Write buffered batches as Parquet part files at least this often. Every flush writes one
    file per table and hour, so longer intervals mean fewer, larger files."""
    compact_min_files: Annotated[int, Field(ge=2)] = 16
    """Compact a partition's small part files once it holds this many of them."""
    compact_max_rows: Annotated[int, Field(ge=1000)] = 1_000_000
    """Most rows one compaction merges (bounds its memory); files of a quarter of this or
    more count as large and are left alone."""
    compact_interval_s: Annotated[float, Field(gt=0)] = 60.0
    max_pending_batches: Annotated[int, Field(ge=1)] = 2000
    """Batches waiting for a flush beyond which ingest answers 503 (back-pressure)."""


class IngestSettings(_Section):
    decode_workers: Annotated[int, Field(ge=0, le=64)] | None = None
    """Child processes that decode, validate and digest ingest bodies
    (``sreagent.controller.decoders``), so that this work runs beside the controller's own
    process instead of behind its GIL. 0: decode in threads of the controller process. Unset:
    one per CPU the controller may run on, or 0 on a single CPU."""

    @property
    def effective_decode_workers(self) -> int:
        if self.decode_workers is not None:
            return self.decode_workers
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
        return cpus if cpus > 1 else 0


class DebugSettings(_Section):
    """Diagnostics that cost performance; all off by default."""

    memory_profile_dir: Path | None = None
    """Folder for the memory profile (``sreagent.controller.memprofile``): RSS, Arrow and
    malloc figures every ``memory_sample_interval_s``, tracemalloc growth since snapshot
    ``memory_baseline_snapshot`` every ``memory_snapshot_interval_s``, journal flush and
    compaction times. Unset: no profiling, no tracemalloc."""
    memory_tracemalloc: bool = True
    """With a ``memory_profile_dir``: also trace Python allocations (snapshots). False keeps
    only the cheap per-interval samples."""
    memory_sample_interval_s: Annotated[float, Field(gt=0)] = 1.0
    memory_snapshot_interval_s: Annotated[float, Field(gt=0)] = 60.0
    memory_baseline_snapshot: Annotated[int, Field(ge=1)] = 2


class ThresholdRule(_Section):
    """Open an incident when ``metric`` of ``entity`` is above ``above`` for ``for_samples``."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]
    metric: str
    entity: str = "host"
    above: float
    for_samples: Annotated[int, Field(ge=1)] = 3
    severity: Literal["warning", "error", "critical"] = "warning"


class WorkflowSettings(_Section):
    max_concurrent_runs: Annotated[int, Field(ge=1)] = 2
    window_s: Annotated[float, Field(gt=0)] = 300.0
    """Telemetry window a run looks at, ending at the detection time."""
    chain: Literal["roles", "builtin"] = "roles"
    """``roles``: the role chain (``sreagent.chain.RoleChain``, docs/roles.md). ``builtin``: the
    controller's small threshold chain (no root-cause analysis; tests and minimal setups)."""
    chain_config: ChainConfig = ChainConfig()
    """The role chain's configuration (docs/roles.md), except the posture's ``dry_run`` and
    ``require_approval``, which come from the two keys below."""
    runbooks_dir: Path | None = None
    """Folder of runbook ``*.md`` the role chain retrieves from; default: the shipped ones."""
    require_approval: bool = True
    """State-changing actions wait for an operator: the run stops in awaiting_approval before
    the executor step (the role chain's ``posture.require_approval``)."""
    dry_run: bool = True
    """Record commands without running them (the role chain's ``posture.dry_run``)."""
    verify_after_s: Annotated[float, Field(ge=0)] = 30.0
    """After an approved action ran, the role chain's verifier waits this long for telemetry
    and compares the metric it was meant to move before and after it (docs/roles.md,
    Verifier). 0: verify at once over the run's own window (always inconclusive)."""
    rules: list[ThresholdRule] = [
        ThresholdRule(name="cpu_saturation", metric="cpu_utilisation_ratio", above=0.95),
        ThresholdRule(name="memory_pressure", metric="psi_memory_some_ratio", above=0.2),
    ]

    @model_validator(mode="after")
    def _posture_set_once(self) -> WorkflowSettings:
        # Two places for one switch would let one silently win over the other.
        posture = self.chain_config.posture
        for key in ("dry_run", "require_approval"):
            if "posture" in self.chain_config.model_fields_set and key in posture.model_fields_set:
                raise ValueError(f"set workflow.{key}, not workflow.chain_config.posture.{key}")
        return self

    @property
    def effective_chain_config(self) -> ChainConfig:
        """``chain_config`` with the posture's switches taken from ``dry_run`` and
        ``require_approval``."""
        posture = self.chain_config.posture.model_copy(
            update={"dry_run": self.dry_run, "require_approval": self.require_approval})
        return self.chain_config.model_copy(update={"posture": posture})


class WebhookTarget(_Section):
    url: str
    format: Literal["json", "slack"] = "json"
    events: list[
        Literal["incident_opened", "approval_needed", "action_executed", "incident_closed"]
    ] = ["incident_opened", "approval_needed", "action_executed", "incident_closed"]


class NotificationSettings(_Section):
    webhooks: list[WebhookTarget] = []
    queue_size: Annotated[int, Field(ge=1)] = 1000
    """Notifications waiting to be sent; beyond this new ones are dropped (counted)."""
    retries: Annotated[int, Field(ge=0)] = 3
    backoff_s: Annotated[float, Field(ge=0)] = 0.5
    timeout_s: Annotated[float, Field(gt=0)] = 5.0


class LeaderSettings(_Section):
    enabled: bool = False
    """Take a lease in the run store before ingesting or running workflows (PostgreSQL HA)."""
    ttl_s: Annotated[float, Field(gt=0)] = 10.0
    node_id: str = ""
    """Defaults to ``<hostname>-<pid>``."""
    advertise_url: str = ""
    """The URL followers send collectors to; defaults to http://<host>:<port>."""


class Settings(BaseSettings):
    """Everything ``sreagent serve`` reads."""

    model_config = SettingsConfigDict(
        env_prefix="SREAGENT_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    data_dir: Path = Path("/var/lib/sreagent")
    """Holds ``journal/``, ``runs/`` (evidence packages) and, by default, ``controller.db``."""
    database_url: str = ""
    """SQLAlchemy URL; empty means SQLite (WAL) at ``<data_dir>/controller.db``. PostgreSQL:
    ``postgresql+psycopg://user@host/db`` (set through SREAGENT_DATABASE_URL to keep secrets
    out of files)."""
    evidence_dir: Path | None = None
    """Folder ``POST /api/v1/replay`` may read evidence packages from; default
    ``<data_dir>/runs`` (where runs write theirs). Paths resolving outside it are refused."""
    insecure_dev: bool = False
    """Serve without authentication. Development only; a warning is logged at start-up."""
    auth: AuthSettings = AuthSettings()
    tls: TlsSettings = TlsSettings()
    hot_state: HotStateSettings = HotStateSettings()
    journal: JournalSettings = JournalSettings()
    ingest: IngestSettings = IngestSettings()
    workflow: WorkflowSettings = WorkflowSettings()
    notifications: NotificationSettings = NotificationSettings()
    leader: LeaderSettings = LeaderSettings()
    debug: DebugSettings = DebugSettings()

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("database_url must be a sqlite:// or postgresql+psycopg:// URL")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'controller.db'}"

    @property
    def journal_root(self) -> Path:
        return self.data_dir / "journal"

    @property
    def runs_root(self) -> Path:
        return self.data_dir / "runs"

    @property
    def replay_root(self) -> Path:
        return self.evidence_dir or self.runs_root


def hash_token(token: str) -> str:
    """What goes into ``auth.tokens[].sha256`` for a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Settings from a YAML/TOML file (optional) plus environment plus ``overrides``.

    Raises :class:`BadInput` naming the key when the file or a value is wrong.
    """
    from pydantic import ValidationError

    file_values: dict[str, Any] = {}
    if path is not None:
        file_values = _read_config_file(Path(path))

    class _FromFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, env_settings, _DictSource(settings_cls, file_values)

    try:
        loaded = _FromFile(**overrides)
    except ValidationError as err:
        first = err.errors()[0]
        raise BadInput(
            first["msg"],
            field=".".join(str(p) for p in first["loc"]),
            path=str(path) if path else None,
        ) from None
    return Settings.model_validate(loaded.model_dump(exclude_unset=True))


class _DictSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]):
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise BadInput("config file does not exist", path=str(path))
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            values = YamlConfigSettingsSource(Settings, yaml_file=path)()
        elif suffix == ".toml":
            values = TomlConfigSettingsSource(Settings, toml_file=path)()
        else:
            raise BadInput("config file must end in .yaml, .yml or .toml", path=str(path))
    except BadInput:
        raise
    except Exception as err:  # yaml.YAMLError, tomllib.TOMLDecodeError, UnicodeDecodeError
        raise BadInput(f"cannot parse config file: {err}", path=str(path)) from None
    if not isinstance(values, dict):
        raise BadInput("config file must hold a mapping at the top level", path=str(path))
    return values
