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
from rich.markup import escape

from gpufleet.settings import Settings, SettingsFileError, load_settings
from gpufleet.store.base import Store

# Piped output has no terminal width; 80 columns would fold tables mid-number.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

T = TypeVar("T")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``gpufleet: message`` on stderr and exit non-zero.

    ``message`` is plain text: brackets in it (``[executor]``, a path) are printed as they are.
    """
    err_console.print(f"[bold red]gpufleet:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def settings_from(config: Path | None, **flags: Any) -> Settings:
    """Settings from flags > environment > TOML, or a one-line error."""
    try:
        return load_settings(config, **flags)
    except (FileNotFoundError, SettingsFileError) as exc:
        fail(str(exc))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        fail(f"invalid setting {where}: {first['msg']}")


def print_json(data: Any) -> None:
    """JSON on stdout, nothing else (so it pipes into jq)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _json_of(
    response: httpx.Response, url: str, path: str, exit_codes: dict[int, int] | None = None
) -> Any:
    """An agent's JSON answer, or its ``detail`` as a one-line error (exit 2, or what
    ``exit_codes`` gives for the answer's status)."""
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        fail(
            f"{url}{path} answered {response.status_code}: {detail}",
            (exit_codes or {}).get(response.status_code, 2),
        )
    return response.json()


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
    return _json_of(response, url, path)


def send_json(
    method: str,
    url: str,
    path: str,
    body: dict[str, Any] | None = None,
    token: str | None = None,
    timeout_s: float = 60.0,
    exit_codes: dict[int, int] | None = None,
) -> Any:
    """POST/DELETE/GET ``url + path`` with a JSON body; errors become one-line messages
    (exit 2, or what ``exit_codes`` maps the answer's status to)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(
            method, url.rstrip("/") + path, json=body, headers=headers, timeout=timeout_s
        )
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {exc}")
    return _json_of(response, url, path, exit_codes)


def guarded(func: Callable[[], T], what: str | None = None) -> T:
    """Run ``func``; turn expected library errors into a one-line message."""
    from gpufleet.collectors.registry import SourceUnavailableError
    from gpufleet.store.base import StoreError
    from gpufleet.timeparse import TimeParseError

    try:
        return func()
    except (StoreError, SourceUnavailableError, TimeParseError, ValueError) as exc:
        fail(f"{what}: {exc}" if what else str(exc))


def is_empty_file(target: str) -> bool:
    """Whether ``target`` is an SQLite path naming a 0-byte file (with no write-ahead log
    holding its content): opening it as a store would turn it into a new, empty database."""
    if "://" in target:
        return False
    path = Path(target).expanduser()
    try:
        if not path.is_file() or path.stat().st_size > 0:
            return False
        wal = path.with_name(path.name + "-wal")
        return not (wal.is_file() and wal.stat().st_size > 0)
    except OSError:
        return False


def open_for_reading(db: str | None, config: Path | None) -> Store:
    """The store named by --db, else by the settings (env, TOML, default); never creates one
    (nor turns an empty file into one)."""
    from gpufleet.store import open_store

    settings = settings_from(config, db=db)
    target = settings.db
    if "://" not in target and not Path(target).exists():
        fail(
            f"no gpufleet database at {target}; pass --db (a path or postgresql:// URL) "
            "or start an agent that writes there"
        )
    if is_empty_file(target):
        fail(
            f"{target} is an empty file, not a gpufleet database; pass the --db an agent, "
            "demo or import wrote (this command leaves the file as it is)"
        )
    return guarded(lambda: open_store(target, retention=settings.retention.to_retention()))
