"""The ``aiinvariants`` command.

    aiinvariants demo [--out DIR]            run the self-contained demo
    aiinvariants policy check FILE           validate a policy, print its hash
    aiinvariants verify POLICY [--format text|json|sarif] [--output FILE]
                                             check a policy before deployment
    aiinvariants export aws-scp POLICY       service control policy (JSON)
    aiinvariants export aws-ai-optout        AI services opt-out policy (JSON)
    aiinvariants scan FILE|- [--policy POLICY] [--redacted]
                                             run the output filters over a text
    aiinvariants audit verify LOG [--public-key PEM] [--anchor SEQ:HASH]
                                             check a JSONL audit chain
    aiinvariants report LOG [--stats RESULTS] [--public-key PEM]
                      [--anchor SEQ:HASH] -o FILE
                                             the audit log as one HTML page

Exit codes: 0 ok, 1 a check failed (broken chain, policy findings at error
level, a blocking finding in a scanned text; ``report`` still writes the
page), 2 bad input or usage.
Errors are printed as one clear message, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from aiinvariants.errors import AIInvariantsError

__all__ = ["main"]

#: A PEM public key is a few hundred bytes; nothing longer is read.
_MAX_KEY_FILE = 64 * 1024


def _bad_input(message: str) -> AIInvariantsError:
    from aiinvariants.errors import PolicyError

    return PolicyError(message)


def _existing_file(path: str, what: str) -> Path:
    """``path`` as a readable regular file, or a bad-input error saying why not."""
    file = Path(path)
    if not file.exists():
        raise _bad_input(f"{path} does not exist (the {what} file to read)")
    if file.is_dir():
        raise _bad_input(f"{path} is a folder; give the {what} file inside it")
    if not file.is_file():
        # A device or a pipe may never end (/dev/zero): refuse, do not hang.
        raise _bad_input(f"{path} is not a regular file (the {what} file to read)")
    return file


def _read_text(path: str, what: str) -> str:
    file = _existing_file(path, what)
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _bad_input(f"{path} is not UTF-8 text; convert it first") from None
    except OSError as exc:
        raise _bad_input(f"cannot read {path}: {exc.strerror}") from None


def _write_text(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _bad_input(f"cannot write {path}: {exc.strerror}") from None


def _cmd_demo(args: argparse.Namespace) -> int:
    from aiinvariants._demo import run_demo

    return run_demo(out=Path(args.out) if args.out else None)


def _cmd_policy_check(args: argparse.Namespace) -> int:
    from aiinvariants.policy import load_policy

    policy = load_policy(args.file)
    print(f"ok  {args.file}  app={policy.app}  {policy.hash}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from aiinvariants.verify import render_json, render_sarif, render_text, verify_file

    # A file that is not there is bad input (2), not a finding (1).
    _existing_file(args.policy, "policy")
    findings = verify_file(args.policy)
    render = {"text": render_text, "json": render_json, "sarif": render_sarif}
    output = render[args.format](findings, source=args.policy)
    if args.output:
        _write_text(args.output, output + "\n")
    else:
        print(output)
    failing = {"error"} | ({"warning"} if args.strict else set())
    return 1 if any(f.level in failing for f in findings) else 0


def _cmd_export(args: argparse.Namespace) -> int:
    import json

    from aiinvariants.export import aws_ai_optout, aws_scp
    from aiinvariants.policy import load_policy

    if args.target == "aws-scp":
        if not args.policy:
            from aiinvariants.errors import PolicyError

            raise PolicyError("export aws-scp needs a POLICY file")
        document = aws_scp(load_policy(args.policy))
    else:
        document = aws_ai_optout()
    print(json.dumps(document, indent=2))
    return 0


def _cmd_scan(args: argparse.Namespace) -> int:
    from aiinvariants.filters import OutputPipeline
    from aiinvariants.policy import Policy, load_policy

    policy = load_policy(args.policy) if args.policy else Policy()
    pipeline = OutputPipeline.from_policy(policy)
    if args.file == "-":
        try:
            # Bytes, decoded strictly: a C locale would otherwise smuggle
            # undecodable bytes through as surrogates.
            text = sys.stdin.buffer.read().decode("utf-8")
        except UnicodeDecodeError:
            raise _bad_input("standard input is not UTF-8 text") from None
    else:
        text = _read_text(args.file, "text")
    result = pipeline.check(text)
    if args.redacted:
        if result.blocked:
            # A blocked text has no safe form to print; say why, never what.
            blocking = [f for f in result.findings if f.action == "block"]
            where = ", ".join(f"{f.rule_id} at {f.start}-{f.end}" for f in blocking)
            print(
                f"BLOCKED: nothing printed, the text has {len(blocking)} blocking "
                f"finding(s) ({where}) and no safe redacted form; run without "
                "--redacted to list every finding",
                file=sys.stderr,
            )
        else:
            sys.stdout.write(result.text)
    else:
        # Rule, span, action and fingerprint only: never the matched text.
        for f in result.findings:
            print(
                f"{f.rule_id}\t{f.start}-{f.end}\t{f.action}\t{f.severity}\t"
                f"{f.fingerprint}"
            )
        verdict = "BLOCKED" if result.blocked else "ok"
        print(f"{verdict}: {len(result.findings)} finding(s) in {len(text)} chars")
    return 1 if result.blocked else 0


def _load_public_key(path: str) -> object:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from aiinvariants.errors import PolicyError

    file = _existing_file(path, "public key")  # never /dev/zero, read to the end
    try:
        with file.open("rb") as pem:
            key = load_pem_public_key(pem.read(_MAX_KEY_FILE))
    except (OSError, ValueError) as exc:
        raise PolicyError(
            f"cannot read an Ed25519 public key (PEM) from {path}"
        ) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise PolicyError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


_ANCHOR_HELP = (
    "a (seq, hash) head recorded earlier (JSONLSink.head); lines cut off the "
    "end of the log are detected only with it"
)


def _anchor(text: str | None) -> tuple[int, str] | None:
    """``SEQ:HASH`` as the anchor verify_chain takes, or a bad-input error."""
    if text is None:
        return None
    seq, _, digest = text.partition(":")
    if not (seq.isascii() and seq.isdigit()) or len(seq) > 18 or int(seq) < 1:
        raise _bad_input(f"--anchor {text!r}: expected SEQ:HASH, SEQ >= 1")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise _bad_input(f"--anchor {text!r}: HASH is 64 lowercase hex digits")
    return int(seq), digest


def _cmd_report(args: argparse.Namespace) -> int:
    from aiinvariants._report import write_report

    public_key = _load_public_key(args.public_key) if args.public_key else None
    chain = write_report(
        Path(args.log),
        Path(args.output),
        stats=Path(args.stats) if args.stats else None,
        public_key=public_key,  # type: ignore[arg-type]
        anchor=_anchor(args.anchor),
    )
    state = (
        "chain intact" if chain.ok else f"chain BROKEN at line {chain.first_bad_line}"
    )
    print(f"wrote {args.output} ({state})")
    return 0 if chain.ok else 1


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    from aiinvariants.audit import verify_chain

    public_key = _load_public_key(args.public_key) if args.public_key else None
    # A log that is not there is bad input (2), not a broken chain (1).
    _existing_file(args.log, "audit log")
    report = verify_chain(
        args.log,
        public_key=public_key,  # type: ignore[arg-type]
        anchor=_anchor(args.anchor),
    )
    if report.ok:
        signed = (
            "signatures verified" if public_key is not None else "not signed-checked"
        )
        print(
            f"ok  {args.log}  {report.lines} lines  {signed}  last={report.last_hash}"
        )
        return 0
    print(
        f"BROKEN  {args.log}  line {report.first_bad_line}: {report.reason} "
        f"({report.lines} lines intact before it)"
    )
    return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiinvariants",
        description="Security invariants for AI applications.",
    )
    from aiinvariants import __version__

    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the self-contained demo")
    demo.add_argument("--out", help="keep the demo's audit log in this folder")
    demo.set_defaults(run=_cmd_demo)

    policy = commands.add_parser("policy", help="work with policy files")
    policy_cmds = policy.add_subparsers(dest="policy_command", required=True)
    check = policy_cmds.add_parser("check", help="validate a policy file")
    check.add_argument("file")
    check.set_defaults(run=_cmd_policy_check)

    verify_policy = commands.add_parser(
        "verify", help="check a policy file before deployment"
    )
    verify_policy.add_argument("policy")
    verify_policy.add_argument(
        "--format", choices=("text", "json", "sarif"), default="text"
    )
    verify_policy.add_argument("--output", help="write the report to this file")
    verify_policy.add_argument(
        "--strict", action="store_true", help="warnings fail the check too"
    )
    verify_policy.set_defaults(run=_cmd_verify)

    export = commands.add_parser(
        "export", help="export the policy as a cloud control policy"
    )
    export.add_argument("target", choices=("aws-scp", "aws-ai-optout"))
    export.add_argument("policy", nargs="?")
    export.set_defaults(run=_cmd_export)

    scan = commands.add_parser("scan", help="run the output filters over a text")
    scan.add_argument("file", help="a text file, or - for standard input")
    scan.add_argument("--policy", help="the policy whose outputs section applies")
    scan.add_argument(
        "--redacted",
        action="store_true",
        help="print the redacted text instead of the findings",
    )
    scan.set_defaults(run=_cmd_scan)

    report = commands.add_parser(
        "report", help="write an audit log (and test results) as one HTML page"
    )
    report.add_argument("log", help="the JSONL audit log")
    report.add_argument("-o", "--output", required=True, help="the HTML file to write")
    report.add_argument(
        "--stats",
        help="statistical results (JSON Lines from pytest --aiinvariants-stats "
        "or AIINVARIANTS_STATS_JSON)",
    )
    report.add_argument(
        "--public-key", help="PEM Ed25519 public key; signatures are checked"
    )
    report.add_argument("--anchor", metavar="SEQ:HASH", help=_ANCHOR_HELP)
    report.set_defaults(run=_cmd_report)

    audit = commands.add_parser("audit", help="work with audit logs")
    audit_cmds = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_cmds.add_parser("verify", help="check a JSONL audit chain")
    verify.add_argument("log")
    verify.add_argument(
        "--public-key", help="PEM Ed25519 public key; every line must be signed"
    )
    verify.add_argument("--anchor", metavar="SEQ:HASH", help=_ANCHOR_HELP)
    verify.set_defaults(run=_cmd_audit_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except AIInvariantsError as exc:
        print(f"aiinvariants: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # A folder that cannot be created, a disk that is full: bad input or
        # environment, said in one line.
        where = f": {exc.filename}" if exc.filename else ""
        print(f"aiinvariants: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C: cleanup ran in the commands' finally blocks; no traceback.
        print("aiinvariants: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
