"""The collector's configuration: a TOML file, then ``SREAGENT_COLLECTOR_*`` environment, then flags.

Later sources win: flags over environment over file over defaults. Nested keys take ``__`` in
the environment (``SREAGENT_COLLECTOR_TRANSPORT__TOKEN_FILE=/run/secrets/ingest``); lists and
tables are JSON there (``SREAGENT_COLLECTOR_TRANSPORT__ENDPOINTS='["https://ctl:8443"]'``).
Unknown keys are errors that name the key, so a typo never silently falls back to a default.
Every key is documented in docs/collector.md ("Configuration") and in
service/collector.example.toml.
"""

from __future__ import annotations

import contextvars
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from sreagent.errors import BadInput

ENV_PREFIX = "SREAGENT_COLLECTOR_"
CONFIG_ENV = "SREAGENT_COLLECTOR_CONFIG"
"""Environment variable naming the config file when ``--config`` is not given."""
DEFAULT_CONFIG_PATH = Path("/etc/sreagent/collector.toml")
"""Read when it exists and neither ``--config`` nor ``SREAGENT_COLLECTOR_CONFIG`` is set."""

PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Ratio = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SpoolSettings(_Section):
    """The on-disk queue every batch passes through (docs/collector.md, "Spool and transport")."""

    dir: Path | None = None
    """Spool directory; default ``<state_dir>/spool``."""
    max_bytes: Annotated[int, Field(ge=4096)] = 128 * 1024 * 1024
    """Bound on the spool's size; when full the oldest segment is dropped (and counted)."""
    max_age_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 24 * 3600.0
    """Records older than this are dropped (and counted); 0 keeps them until space runs out."""
    segment_bytes: Annotated[int, Field(ge=1024)] | None = None
    """Segment file size; default max_bytes / 8, between 64 KiB and 8 MiB."""
    fsync: Literal["always", "interval", "never"] = "interval"
    """When appended records are fsynced: every append, at most once per interval, or never."""
    fsync_interval_seconds: PositiveSeconds = 1.0


class TransportSettings(_Section):
    """How batches reach the controller."""

    endpoints: list[str] = []
    """Controller base URLs (``https://ctl:8443``), tried in order with failover. Empty: batches
    stay in the spool (bounded) until a controller is configured."""
    token: SecretStr | None = None
    """Bearer token with the ``ingest`` scope. Prefer ``token_file``."""
    token_file: Path | None = None
    """File holding the bearer token (read at start; surrounding whitespace ignored)."""
    ca_file: Path | None = None
    """CA bundle to verify the controller's certificate; default: the system's."""
    client_cert: Path | None = None
    """Client certificate (PEM) for mutual TLS."""
    client_key: Path | None = None
    """Its private key, when not in the certificate file."""
    encoding: Literal["json", "arrow"] = "json"
    """Batch encoding on the wire and in the spool: ``json`` (default; keeps pyarrow, some
    50 MiB of RSS, out of the collector and costs less CPU) or ``arrow`` (the Arrow IPC
    stream; less work for the controller's decoder). See docs/collector.md, "Transport"."""
    compression: Literal["auto", "none", "gzip", "zstd"] = "auto"
    """Content-Encoding. ``auto``: gzip for the JSON encoding, none for Arrow (whose body is
    already zstd-compressed inside). ``zstd`` goes through pyarrow's codec and loads it."""
    timeout_seconds: PositiveSeconds = 10.0
    backoff_initial_seconds: PositiveSeconds = 0.5
    backoff_max_seconds: PositiveSeconds = 60.0
    max_ack_mismatches: Annotated[int, Field(ge=1)] = 5
    """Mismatched acknowledgements in a row before the head batch is dead-lettered."""
    dead_letter_max_bytes: Annotated[int, Field(ge=4096)] = 64 * 1024 * 1024
    shutdown_grace_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 5.0
    """On SIGTERM, how long to keep sending what the spool holds before exiting."""

    @field_validator("endpoints")
    @classmethod
    def _urls(cls, endpoints: list[str]) -> list[str]:
        from sreagent.collector.transport import normalise_endpoint

        try:
            return [normalise_endpoint(endpoint) for endpoint in endpoints]
        except BadInput as err:
            raise ValueError(err.message) from None

    @model_validator(mode="after")
    def _one_token(self) -> TransportSettings:
        if self.token is not None and self.token_file is not None:
            raise ValueError("set token or token_file, not both")
        return self

    def bearer_token(self) -> str | None:
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is not None:
            try:
                return self.token_file.read_text().strip() or None
            except OSError as err:
                raise BadInput(
                    f"cannot read token_file {self.token_file}: {err.strerror}",
                    field="transport.token_file",
                ) from err
        return None


class ProtectionSettings(_Section):
    """Self-protection (docs/collector.md, "Self-protection")."""

    cpu_budget_cores: Annotated[float, Field(gt=0, le=64, allow_inf_nan=False)] = 0.05
    """Collector CPU allowed on average (0.05 = 5 % of one core)."""
    rss_budget_bytes: Annotated[int, Field(ge=16 * 1024 * 1024)] = 512 * 1024 * 1024
    """Resident memory above which the mode is ``pressure`` (reported; nothing is shed for it).
    The eBPF source through BCC maps LLVM, some 150 MiB; see docs/benchmarks.md."""
    pressure_fill_ratio: Ratio = 0.5
    """Spool fill from which the mode is ``pressure``."""
    critical_fill_ratio: Ratio = 0.8
    """Spool fill from which the mode is ``critical``."""
    max_interval_seconds: PositiveSeconds = 60.0
    """The interval is never stretched beyond this."""
    cpu_window_seconds: PositiveSeconds = 30.0
    """CPU is judged as the average over this window, so periodic work (the process scan)
    counts for its average cost."""
    recover_after_intervals: Annotated[int, Field(ge=1)] = 5
    """Intervals under budget before one shed source comes back and the stretch eases."""
    shed_order: list[str] | None = None
    """Optional sources in the order they are shed; default: the sources facade's
    ``SHED_ORDER`` (scrape, ebpf, taskstats, processes, sock_diag, cgroup)."""

    @model_validator(mode="after")
    def _ordered(self) -> ProtectionSettings:
        if self.critical_fill_ratio < self.pressure_fill_ratio:
            raise ValueError("critical_fill_ratio must not be below pressure_fill_ratio")
        return self


class ScrapeTargetSettings(_Section):
    """A Prometheus text endpoint on the host whose series join the batch."""

    name: str
    """Short name, used in the entity ``scrape/<name>``."""
    url: str
    timeout_seconds: PositiveSeconds = 2.0


class SourceSettings(_Section):
    """Which sources run and how often the slow ones do (docs/collector.md, "Sources")."""

    enabled: list[str] | None = None
    """Only these built-in sources (default: all of them)."""
    disabled: list[str] = []
    """Sources never started: built-in names, ``kmsg`` or ``ebpf``."""
    process_interval_seconds: PositiveSeconds = 15.0
    """Full process scan (and taskstats) interval; rounded to whole sampling intervals."""
    cgroup_interval_seconds: PositiveSeconds | None = None
    """cgroup walk interval; default: every sample."""
    inventory_interval_seconds: PositiveSeconds = 3600.0
    """Hardware inventory refresh."""
    top_n: Annotated[int, Field(ge=0)] = 10
    """Processes enriched per ranking (CPU, RSS, IO)."""
    pss_top: Annotated[int, Field(ge=0)] = 0
    """Largest processes whose PSS is read from smaps_rollup (costly; 0 = none)."""
    cgroup_max: Annotated[int, Field(ge=0)] = 200
    cgroup_depth: Annotated[int, Field(ge=0)] = 4
    kernel_interfaces: bool = True
    """False forces the procfs fallbacks (no perf_event_open, netlink, sock_diag, taskstats)."""
    scrape: list[ScrapeTargetSettings] = []


class CollectorSettings(BaseSettings):
    """Everything ``sreagent collect`` reads."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    collector_id: str | None = None
    """Stable identity; default: generated once and kept in ``<state_dir>/collector_id``."""
    host: str | None = None
    """Host name sent with every batch; default: the system's host name."""
    labels: dict[str, str] = {}
    """Host-level labels sent with every batch (cluster, node pool...)."""
    state_dir: Path = Path("/var/lib/sreagent/collector")
    """Holds collector_id, the spool and the dead-letter file."""
    interval_seconds: PositiveSeconds = 5.0
    """Base sampling interval; one batch per interval."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    spool: SpoolSettings = SpoolSettings()
    transport: TransportSettings = TransportSettings()
    protection: ProtectionSettings = ProtectionSettings()
    sources: SourceSettings = SourceSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _config_file.get()
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        if path is not None:
            sources += (TomlConfigSettingsSource(settings_cls, toml_file=path),)
        return sources

    @property
    def spool_dir(self) -> Path:
        return self.spool.dir or self.state_dir / "spool"

    @property
    def dead_letter_path(self) -> Path:
        return self.state_dir / "dead-letter.jsonl"


_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "sreagent_collector_config_file", default=None
)


def load_settings(
    config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> CollectorSettings:
    """Settings from ``config_file`` (TOML), the environment and ``overrides`` (the flags).

    Raises :class:`~sreagent.errors.BadInput` naming the file and the key that is wrong.
    """
    if config_file is not None:
        _check_toml(config_file)
    token = _config_file.set(config_file)
    try:
        return CollectorSettings(**_drop_none(overrides or {}))
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        origin = (
            f" (file {config_file}, environment {ENV_PREFIX}*, or flags)" if config_file else ""
        )
        raise BadInput(f"{first['msg']}{origin}", field=where or None) from None
    finally:
        _config_file.reset(token)


def _check_toml(path: Path) -> None:
    try:
        tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BadInput("config file not found", path=str(path)) from None
    except OSError as err:
        raise BadInput(f"config file unreadable: {err.strerror}", path=str(path)) from None
    except tomllib.TOMLDecodeError as err:
        raise BadInput(f"not valid TOML: {err}", path=str(path)) from None


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    """Flags left unset must not override the file or the environment."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            nested = _drop_none(value)
            if nested:
                out[key] = nested
        elif value is not None:
            out[key] = value
    return out
