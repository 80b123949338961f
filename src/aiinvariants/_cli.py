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
from typing import TYPE_CHECKING

from aiinvariants._errors import AIInvariantsError

if TYPE_CHECKING:
    from aiinvariants.audit import Problem

__all__ = ["main"]

#: A PEM public key is a few hundred bytes; nothing longer is read.
_MAX_KEY_FILE = 64 * 1024


def _bad_input(message: str) -> AIInvariantsError:
    from aiinvariants._errors import PolicyError

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
    from aiinvariants._verify import render_json, render_sarif, render_text, verify_file

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

    from aiinvariants._export import aws_ai_optout, aws_scp
    from aiinvariants.policy import load_policy

    if args.target == "aws-scp":
        if not args.policy:
            from aiinvariants._errors import PolicyError

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
    from aiinvariants._errors import PolicyError
    from aiinvariants.audit import load_public_key

    file = _existing_file(path, "public key")  # never /dev/zero, read to the end
    try:
        with file.open("rb") as pem:
            data = pem.read(_MAX_KEY_FILE)
    except OSError as exc:
        raise PolicyError(
            f"cannot read the public key file {path} ({exc.strerror})"
        ) from None
    return load_public_key(data, source=f"--public-key {path}")


def _parse_anchor(text: str) -> tuple[str | None, int, str]:
    from aiinvariants._errors import PolicyError

    parts = text.split(":")
    chain = parts[0] if len(parts) == 3 else None
    try:
        seq = int(parts[-2])
    except (ValueError, IndexError):
        seq = 0
    if len(parts) not in (2, 3) or seq < 1:
        raise PolicyError(
            f"--anchor {text!r}: expected CHAIN:SEQ:HASH or SEQ:HASH (as "
            "JSONLSink.head and chain_id give them)"
        )
    return chain, seq, parts[-1]


def _audit_sources(args: argparse.Namespace) -> tuple[list[str], bool]:
    """The trail's sources, and whether the policy signs them."""
    from aiinvariants._errors import PolicyError

    sources: list[str] = []
    signed = False
    if args.policy:
        from aiinvariants.policy import load_policy

        policy = load_policy(args.policy)
        jsonl = [s for s in policy.audit.sinks if s.kind == "jsonl"]
        sources.extend(s.path for s in jsonl)
        if not sources:
            raise PolicyError(f"the policy {args.policy} declares no jsonl audit sink")
        # The policy's writers sign: an unsigned segment is a downgrade (its
        # signatures stripped and hashes recomputed), with or without keys.
        signed = any(getattr(s, "sign_key_env", None) for s in jsonl)
    if args.log:
        sources.append(args.log)
    if not sources:
        raise PolicyError("audit verify needs a LOG (file or directory) or --policy")
    return sources, signed


def _printable(text: object) -> str:
    # File names come from whoever can write the trail's directory: a name
    # with a newline or a terminal escape must not forge or hide output.
    return "".join(
        c
        if c.isprintable()
        else f"\\x{ord(c):02x}"
        if ord(c) < 256
        else f"\\u{ord(c):04x}"
        for c in str(text)
    )


def _problem_json(problem: Problem) -> dict[str, object]:
    return {
        "file": problem.file,
        "line": problem.line,
        "reason": problem.reason,
        "chain": problem.chain,
        "detail": problem.detail,
    }


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
    import json

    from aiinvariants.audit import verify_trail

    keys = [_load_public_key(path) for path in args.public_key or ()]
    anchors = [_parse_anchor(text) for text in args.anchor or ()]
    sources, policy_signs = _audit_sources(args)
    report = verify_trail(
        sources,
        public_key=keys or None,  # type: ignore[arg-type]
        anchors=anchors,
        require_closed=args.require_closed,
        require_signed=policy_signs,
    )
    if args.format == "json":
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "files": list(report.files),
                    "events": report.events,
                    "signatures_verified": report.signatures_verified,
                    "problems": [_problem_json(p) for p in report.problems],
                    "torn": [_problem_json(p) for p in report.torn],
                    "open_segments": list(report.open_segments),
                    "segments": [
                        {
                            "file": seg.file,
                            "first_line": seg.first_line,
                            "chain": seg.chain,
                            "events": seg.events,
                            "checkpoints": seg.checkpoints,
                            "key_id": seg.key_id,
                            "closed": seg.closed,
                            "continued": seg.continued,
                            "unsigned_tail": seg.unsigned_tail,
                            "head": list(seg.head),
                        }
                        for seg in report.segments
                    ],
                },
                indent=2,
            )
        )
        return 0 if report.ok else 1
    for seg in report.segments:
        state = (
            ("closed" if seg.closed else "") + (" continued" if seg.continued else "")
        ).strip() or "open"
        signed = f"key {seg.key_id}" if seg.key_id else "unsigned"
        print(
            f"segment {seg.chain}  {_printable(seg.file)}:{seg.first_line}  "
            f"{seg.events} events  {seg.checkpoints} checkpoints  {signed}  {state}"
            + (
                f"  {seg.unsigned_tail} after the last checkpoint"
                if seg.unsigned_tail
                else ""
            )
        )
    for torn in report.torn:
        print(f"torn line  {_printable(torn)}  (not tampering)")
    for problem in report.problems:
        print(f"VIOLATION  {_printable(problem)}")
    checked = (
        "signatures verified"
        if report.signatures_verified
        else (
            "signatures NOT checked (give --public-key)"
            if not keys
            else "signatures failed"
        )
    )
    verdict = "ok" if report.ok else "BROKEN"
    print(
        f"{verdict}: {len(report.files)} file(s), {len(report.segments)} segment(s), "
        f"{report.events} events, {len(report.problems)} violation(s), "
        f"{len(report.torn)} torn line(s), {len(report.open_segments)} open; {checked}"
    )
    return 0 if report.ok else 1


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
    verify = audit_cmds.add_parser(
        "verify", help="check an audit trail: a file, a directory or --policy"
    )
    verify.add_argument("log", nargs="?", help="a segment file, directory or template")
    verify.add_argument(
        "--policy", help="verify the trail of every jsonl sink this policy declares"
    )
    verify.add_argument(
        "--public-key",
        action="append",
        help="PEM Ed25519 public key (repeat for rotated keys); every segment "
        "must be signed by one of them",
    )
    verify.add_argument(
        "--anchor",
        action="append",
        help="CHAIN:SEQ:HASH (or SEQ:HASH) recorded elsewhere; must still be there",
    )
    verify.add_argument("--format", choices=("text", "json"), default="text")
    verify.add_argument(
        "--require-closed",
        action="store_true",
        help="every segment must be closed or continued (writers stopped)",
    )
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
