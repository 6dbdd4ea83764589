"""Whether the agent exports over OTLP, and where: read from the standard ``OTEL_*`` variables.

Nothing here imports OpenTelemetry, so a bad variable is reported at start-up, by name,
whether or not the SDK is installed. The variables and their defaults follow the
OpenTelemetry specification (SDK environment variables and OTLP exporter configuration):
durations are milliseconds, a per-signal variable (``..._METRICS_...``) wins over the
general one, and ``OTEL_EXPORTER_OTLP_ENDPOINT`` is a base URL to which ``/v1/metrics`` is
appended while ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` is used as it is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote, urlsplit

__all__ = [
    "DEFAULT_ENDPOINT",
    "OtlpConfig",
    "OtlpConfigError",
    "load_otlp_config",
    "otlp_requested",
]

DEFAULT_ENDPOINT = "http://localhost:4318/v1/metrics"
"""Where metrics go when no endpoint variable is set (an OpenTelemetry Collector's OTLP/HTTP
receiver on this machine)."""

METRICS_PATH = "v1/metrics"

ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
METRICS_ENDPOINT = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
HEADERS = "OTEL_EXPORTER_OTLP_HEADERS"
METRICS_HEADERS = "OTEL_EXPORTER_OTLP_METRICS_HEADERS"
TIMEOUT = "OTEL_EXPORTER_OTLP_TIMEOUT"
METRICS_TIMEOUT = "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"
PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
METRICS_PROTOCOL = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"
COMPRESSION = "OTEL_EXPORTER_OTLP_COMPRESSION"
METRICS_COMPRESSION = "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION"
CERTIFICATE = "OTEL_EXPORTER_OTLP_CERTIFICATE"
METRICS_CERTIFICATE = "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE"
CLIENT_KEY = "OTEL_EXPORTER_OTLP_CLIENT_KEY"
METRICS_CLIENT_KEY = "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY"
CLIENT_CERTIFICATE = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"
METRICS_CLIENT_CERTIFICATE = "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE"
EXPORT_INTERVAL = "OTEL_METRIC_EXPORT_INTERVAL"
EXPORT_TIMEOUT = "OTEL_METRIC_EXPORT_TIMEOUT"
SERVICE_NAME = "OTEL_SERVICE_NAME"
RESOURCE_ATTRIBUTES = "OTEL_RESOURCE_ATTRIBUTES"
SDK_DISABLED = "OTEL_SDK_DISABLED"
METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"

Compression = Literal["none", "gzip", "deflate"]

# RFC 7230 token characters: what an HTTP header name may hold.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class OtlpConfigError(ValueError):
    """An ``OTEL_*`` variable holds a value the exporter cannot use; the message names it."""


@dataclass(frozen=True, slots=True)
class OtlpConfig:
    """Everything the OTLP/HTTP metric export needs, already checked.

    Attributes:
        endpoint: Full URL the metrics are POSTed to (ends in ``/v1/metrics`` unless
            ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` said otherwise).
        headers: Extra HTTP headers sent with every export (an ``authorization`` token).
        timeout_s: Longest one export may take, retries included.
        compression: Body encoding.
        export_interval_s: Seconds between exports.
        export_timeout_s: Longest one collection-and-export may take.
        certificate_file: CA bundle to trust for https, or None for the system's.
        client_key_file: Private key of a TLS client certificate.
        client_certificate_file: TLS client certificate.
        resource_attributes: ``OTEL_RESOURCE_ATTRIBUTES`` with ``OTEL_SERVICE_NAME`` as
            ``service.name``; they override gpufleet's own resource attributes.
    """

    endpoint: str = DEFAULT_ENDPOINT
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 10.0
    compression: Compression = "none"
    export_interval_s: float = 60.0
    export_timeout_s: float = 30.0
    certificate_file: str | None = None
    client_key_file: str | None = None
    client_certificate_file: str | None = None
    resource_attributes: Mapping[str, str] = field(default_factory=dict)


def otlp_requested(setting: bool | None, environ: Mapping[str, str]) -> bool:
    """Whether the agent should export over OTLP.

    Args:
        setting: ``--otlp`` / ``--no-otlp`` / ``GPUFLEET_OTLP`` / ``otlp`` in the TOML file;
            None when none of them was given.
        environ: The process environment.

    Returns:
        ``setting`` when given. Otherwise True when an OTLP endpoint variable is set, unless
        ``OTEL_SDK_DISABLED=true`` or ``OTEL_METRICS_EXPORTER`` names other exporters only
        (those say the user does not want metrics sent over OTLP).
    """
    if setting is not None:
        return setting
    if not (_get(environ, METRICS_ENDPOINT) or _get(environ, ENDPOINT)):
        return False
    if _get(environ, SDK_DISABLED).lower() == "true":
        return False
    exporters = _get(environ, METRICS_EXPORTER).lower()
    return not exporters or "otlp" in {e.strip() for e in exporters.split(",")}


def load_otlp_config(environ: Mapping[str, str]) -> OtlpConfig:
    """Read and check the OTLP metric exporter's variables.

    Raises:
        OtlpConfigError: a variable is malformed, or asks for a protocol other than
            http/protobuf; the message names the variable and what to set instead.
    """
    _check_protocol(environ)
    headers_var = METRICS_HEADERS if _get(environ, METRICS_HEADERS) else HEADERS
    timeout_var = METRICS_TIMEOUT if _get(environ, METRICS_TIMEOUT) else TIMEOUT
    compression_var = METRICS_COMPRESSION if _get(environ, METRICS_COMPRESSION) else COMPRESSION
    return OtlpConfig(
        endpoint=_endpoint(environ),
        headers=_headers(headers_var, _get(environ, headers_var)),
        timeout_s=_millis(timeout_var, _get(environ, timeout_var), 10_000) / 1000,
        compression=_compression(compression_var, _get(environ, compression_var)),
        export_interval_s=_millis(EXPORT_INTERVAL, _get(environ, EXPORT_INTERVAL), 60_000) / 1000,
        export_timeout_s=_millis(EXPORT_TIMEOUT, _get(environ, EXPORT_TIMEOUT), 30_000) / 1000,
        certificate_file=_get(environ, METRICS_CERTIFICATE) or _get(environ, CERTIFICATE) or None,
        client_key_file=_get(environ, METRICS_CLIENT_KEY) or _get(environ, CLIENT_KEY) or None,
        client_certificate_file=(
            _get(environ, METRICS_CLIENT_CERTIFICATE) or _get(environ, CLIENT_CERTIFICATE) or None
        ),
        resource_attributes=_resource_attributes(environ),
    )


def _get(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def _check_protocol(environ: Mapping[str, str]) -> None:
    var = METRICS_PROTOCOL if _get(environ, METRICS_PROTOCOL) else PROTOCOL
    protocol = _get(environ, var).lower()
    if protocol in ("", "http/protobuf"):
        return
    raise OtlpConfigError(
        f"{var}={protocol!r}: gpufleet exports metrics over OTLP http/protobuf only; set "
        f"{var}=http/protobuf (or unset it) and point {ENDPOINT} at the collector's OTLP/HTTP "
        "port (4318 by default)"
    )


def _endpoint(environ: Mapping[str, str]) -> str:
    if url := _get(environ, METRICS_ENDPOINT):
        _check_url(METRICS_ENDPOINT, url)
        return url
    if base := _get(environ, ENDPOINT):
        _check_url(ENDPOINT, base)
        return f"{base.rstrip('/')}/{METRICS_PATH}"
    return DEFAULT_ENDPOINT


def _check_url(var: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OtlpConfigError(
            f"{var}={url!r} is not an http:// or https:// URL; e.g. {var}=http://collector:4318"
        )
    try:
        _ = parts.port
    except ValueError:
        raise OtlpConfigError(f"{var}={url!r} has an invalid port") from None


def _pairs(var: str, text: str, what: str) -> dict[str, str]:
    """``key=value`` pairs separated by commas; values are percent-decoded (W3C Baggage)."""
    found: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = unquote(key).strip()
        if not sep or not key:
            raise OtlpConfigError(
                f"{var}: {item.strip()!r} is not a {what}=value pair; write e.g. "
                f"{var}='{what}=value,other={what}' (percent-encode commas in values)"
            )
        found[key] = unquote(value).strip()
    return found


def _headers(var: str, text: str) -> dict[str, str]:
    headers = _pairs(var, text, "name")
    for name in headers:
        if not _HEADER_NAME.match(name):
            raise OtlpConfigError(f"{var}: {name!r} is not a valid HTTP header name")
    return {name.lower(): value for name, value in headers.items()}


def _millis(var: str, text: str, default: float) -> float:
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise OtlpConfigError(
            f"{var}={text!r} is not a number; give milliseconds, e.g. {var}={int(default)}"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise OtlpConfigError(f"{var}={text!r} must be a positive number of milliseconds")
    return value


def _compression(var: str, text: str) -> Compression:
    value = text.lower() or "none"
    if value == "none":
        return "none"
    if value == "gzip":
        return "gzip"
    if value == "deflate":
        return "deflate"
    raise OtlpConfigError(f"{var}={text!r}: use gzip or none")


def _resource_attributes(environ: Mapping[str, str]) -> dict[str, str]:
    attributes = _pairs(RESOURCE_ATTRIBUTES, _get(environ, RESOURCE_ATTRIBUTES), "key")
    if service := _get(environ, SERVICE_NAME):
        attributes["service.name"] = service
    return attributes
