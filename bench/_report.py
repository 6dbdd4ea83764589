"""Write a benchmark's figures into its own section of docs/BENCHMARKS.md.

Each benchmark owns the text between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``;
re-running it replaces only that section, so figures from other benchmarks stay.
"""

from __future__ import annotations

import platform
import re
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
HEADER = (
    "# Benchmarks\n\nFigures written by the scripts in `bench/`; each section names its command.\n"
)


def machine_line() -> str:
    """Where and when the figures were taken."""
    when = time.strftime("%Y-%m-%d", time.gmtime())
    python = sys.version.split()[0]
    return f"Measured {when} on {platform.node()} ({platform.machine()}, Python {python})."


def write_section(name: str, title: str, command: str, body: str) -> None:
    """Replace (or append) section ``name`` of docs/BENCHMARKS.md."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else HEADER
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\nCommand: `{command}`\n\n"
        f"{machine_line()}\n\n{body.strip()}\n<!-- /bench:{name} -->"
    )
    pattern = re.compile(
        rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S
    )
    text = (
        pattern.sub(lambda _m: section, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section + "\n"
    )
    BENCHMARKS.parent.mkdir(parents=True, exist_ok=True)
    BENCHMARKS.write_text(text)


def median(values: list[float]) -> float:
    """Median of a non-empty list."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
