"""Configuration: command-line flags, then ``GPUFLEET_*`` environment, then a TOML file.

The TOML file is ``--config PATH`` or ``$GPUFLEET_CONFIG``; nested tables map to nested
settings (``[alerts]``, ``[retention]``). Environment variables use ``__`` for nesting, e.g.
``GPUFLEET_ALERTS__TEMP_MARGIN_C=5``. Settings are built once by the CLI and injected;
nothing reads them at import time.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from gpufleet.analysis.pricing import DEFAULT_PRICE_TABLE, PriceTable
from gpufleet.store.base import DAY_S, Retention


def default_db_path() -> Path:
    """Embedded SQLite database under the XDG data directory."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gpufleet" / "gpufleet.db"


class RetentionSettings(BaseModel):
    """Days kept per resolution."""

    model_config = ConfigDict(extra="forbid")

    raw_days: float = Field(7.0, gt=0)
    minute_days: float = Field(90.0, gt=0)
    hour_days: float = Field(730.0, gt=0)

    def to_retention(self) -> Retention:
        """As the store's Retention record."""
        return Retention(
            raw_s=self.raw_days * DAY_S,
            minute_s=self.minute_days * DAY_S,
            hour_s=self.hour_days * DAY_S,
        )


class AlertSettings(BaseModel):
    """Thresholds and hold times of the built-in alert rules."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    temp_margin_c: float = Field(5.0, ge=0, description="Fire when within this of slowdown temp.")
    temp_fallback_c: float = Field(85.0, gt=0, description="Used when slowdown temp is unknown.")
    gpu_mem_pct: float = Field(95.0, gt=0, le=100)
    power_pct: float = Field(98.0, gt=0)
    idle_allocated_hold_s: float = Field(1800.0, ge=0)
    host_cpu_pct: float = Field(95.0, gt=0, le=100)
    host_mem_pct: float = Field(95.0, gt=0, le=100)
    host_disk_pct: float = Field(95.0, gt=0, le=100)
    hold_s: float = Field(60.0, ge=0, description="A condition must last this long to fire.")
    cooldown_s: float = Field(900.0, ge=0, description="Quiet time before the same alert re-fires.")
    webhook_url: str | None = None
    webhook_timeout_s: float = Field(5.0, gt=0)

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class PriceSettings(BaseModel):
    """USD per GPU-hour by GPU model: overrides and additions to the built-in list prices."""

    model_config = ConfigDict(extra="forbid")

    usd_per_gpu_hour: dict[str, float] = Field(
        default_factory=dict,
        description="model key (H100, 'A100 40GB', or a full NVML name) -> USD per GPU-hour",
    )
    fallback_usd_per_gpu_hour: float | None = Field(
        None, ge=0, description="price of a model no key matches (default: built-in fallback)"
    )
    replace_defaults: bool = Field(
        False, description="use only the prices given here, not the built-in list prices"
    )

    def to_table(self) -> PriceTable:
        """The price table these settings describe."""
        base = {} if self.replace_defaults else dict(DEFAULT_PRICE_TABLE.usd_per_gpu_hour)
        fallback = self.fallback_usd_per_gpu_hour
        return PriceTable(
            usd_per_gpu_hour={**base, **self.usd_per_gpu_hour},
            fallback_usd_per_gpu_hour=(
                DEFAULT_PRICE_TABLE.fallback_usd_per_gpu_hour if fallback is None else fallback
            ),
        )


class ExecutorSettings(BaseModel):
    """Where ``execute`` sends a recommendation's action when it is not a dry run."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["none", "webhook", "command"] = Field(
        "none", description="none: only dry runs; webhook: POST JSON; command: run a program"
    )
    webhook_url: str | None = None
    webhook_token: str | None = Field(None, description="sent as 'Authorization: Bearer ...'")
    command: list[str] | None = Field(
        None, description="argv of the program to run (no shell); the action JSON is its stdin"
    )
    timeout_s: float = Field(30.0, gt=0, le=3600)

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("command")
    @classmethod
    def _argv(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or not value[0].strip()):
            raise ValueError('must name a program, e.g. ["/usr/local/bin/gpu-action"]')
        return value

    @model_validator(mode="after")
    def _complete(self) -> ExecutorSettings:
        if self.kind == "webhook" and not self.webhook_url:
            raise ValueError("kind 'webhook' needs webhook_url")
        if self.kind == "command" and not self.command:
            raise ValueError("kind 'command' needs command")
        return self


class LlmSettings(BaseModel):
    """An optional OpenAI-compatible chat endpoint for the analyst (OpenAI, vLLM, Ollama,
    llama.cpp server). Unset: the analyst works offline, as it always can."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        None, description="base URL of the API, e.g. http://127.0.0.1:11434/v1 (Ollama)"
    )
    model: str | None = Field(None, description="model name, e.g. llama3.1:8b or gpt-4o-mini")
    api_key: str | None = Field(None, description="sent as 'Authorization: Bearer ...'")
    timeout_s: float = Field(8.0, gt=0, le=120, description="per call; slower is ignored")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _complete(self) -> LlmSettings:
        if self.url and not self.model:
            raise ValueError("an llm url needs a model")
        return self


class HubSettings(BaseModel):
    """Where an agent pushes its samples (``gpufleet agent --hub URL --token T``). Unset: the
    agent is standalone, as it always can be."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, description="the hub's base URL, e.g. http://hub:8100")
    token: str | None = Field(None, description="a token with the node-join scope")
    spool: str | None = Field(
        None, description="disk buffer for samples while the hub is away (default: beside db)"
    )
    spool_max_snapshots: int = Field(
        100_000, ge=1, description="most samples buffered; the oldest go first past it"
    )
    push_interval_s: float = Field(2.0, gt=0, le=3600)
    labels: dict[str, str] = Field(default_factory=dict)
    zone: str | None = None
    pool: str | None = None
    advertise_url: str | None = Field(
        None, description="how the hub reaches this agent's API (default http://host:port)"
    )
    advertise: bool = Field(
        False, description="announce this agent on the LAN (mDNS _gpufleet._tcp, UDP broadcast)"
    )
    run_tasks: bool = Field(
        False,
        description="run task parts the hub places here (any submit token's commands, as this "
        "agent's user): off unless asked for",
    )
    model_servers: list[str] = Field(
        default_factory=list,
        description="base URLs of model servers on this node (Ollama, vLLM, llama.cpp...) "
        "whose models the hub may route requests to; give URLs the hub can reach",
    )
    task_dir: str | None = Field(
        None, description="where task parts run, one folder each (default: beside db)"
    )

    @field_validator("url", "advertise_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @field_validator("model_servers")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} must be an http:// or https:// URL")
        return [u.rstrip("/") for u in value]

    @model_validator(mode="after")
    def _complete(self) -> HubSettings:
        if self.run_tasks and not self.url:
            raise ValueError("run_tasks takes tasks from a hub: give the hub's url too")
        if self.url and not self.token:
            raise ValueError(
                "a hub url needs a token (--token, or GPUFLEET_HUB__TOKEN): ask the hub's "
                "operator for one with the node-join scope"
            )
        return self


class KvCacheSettings(BaseModel):
    """vLLM and LMCache servers whose ``/metrics`` the agent scrapes (``/lmcache/*``,
    ``gpufleet kvcache``). Unset: nothing is scraped."""

    model_config = ConfigDict(extra="forbid")

    vllm_urls: list[str] = Field(
        default_factory=list, description="vLLM servers, e.g. http://127.0.0.1:8000 (/metrics)"
    )
    lmcache_urls: list[str] = Field(
        default_factory=list,
        description="LMCache multi-process servers' /metrics, e.g. http://127.0.0.1:8080",
    )
    interval_s: float = Field(15.0, gt=0, le=3600, description="seconds between scrapes")
    timeout_s: float = Field(5.0, gt=0, le=120)
    config_path: str | None = Field(
        None, description="the LMCache YAML that /lmcache/configure writes (LMCACHE_CONFIG_FILE)"
    )
    block_size: int = Field(16, ge=1, description="vLLM's KV block size (chunk_size multiple)")
    disk_path: str = Field("/var/cache/lmcache/", description="where a new disk tier goes")
    mode: Literal["in_process", "mp"] | None = Field(
        None,
        description="LMCache in vLLM (LMCacheConnectorV1) or its MP server (LMCacheMPConnector); "
        "unset: mp when an LMCache MP server is among the sources, else in_process",
    )

    @field_validator("vllm_urls", "lmcache_urls")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} must be an http:// or https:// URL")
        return value


class Settings(BaseSettings):
    """Everything the agent and the CLI can be told."""

    model_config = SettingsConfigDict(
        env_prefix="GPUFLEET_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    host: str = "127.0.0.1"
    port: int = Field(8003, ge=1, le=65535)
    allow_remote: bool = False
    source: Literal["auto", "nvml", "sim"] = "auto"
    sim_gpus: int = Field(8, ge=1, le=1024)
    sim_model: str = "NVIDIA H100 80GB HBM3"
    sim_seed: int = 0
    interval_s: float = Field(2.0, gt=0, le=3600)
    flush_interval_s: float = Field(10.0, gt=0, le=3600)
    db: str = Field(default_factory=lambda: str(default_db_path()))
    cluster: str = Field(default_factory=socket.gethostname)
    node: str = Field(default_factory=socket.gethostname)
    idle_threshold_pct: float = Field(5.0, ge=0, le=100)
    proc_root: str = "/proc"
    team_map: dict[str, str] = Field(
        default_factory=dict, description="unix user -> namespace (team) for bare-metal nodes"
    )
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    prices: PriceSettings = Field(default_factory=PriceSettings)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    hub: HubSettings = Field(default_factory=HubSettings)
    kvcache: KvCacheSettings = Field(default_factory=KvCacheSettings)
    otlp: bool | None = Field(
        None,
        description="export metrics over OTLP/HTTP to the OTEL_EXPORTER_OTLP_* endpoint "
        "(needs gpufleet[otel]); unset: on when OTEL_EXPORTER_OTLP_ENDPOINT or "
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is set",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("cluster", "node")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @property
    def is_loopback(self) -> bool:
        """True when ``host`` only accepts connections from this machine."""
        return is_loopback_host(self.host)


def is_loopback_host(host: str) -> bool:
    """Whether binding ``host`` keeps the API on this machine."""
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SettingsFileError(ValueError):
    """The TOML file is not valid TOML; the message names the file and the position."""


def load_settings(config_file: str | Path | None = None, **flags: Any) -> Settings:
    """Build settings from flags (None values are ignored), environment and the TOML file.

    Raises:
        FileNotFoundError: the config file does not exist.
        SettingsFileError: the config file is not valid TOML.
        pydantic.ValidationError: a value is out of range; the message names the field.
    """
    path_text = str(config_file) if config_file is not None else os.environ.get("GPUFLEET_CONFIG")
    given = {key: value for key, value in flags.items() if value is not None}
    if not path_text:
        return Settings(**given)
    path = Path(path_text)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsFileError(f"cannot read config {path}: {exc}") from None
    return _reading(path)(**given)


def _reading(path: Path) -> type[Settings]:
    """Settings whose lowest-priority source is the TOML file at ``path``."""

    class FileSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            toml = TomlConfigSettingsSource(settings_cls, toml_file=path)
            return (init_settings, env_settings, toml)

    return FileSettings
