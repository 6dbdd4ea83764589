"""Reading long-format CSV: plain, gzip, or members of a tar archive, streamed; timestamps.

Nothing is extracted to disk: a ``.tar.gz`` is read as a stream (``tarfile`` mode ``r|*``)
and each CSV member is decoded while it passes by, so an archive far larger than the disk's
free space still imports.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from gpufleet.store.importers.report import ImportFailedError
from gpufleet.timeparse import LATEST_S

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_CSV_MEMBER_SUFFIXES = (".csv", ".csv.gz")

# Epoch values above these magnitudes cannot be seconds of a plausible date (1e11 s is the
# year 5138), so they are read as milliseconds, microseconds or nanoseconds. Milliseconds
# before 1973-03-03 (1e11 ms) would be misread as seconds; traces that old do not exist.
_MS_FROM = 1e11
_US_FROM = 1e14
_NS_FROM = 1e17


@dataclass(frozen=True, slots=True)
class CsvSource:
    """One CSV stream being read: its display name and its rows (header first)."""

    name: str
    reader: csv.DictReader[str]

    @property
    def rows(self) -> Iterator[list[str]]:
        """Rows as lists of cells, header first (positional reading is the fast path)."""
        return self.reader.reader

    @property
    def line(self) -> int:
        """Physical line number of the row last returned (1 is the header)."""
        return self.reader.reader.line_num


class _Forward(io.RawIOBase):
    """A member of a streamed tar as a forward-only raw stream.

    ``TextIOWrapper`` asks its buffer whether it can seek, and a member of a tar opened as a
    stream answers by asking the underlying stream, which cannot say (AttributeError).
    """

    def __init__(self, member: IO[bytes]) -> None:
        """Wrap ``member``."""
        super().__init__()
        self._member = member

    def readable(self) -> bool:
        """Always readable."""
        return True

    def seekable(self) -> bool:
        """Never seekable: the archive is read front to back once."""
        return False

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Fill ``buffer`` from the member; 0 at its end."""
        view = memoryview(buffer).cast("B")
        data = self._member.read(len(view))
        view[: len(data)] = data
        return len(data)


def _text(raw: gzip.GzipFile | IO[bytes]) -> io.TextIOWrapper:
    # utf-8-sig drops a BOM that spreadsheet exports put before the header; undecodable bytes
    # become U+FFFD so the row is rejected as unreadable rather than aborting the file.
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def _reader(name: str, text: io.TextIOWrapper) -> CsvSource:
    # The DictReader is only a typed holder of the plain reader and its line counter.
    return CsvSource(name=name, reader=csv.DictReader(text))


def is_tar(path: Path) -> bool:
    """Whether ``path`` names a tar archive (optionally gzip-compressed)."""
    return path.name.lower().endswith(_TAR_SUFFIXES)


def open_sources(paths: Sequence[Path], skipped: list[str]) -> Iterator[CsvSource]:
    """Yield each CSV stream of ``paths`` in order; tar members in archive order.

    A source must be read to its end (or abandoned) before the next one is asked for,
    since tar members are streamed. Members that are not CSV are appended to ``skipped``.

    Raises:
        ImportFailedError: a path does not exist, is not readable, is not the format its
            name says, or is an archive with no CSV member.
    """
    if not paths:
        raise ImportFailedError("no CSV files given: pass at least one .csv, .csv.gz or .tar.gz")
    for path in paths:
        if not path.is_file():
            raise ImportFailedError(f"{path}: no such file")
        try:
            if is_tar(path):
                yield from _tar_sources(path, skipped)
            elif path.name.lower().endswith(".gz"):
                with gzip.open(path, "rb") as packed, _text(packed) as text:
                    yield _reader(path.name, text)
            else:
                with path.open("rb") as raw, _text(raw) as text:
                    yield _reader(path.name, text)
        except READ_ERRORS as exc:
            raise read_failed(str(path), exc) from exc


READ_ERRORS = (OSError, EOFError, tarfile.TarError, UnicodeError, zlib.error)
"""What a corrupt, truncated or mislabeled file raises while it is read."""


def read_failed(name: str, exc: BaseException) -> ImportFailedError:
    """The error for a source that stopped being readable (``exc`` says how)."""
    return ImportFailedError(
        f"{name}: cannot read it ({exc}); check that it is a complete CSV, .csv.gz or .tar.gz file"
    )


def _tar_sources(path: Path, skipped: list[str]) -> Iterator[CsvSource]:
    found = 0
    with tarfile.open(path, mode="r|*") as archive:
        for member in archive:
            base = member.name.rsplit("/", 1)[-1]
            lower = base.lower()
            # "._x.csv" are macOS resource forks that tar on a Mac adds next to each file.
            if (
                not member.isfile()
                or base.startswith(".")
                or not lower.endswith(_CSV_MEMBER_SUFFIXES)
            ):
                if member.isfile():
                    skipped.append(f"{path.name}:{member.name}")
                continue
            extracted = archive.extractfile(member)
            if extracted is None:
                continue
            raw = io.BufferedReader(_Forward(extracted), buffer_size=1 << 20)
            found += 1
            name = f"{path.name}:{member.name}"
            if lower.endswith(".gz"):
                with gzip.open(raw, "rb") as inner, _text(inner) as text:
                    yield _reader(name, text)
            else:
                with _text(raw) as text:
                    yield _reader(name, text)
    if not found:
        raise ImportFailedError(f"{path}: the archive holds no .csv or .csv.gz member")


def column_positions(source: CsvSource, wanted: dict[str, str | None]) -> dict[str, int | None]:
    """Position of each wanted column in ``source``'s header, by role.

    ``wanted`` maps a role (``time``, ``value``, ...) to a column name, or None for an
    optional role that is not used. Names are matched exactly, then ignoring case and
    surrounding spaces.

    Raises:
        ImportFailedError: the source is empty, or a column is missing; the message lists
            the columns the source has.
    """
    try:
        header = next(source.rows, None)
    except READ_ERRORS as exc:
        raise read_failed(source.name, exc) from exc
    if header is None:
        raise ImportFailedError(f"{source.name}: the file is empty (no header row)")
    names = [h.strip() for h in header]
    folded = [n.casefold() for n in names]
    positions: dict[str, int | None] = {}
    missing: list[str] = []
    for role, column in wanted.items():
        if column is None:
            positions[role] = None
            continue
        if column in header:
            positions[role] = header.index(column)
        elif column.strip().casefold() in folded:
            positions[role] = folded.index(column.strip().casefold())
        else:
            missing.append(column)
    if missing:
        raise ImportFailedError(
            f"{source.name}: no column {', '.join(repr(m) for m in missing)}; "
            f"its columns are: {', '.join(repr(n) for n in names)}"
        )
    return positions


class TimeReader:
    """Turns timestamp cells into epoch seconds; caches the last cell (traces repeat it)."""

    __slots__ = ("_last_text", "_last_value")

    def __init__(self) -> None:
        """Start with an empty cache."""
        self._last_text: str | None = None
        self._last_value: float | None = None

    def __call__(self, text: str) -> float | None:
        """Epoch seconds for ``text``, or None when it is no time between 1970 and 9999.

        Accepts epoch seconds (integer or fractional), epoch milliseconds, microseconds or
        nanoseconds (told apart by magnitude), and ISO 8601 (naive means UTC).
        """
        if text == self._last_text:
            return self._last_value
        value = parse_timestamp(text)
        self._last_text, self._last_value = text, value
        return value


def parse_timestamp(text: str) -> float | None:
    """See :class:`TimeReader`; uncached."""
    try:
        number = float(text)
    except ValueError:
        value = _iso(text.strip())
    else:
        value = _epoch_s(number)
    return value if value is not None and 0.0 <= value <= LATEST_S else None


def _epoch_s(number: float) -> float | None:
    if not math.isfinite(number):
        return None
    magnitude = abs(number)
    if magnitude >= _NS_FROM:
        return number / 1e9
    if magnitude >= _US_FROM:
        return number / 1e6
    if magnitude >= _MS_FROM:
        return number / 1e3
    return number


def _iso(text: str) -> float | None:
    if len(text) < 10 or not text[:4].isdigit():
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def snippet(row: Sequence[str], limit: int = 120) -> str:
    """A rejected row as it appeared, shortened for the report."""
    text = ",".join(row)
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = [
    "READ_ERRORS",
    "CsvSource",
    "TimeReader",
    "column_positions",
    "is_tar",
    "open_sources",
    "parse_timestamp",
    "read_failed",
    "snippet",
]
