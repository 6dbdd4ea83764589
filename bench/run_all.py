"""Run every benchmark in bench/ with --write, one after another, and say how each went.

    make bench                       # or: .venv/bin/python bench/run_all.py [NAME ...]

A benchmark that cannot run here (Glances missing, no PostgreSQL) is reported with its own
message and the others go on; the exit status is 1 when any failed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(p for p in HERE.glob("*.py") if not p.name.startswith("_"))
    scripts = [p for p in scripts if p.name != Path(__file__).name]
    if argv:
        wanted = {a.removesuffix(".py") for a in argv}
        unknown = wanted - {p.stem for p in scripts}
        if unknown:
            names = ", ".join(p.stem for p in scripts)
            print(f"unknown benchmark {', '.join(sorted(unknown))}; choose from {names}")
            return 2
        scripts = [p for p in scripts if p.stem in wanted]
    failed = []
    for i, script in enumerate(scripts, 1):
        print(f"[{i}/{len(scripts)}] {script.stem} ...", flush=True)
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(script), "--write"], capture_output=True, text=True, check=False
        )
        took = time.monotonic() - start
        if done.returncode == 0:
            print(f"    done in {took:.0f} s", flush=True)
        else:
            why = (done.stderr.strip() or done.stdout.strip()).splitlines()
            print(f"    failed in {took:.0f} s: {why[-1] if why else done.returncode}", flush=True)
            failed.append(script.stem)
    if failed:
        print(f"{len(failed)} of {len(scripts)} failed: {', '.join(failed)}")
        return 1
    print(f"all {len(scripts)} written to docs/BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
