"""A hostile audit log cannot turn the HTML report against its reader.

Subjects, reasons, resources, invariant ids and policy hashes in a log come
from tokens and callers an attacker may control. Whatever they hold, the
report must contain no element or attribute that runs code or fetches
anything, and a malformed or oversized log must neither crash the report
nor hide the decisions that are readable.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinvariants import PolicyError
from aiinvariants._report import write_report
from aiinvariants._report._read import MAX_LINE, read_log

#: The only elements the report is built from.
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "main", "h1", "h2", "p",
    "div", "table", "tr", "th", "td", "b", "code", "span", "i", "svg", "rect",
    "text",
}  # fmt: skip
#: The only attributes the report uses: none takes a URL or runs code.
ALLOWED_ATTRIBUTES = {
    "lang", "charset", "http-equiv", "content", "name", "class", "id", "style",
    "role", "aria-label", "width", "height", "viewbox", "x", "y", "fill",
    "font-size", "colspan",
}  # fmt: skip
#: Attributes whose value is shown as text only.
TEXT_ATTRIBUTES = {"aria-label"}

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "</style><script>fetch('https://attacker.example')</script>",
    "</title><base href=https://attacker.example/>",
    "<a href=javascript:alert(1)>x</a>",
    '<meta http-equiv="refresh" content="0;url=https://attacker.example">',
    "<!--",
    "]]><foreignObject><iframe src=//attacker.example>",
    "\u202e\u0000<>&\"'",
]


class Markup(HTMLParser):
    """Collect every element and attribute the browser would see."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.style_text: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_style = tag == "style"
        self.attributes += [(name, value or "") for name, value in attrs]

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style_text.append(data)


def assert_inert(html: str) -> None:
    markup = Markup()
    markup.feed(html)
    assert set(markup.tags) <= ALLOWED_TAGS, set(markup.tags) - ALLOWED_TAGS
    assert markup.tags.count("style") == 1
    assert markup.tags.count("meta") == 3
    for name, value in markup.attributes:
        assert name in ALLOWED_ATTRIBUTES, name
        if name not in TEXT_ATTRIBUTES:
            assert "javascript:" not in value.lower()
            assert "url(" not in value.lower()
    # The policy that stops anything the escaping might have missed.
    assert (
        "http-equiv",
        "Content-Security-Policy",
    ) in markup.attributes
    csp = next(v for n, v in markup.attributes if v.startswith("default-src"))
    assert csp.startswith("default-src 'none';")
    assert "script-src" not in csp
    assert "@import" not in "".join(markup.style_text)


def hostile_log(path: Path, value: str) -> None:
    events = []
    for field in ("subject", "reason", "resource", "invariant", "policy_hash"):
        event = {
            "invariant": "I1",
            "decision": "deny",
            "reason": "scope_missing",
            "subject": "mallory",
            "resource": "r",
            "policy_hash": "sha256:00",
            "time": "2026-11-30T12:00:00Z",
        }
        event[field] = value
        events.append({"event": event, "prev": "0" * 64, "seq": 1, "hash": "x"})
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_markup_in_every_logged_field_stays_text(tmp_path: Path, payload: str) -> None:
    log = tmp_path / "audit.jsonl"
    hostile_log(log, payload)
    out = tmp_path / "report.html"
    write_report(log, out)
    html = out.read_text(encoding="utf-8")
    assert_inert(html)
    # The values are shown, escaped, so the reader still sees who did what.
    assert "mallory" in html


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=60))
def test_any_text_in_a_logged_field_stays_text(value: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "audit.jsonl"
        hostile_log(log, value)
        out = Path(folder) / "report.html"
        write_report(log, out)
        assert_inert(out.read_text(encoding="utf-8"))


def test_a_hostile_file_name_stays_text(tmp_path: Path) -> None:
    log = tmp_path / "<img src=x onerror=alert(1)>.jsonl"
    hostile_log(log, "x")
    out = tmp_path / "r.html"
    write_report(log, out)
    assert_inert(out.read_text(encoding="utf-8"))


def test_malformed_and_oversized_lines_do_not_hide_readable_decisions(
    tmp_path: Path,
) -> None:
    log = tmp_path / "audit.jsonl"
    hostile_log(log, "x")
    with log.open("ab") as f:
        f.write(b"[" * 200_000 + b"\n")  # a nesting bomb
        f.write(b"{" + b"a" * (MAX_LINE + 10) + b"\n")  # longer than any record
        f.write(b"\xff\xfe not utf-8\n")
        f.write(b'{"event": "not an object"}\n')
        f.write(b"[1, 2, 3]\n")
        f.write(b'{"event": {"decision": "deny", "time": 12, "subject": 7}}\n')
        f.write(b"no newline at the end")
    summary = read_log(log)
    assert summary.decisions == 6
    assert summary.unreadable_lines == 4
    out = tmp_path / "r.html"
    chain = write_report(log, out)
    assert not chain.ok  # never a verified banner for a forged chain
    html = out.read_text(encoding="utf-8")
    assert "Chain BROKEN" in html
    assert_inert(html)


def test_a_forged_chain_is_never_shown_as_verified(tmp_path: Path) -> None:
    # Records that look like a chain but were never written by JSONLSink.
    log = tmp_path / "audit.jsonl"
    hostile_log(log, "x")
    out = tmp_path / "r.html"
    write_report(log, out)
    html = out.read_text(encoding="utf-8")
    assert "Chain intact" not in html
    assert 'class="banner bad"' in html


def test_markup_in_statistical_results_stays_text(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    hostile_log(log, "x")
    stats = tmp_path / "stats.jsonl"
    record = {
        "name": PAYLOADS[0],
        "invariant": PAYLOADS[1],
        "trials": 10,
        "violations": 0,
        "observed_rate": 0.0,
        "upper_bound": 0.26,
        "max_violation_rate": 0.3,
        "confidence": 0.95,
        "passed": True,
    }
    stats.write_text(json.dumps(record) + "\n")
    out = tmp_path / "r.html"
    write_report(log, out, stats=stats)
    assert_inert(out.read_text(encoding="utf-8"))


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-1", "1e999"])
def test_non_finite_or_negative_rates_are_refused(tmp_path: Path, value: str) -> None:
    log = tmp_path / "audit.jsonl"
    hostile_log(log, "x")
    stats = tmp_path / "stats.jsonl"
    stats.write_text(
        '{"trials": 10, "violations": 0, "observed_rate": 0, "upper_bound": '
        f'{value}, "max_violation_rate": 0.1, "confidence": 0.95, "passed": true}}\n'
    )
    with pytest.raises(PolicyError, match="upper_bound"):
        write_report(log, tmp_path / "r.html", stats=stats)


@pytest.mark.parametrize("which", ["log", "stats", "log via symlink", "log via .."])
def test_the_report_never_overwrites_its_own_evidence(
    tmp_path: Path, which: str
) -> None:
    log = tmp_path / "audit.jsonl"
    hostile_log(log, "x")
    stats = tmp_path / "stats.jsonl"
    stats.write_text("")
    before = log.read_bytes(), stats.read_bytes()
    link = tmp_path / "link.jsonl"
    link.symlink_to(log)
    target = {
        "log": log,
        "stats": stats,
        "log via symlink": link,
        "log via ..": tmp_path / "sub" / ".." / "audit.jsonl",
    }[which]
    (tmp_path / "sub").mkdir()
    with pytest.raises(PolicyError, match="is the input file"):
        write_report(log, target, stats=stats)
    assert (log.read_bytes(), stats.read_bytes()) == before


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_an_endless_input_is_refused_not_read(tmp_path: Path, device: str) -> None:
    if not Path(device).exists():
        pytest.skip(f"{device} is not on this system")
    with pytest.raises(PolicyError, match="not a regular file"):
        write_report(Path(device), tmp_path / "r.html")
    log = tmp_path / "audit.jsonl"
    hostile_log(log, "x")
    with pytest.raises(PolicyError, match="not a regular file"):
        write_report(log, tmp_path / "r.html", stats=Path(device))


@pytest.mark.parametrize("subject", ["²", "١٢", "I²", "x" * 200, "Ⅻ", "0" * 50])
def test_unicode_digits_and_long_names_do_not_break_the_ranking(
    tmp_path: Path, subject: str
) -> None:
    log = tmp_path / "audit.jsonl"
    hostile_log(log, subject)
    out = tmp_path / "r.html"
    write_report(log, out)
    assert_inert(out.read_text(encoding="utf-8"))
