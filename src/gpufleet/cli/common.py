"""Shared CLI helpers: one-line errors, settings from flags, HTTP to an agent."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console

from gpufleet.settings import Settings, load_settings

console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``gpufleet: message`` on stderr and exit non-zero."""
    err_console.print(f"[bold red]gpufleet:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def settings_from(config: Path | None, **flags: Any) -> Settings:
    """Settings from flags > environment > TOML, or a one-line error."""
    try:
        return load_settings(config, **flags)
    except FileNotFoundError as exc:
        fail(str(exc))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        fail(f"invalid setting {where}: {first['msg']}")


def print_json(data: Any) -> None:
    """JSON on stdout, nothing else (so it pipes into jq)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def get_json(
    url: str, path: str, params: dict[str, Any] | None = None, token: str | None = None
) -> Any:
    """GET ``url + path`` from an agent; errors become one-line messages."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    clean = {k: v for k, v in (params or {}).items() if v is not None}
    try:
        response = httpx.get(url.rstrip("/") + path, params=clean, headers=headers, timeout=10.0)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {exc}")
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        fail(f"{url}{path} answered {response.status_code}: {detail}")
    return response.json()


def guarded(func: Callable[[], T], what: str) -> T:
    """Run ``func``; turn expected library errors into a one-line message."""
    from gpufleet.collectors.registry import SourceUnavailableError
    from gpufleet.store.base import StoreError
    from gpufleet.timeparse import TimeParseError

    try:
        return func()
    except (StoreError, SourceUnavailableError, TimeParseError, ValueError) as exc:
        fail(f"{what}: {exc}")
