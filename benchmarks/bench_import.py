"""Import time of ``import aiinvariants`` (issue #2)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

# Measure imports as an installed package runs them: from bytecode. Some
# environments set PYTHONDONTWRITEBYTECODE, which would make every fresh
# interpreter recompile the sources and inflate the figure.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _wall(code: str, runs: int) -> float:
    samples = []
    subprocess.run([sys.executable, "-c", code], check=True, env=_ENV)  # warm-up
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=_ENV)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _self_time_us(module: str) -> dict[str, int]:
    """Cumulative import time per top-level package, from -X importtime."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
        env=_ENV,
    )
    totals: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [p.strip() for p in line[len("import time:") :].split("|")]
        try:
            self_us = int(parts[0])
        except ValueError:
            continue
        top = parts[2].strip().split(".")[0]
        totals[top] = totals.get(top, 0) + self_us
    return totals


def run() -> None:
    runs = 9
    interpreter = _wall("pass", runs)
    # The floor of any library built on pydantic models: import BaseModel
    # (pydantic's top-level import is lazy) and build one model (which loads
    # pydantic's plugin machinery).
    pydantic = _wall(
        "from pydantic import BaseModel\nclass M(BaseModel):\n    x: int = 0", runs
    )
    core = _wall("import aiinvariants", runs)
    print(f"\nimport time (median of {runs} fresh interpreters)")
    print(f"  python -c pass               {interpreter * 1e3:7.1f} ms")
    print(f"  pydantic floor (one model)   {pydantic * 1e3:7.1f} ms")
    print(f"  import aiinvariants          {core * 1e3:7.1f} ms")
    print(f"  aiinvariants beyond python   {(core - interpreter) * 1e3:7.1f} ms")
    print(f"  aiinvariants beyond pydantic {(core - pydantic) * 1e3:7.1f} ms")
    print(f"  ratio to the pydantic floor  {core / pydantic:7.2f}x")
    totals = _self_time_us("aiinvariants")
    top = sorted(totals.items(), key=lambda kv: -kv[1])[:6]
    shares = ", ".join(f"{name} {us / 1e3:.1f} ms" for name, us in top)
    print(f"  -X importtime, self time by package: {shares}")
