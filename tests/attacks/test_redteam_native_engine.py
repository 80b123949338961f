"""Red team of the native candidate search of SecretsFilter (issue #13).

The vectorscan pre-scan (the ``hyperscan`` extra) must report the same
findings as the pure-Python path, and at a cost bounded by it: "Bounded
cost" in DESIGN.md. An engine an operator turns on for speed must not hand
an attacker a text that costs many times what the default install costs
(an answer the model is steered into writing, scanned on every request).

Attacks here:

* candidate-dense text: a token keyword (``aa``, the Telegram rule's) at
  every character of a run the pure path never looks inside (no digit nor
  capital), inside the windows the pre-scan opens (``==`` anchors nearby);
  the windowed search tried it one character at a time (10x the pure path);
* a gate flood: a gated anchor (compiled without start offsets) reports
  every end offset of a long run (``[A-Za-z0-9_-]{33,}`` after
  ``12345678:AA``), one Python call per character, and those reports did not
  count against the match cap.

The secure outcome: the same findings as the pure path (the credential at
the end is blocked, ``output_blocked``) at a cost within a small factor of
the pure path's.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiinvariants import OutputBlocked
from aiinvariants.filters import OutputPipeline, SecretsFilter, StreamGuard
from aiinvariants.testing.strategies import chunkings, obfuscations

pytest.importorskip("hyperscan")

GHP = "ghp_aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9aZ3kQ9"


def _filter(engine: str, action: str = "redact") -> SecretsFilter:
    f = SecretsFilter(action=action)  # type: ignore[arg-type]
    f._engine = engine
    return f


NATIVE = _filter("hyperscan")
PURE = _filter("pure")


def _best(f: SecretsFilter, text: str) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        f.scan(text)
        best = min(best, time.perf_counter() - start)
    return best


DENSE = ("== " + "a" * 50 + "pass ") * 4_000 + GHP


def test_dense_keywords_in_plain_runs_cost_no_more_than_the_pure_path() -> None:
    assert NATIVE._native() is not None  # built before timing
    assert NATIVE.scan(DENSE) == PURE.scan(DENSE)
    pure, native = _best(PURE, DENSE), _best(NATIVE, DENSE)
    assert native <= 5 * pure + 0.02, (native, pure)
    with pytest.raises(OutputBlocked) as caught:
        OutputPipeline([_filter("hyperscan", "block")]).enforce(DENSE)
    assert caught.value.code == "output_blocked"
    assert "github-pat" in caught.value.rule_ids


def test_a_gate_reporting_every_character_is_capped() -> None:
    """A long run after ``12345678:AA``: the Telegram gate reports every
    character; past the cap the text takes the pure path (same findings)."""
    native = NATIVE._native()
    assert native is not None
    text = "12345678:AA" + "b" * 200_000 + " " + GHP
    assert native[0].windows(text) is None
    assert NATIVE.scan(text) == PURE.scan(text)
    assert {f.rule_id for f in NATIVE.scan(text)} >= {"github-pat"}


def test_concurrent_first_scans_build_the_database_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A vectorscan build takes seconds of CPU, on the first scan: eight
    threads of a server answering at once after a start must not each
    build it (eight times the CPU, on the request path); one builds, the
    others wait for it and scan with it."""
    import threading

    from aiinvariants.filters import _prescan_engines
    from aiinvariants.filters._secret_rules import RULES

    builds: list[int] = []
    real = _prescan_engines.native_engine

    def counting(*args: object, **kwargs: object) -> object:
        builds.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("aiinvariants.filters._secrets.native_engine", counting)
    rules = RULES[:40]  # a ruleset no other test built
    filters = [SecretsFilter(rules=rules) for _ in range(8)]
    for f in filters:
        f._engine = "hyperscan"
    barrier = threading.Barrier(len(filters))
    found: list[object] = []

    def work(f: SecretsFilter) -> None:
        barrier.wait()
        found.append(f.scan("x = 1 " + GHP))

    threads = [threading.Thread(target=work, args=(f,)) for f in filters]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert len(builds) == 1
    expected = SecretsFilter(rules=rules)
    expected._engine = "pure"
    assert found == [expected.scan("x = 1 " + GHP)] * len(filters)


def test_a_child_forked_during_a_build_does_not_hang() -> None:
    """A worker forked while another thread of the parent builds (holds the
    build lock) must scan, not wait forever for a lock nobody releases."""
    import os
    import threading

    from aiinvariants.filters import _secrets
    from aiinvariants.filters._secret_rules import RULES

    if not hasattr(os, "fork"):
        pytest.skip("no fork")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with _secrets._NATIVE_LOCK:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                f = SecretsFilter(rules=RULES[15:60])
                f._engine = "hyperscan"
                ok = [x.rule_id for x in f.scan("x " + GHP)] == ["github-pat"]
                os.write(write, b"1" if ok else b"0")
            finally:
                os._exit(0)
        os.close(write)
        import select

        ready, _, _ = select.select([read], [], [], 30)
        answer = os.read(read, 1) if ready else b""
        if not ready:
            os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(read)
    finally:
        release.set()
        holder.join()
    assert answer == b"1"


@pytest.mark.parametrize("engine", ["re2", "hyperscan"])
def test_a_deep_copy_of_a_filter_scans_as_with_the_pure_path(engine: str) -> None:
    """Frameworks deep-copy what they are given (a pipeline in a config, a
    graph's state); with the pure path that works after a scan. With a
    native engine it raised (a compiled database cannot be copied): the
    answer was lost instead of checked. The copy must scan the same."""
    import copy

    pytest.importorskip(engine)
    f = _filter(engine, "block")
    assert f.scan("x " + GHP)
    clone = copy.deepcopy(OutputPipeline([f]))
    with pytest.raises(OutputBlocked) as caught:
        clone.enforce("x " + GHP)
    assert caught.value.code == "output_blocked"
    assert "github-pat" in caught.value.rule_ids


# -- attacks that did not get through, kept as properties ---------------------
# Text around the gated anchors (keyword scanned only up to the gate's last
# match end), the characters that fold to ASCII, non-ASCII before a key,
# obfuscated keys, in one shot and streamed in any chunking: vectorscan
# reports what the pure path reports.

_GATED = [
    "12345678:AA",
    "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
    "0123456789abcdef0123456789abcdef-us12",
    "https://admin:S3cr3tPassw0rd@db.example",
    "== db_password ",
    "-u admin:pwd123 ",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----",
    "api_key = 'hU7kd82Lpq9' ",
    "Authorization: Bearer Zq9vLm2Rt8Kp4XaB ",
    "PASSWORD Tr0ub4dor&3xQz!9 ",
    GHP,
    "aa" * 20,
    "key",
    "token",
    "\u017f",
    "\u212a",
    "é😀",
    "\x00",
    " ",
    "\n",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_gated_anchors_agree_one_shot_and_streamed(data: st.DataObject) -> None:
    pieces = data.draw(st.lists(st.sampled_from(_GATED), min_size=1, max_size=8))
    if data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(pieces) - 1))
        pieces[at] = data.draw(obfuscations(pieces[at]))
    text = "".join(pieces)
    assert NATIVE.scan(text) == PURE.scan(text)
    chunks = data.draw(chunkings(text, max_chunks=8))
    results = []
    for f in (NATIVE, PURE):
        guard = StreamGuard(OutputPipeline([f]))
        out: list[str] = []
        try:
            out.extend(guard.feed(c) for c in chunks)
            out.append(guard.close())
        except OutputBlocked as blocked:
            results.append(("".join(out), blocked.code))
        else:
            results.append(("".join(out), ""))
    assert results[0] == results[1]
