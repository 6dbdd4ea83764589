"""What the ``gpufleet import`` tests share: the app, CSV files to import, reading back."""

from __future__ import annotations

import gzip
import io
import math
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path

import typer
from typer.testing import CliRunner, Result

from gpufleet.cli import import_cmd
from gpufleet.store import Resolution, open_store

runner = CliRunner()

HOUR = 3600.0
DAY = 86_400.0
# Recent enough to sit inside every default retention (raw included), on an hour boundary.
T0 = math.floor(time.time() / HOUR) * HOUR - 2 * DAY
OLD_T0 = 1_662_858_720.0  # 2022-09-11, like the Alibaba GenAI trace

HEADER = "timestamp,value,gpu_id"
CSV_ARGS = ["--metric", "gpu_util_pct", "--time-col", "timestamp"]
CSV_ARGS += ["--value-col", "value", "--entity-col", "gpu_id"]


def make_app() -> typer.Typer:
    """The sub-app mounted the way cli/main.py mounts it."""
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    app.add_typer(import_cmd.import_app, name="import")
    return app


APP = make_app()


def invoke(*args: str) -> Result:
    return runner.invoke(APP, ["import", *args])


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rows(n: int = 10, *, start: float = T0, as_iso: bool = False) -> list[str]:
    """Two GPUs, one row each a minute, time-sorted."""
    out = []
    for i in range(n):
        ts = start + 60.0 * i
        when = iso(ts) if as_iso else f"{ts:.0f}"
        out += [f"{when},{10 + i},GPU-a", f"{when},{50 + i},GPU-b"]
    return out


def write(path: Path, lines: list[str], header: str = HEADER) -> Path:
    text = header + "\n" + "\n".join(lines) + "\n"
    if path.name.endswith(".gz") and not path.name.endswith(".tar.gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def tar_gz(path: Path, members: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def util_points(
    db: Path, start: float = T0 - HOUR, end: float | None = None
) -> dict[str, list[tuple[float, float | None]]]:
    store = open_store(db)
    try:
        series = store.gpu_series(
            metric="util_gpu_pct",
            start_s=start,
            end_s=end if end is not None else time.time(),
            resolution=Resolution.RAW,
        )
        return {s.subject: [(p.ts_s, p.mean) for p in s.points] for s in series}
    finally:
        store.close()


def one_line_error(result: Result) -> str:
    """The error of a failed command: exit 2, one line on stderr, nothing on stdout."""
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("gpufleet: "), message
    assert "\n" not in message, message
    assert result.stdout == ""
    return message


def stored_db(tmp_path: Path) -> Path:
    """A database that already holds an import, to check that failures keep it."""
    db = tmp_path / "kept.db"
    src = write(tmp_path / "first.csv", rows(3))
    assert invoke("csv", str(src), "--db", str(db), *CSV_ARGS).exit_code == 0
    return db
