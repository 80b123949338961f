"""The self-contained demo behind ``aiinvariants demo`` and ``make demo``.

A small support assistant walks through every invariant, I1 to I14, one
verdict line each, against loopback servers the demo starts itself (an
identity provider's JWKS, a document store, a model, a safety classifier, a
downstream API). It needs no network and no keys beyond the ones it makes,
uses the library's public API only, and leaves nothing behind unless asked
to keep its audit log (``--out DIR``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import ECAlgorithm

from aiinvariants import Guard
from aiinvariants._demo._data import demo_policy
from aiinvariants._demo._servers import DemoServers
from aiinvariants._demo._steps import STEPS, Context, Verdict
from aiinvariants._errors import PolicyError
from aiinvariants.audit import JSONLSink

__all__ = ["run_demo"]


def _jwks(key: ec.EllipticCurvePrivateKey) -> dict[str, object]:
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="demo-1", alg="ES256", use="sig")
    return {"keys": [jwk]}


def _shown(path: Path) -> str:
    """``path`` as the user would type it: relative below here, else absolute."""
    try:
        shown = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    # .venv/bin/aiinvariants from a checkout; a full path from elsewhere.
    return str(path) if shown.startswith("..") else shown


def _command() -> str:
    """How to run the ``aiinvariants`` command from here, as the user typed it."""
    script = Path(sys.executable).parent / "aiinvariants"
    if script.exists():
        return _shown(script)
    return f"{_shown(Path(sys.executable))} -m aiinvariants"


def _line(verdict: Verdict) -> str:
    mark = "ok  " if verdict.ok else "FAIL"
    return f"{verdict.invariant:<4}{mark} {verdict.name}: {verdict.shown}"


def _run(folder: Path) -> list[Verdict]:
    idp_key = ec.generate_private_key(ec.SECP256R1())
    audit_key = Ed25519PrivateKey.generate()
    (folder / "audit-public-key.pem").write_bytes(
        audit_key.public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )
    )
    log_path = folder / "audit.jsonl"
    log_path.unlink(missing_ok=True)
    verdicts = []
    with DemoServers(jwks=_jwks(idp_key)) as servers:
        policy = demo_policy(servers.url)
        print(
            f"aiinvariants demo: a support assistant, policy {policy.hash[:19]}..., "
            f"servers on {servers.url}\n"
        )
        with Guard(policy, sinks=[JSONLSink(log_path, signing_key=audit_key)]) as guard:
            ctx = Context(
                guard=guard,
                servers=servers,
                idp_key=idp_key,
                audit_key=audit_key,
                log_path=log_path,
                stats_path=folder / "stats.jsonl",
            )
            for step in STEPS:
                verdict = step(ctx)
                verdicts.append(verdict)
                print(_line(verdict), flush=True)
    return verdicts


def _look_further(folder: Path | None) -> None:
    cmd = _command()
    print("\nlook further:")
    if folder is None:
        print(f"  {cmd} demo --out demo-out      keep the audit log and its key")
        folder = Path("demo-out")
    log, key = folder / "audit.jsonl", folder / "audit-public-key.pem"
    print(f"  {cmd} audit verify {log} --public-key {key}")
    print(
        f"  {cmd} report {log} --stats {folder / 'stats.jsonl'} "
        f"-o {folder / 'report.html'}"
    )
    example = Path("examples/policies/support-assistant.yaml")
    if example.is_file():  # run from a checkout
        if importlib.util.find_spec("yaml") is None:
            python = _shown(Path(sys.executable))
            print(f"  {python} -m pip install pyyaml      YAML policies need it")
        print(f"  {cmd} verify {example}")
        print("  the docs: docs/index.md; runnable examples: examples/*.py")


#: Marks a folder the demo made, so a later run may write over its files.
_MARKER = ".aiinvariants-demo"


def _demo_folder(out: Path) -> Path:
    """``out``, created if needed; refused if it holds anything not the demo's.

    The demo writes ``audit.jsonl``, ``audit-public-key.pem`` and
    ``stats.jsonl``: in a folder of real evidence (``--out /var/log/app``)
    that would destroy the real audit log and replace its key.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        marked = (out / _MARKER).is_file()
        if not marked and any(out.iterdir()):
            raise PolicyError(
                f"--out {out} is not empty and was not made by the demo; the "
                "demo would overwrite audit.jsonl and its key there: give a new "
                "or empty folder"
            )
        (out / _MARKER).touch()
    except OSError as exc:
        raise PolicyError(f"--out {out}: {exc.strerror}") from None
    return out


def run_demo(*, out: Path | None = None) -> int:
    """Run the demo, print what happens, return the process exit code.

    Args:
        out: keep the audit log, its public key and the statistical results
            in this folder (a new or empty one, or one an earlier demo made);
            by default they go to a temporary folder that is removed before
            returning.

    Raises:
        PolicyError: ``out`` holds files the demo did not make.
    """
    if out is None:
        folder = Path(tempfile.mkdtemp(prefix="aiinvariants-demo-"))
    else:
        folder = _demo_folder(out)
    try:
        verdicts = _run(folder)
    finally:
        if out is None:
            shutil.rmtree(folder, ignore_errors=True)
    failed = [v.invariant for v in verdicts if not v.ok]
    print(
        f"\n{len(verdicts) - len(failed)} of {len(verdicts)} invariants held"
        + (f"; FAILED: {' '.join(failed)}" if failed else "")
    )
    _look_further(out)
    return 1 if failed or len(verdicts) != len(STEPS) else 0
