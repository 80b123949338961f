"""Red team: the fence language as a way to make a credential pass (I8).

The assignment judge reads the language of the fenced block a site is in:
an unquoted right-hand side in Python, Go, JavaScript… is a name, and a
single-quoted one in C, Java, Go… a character. The accepted trade-off is
an unquoted password as the right-hand side of a real assignment in a real
code block. Everything below is beyond it, and every case was reported
before the language was read (6f17ebe):

* the site is not code at all, though inside the block: a comment, a
  string literal (a connection string passed to ``connect("…")``), a
  docstring, a SQL or DSN string whose single quotes are inside a double-
  quoted one;
* the fence line does not open a block that holds the site: a list item's
  fence the next unindented line leaves, a backtick fence whose info
  string holds a backtick (an inline code span, not a fence);
* a "character literal" of eight or more characters, which no language in
  the table has.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiinvariants import OutputBlocked
from aiinvariants.filters import OutputPipeline, SecretsFilter, StreamGuard

F = SecretsFilter()
V = "Xk9mP2vLq7zR4t"  # strong, no placeholder word, a name's characters
RULE = "generic-credential-assignment"


def found(text: str) -> set[str]:
    return {f.rule_id for f in F.scan(text)}


# -- the site is inside a comment or a string of the block ------------------

NOT_CODE = {
    "python line comment": f"```python\n# password = {V}\n```\n",
    "python comment, prose": f"```python\n# the DB password: {V}\n```\n",
    "js line comment": f"```js\n// api_key = {V}\n```\n",
    "c block comment": f"```c\n/* password = {V} */\n```\n",
    "c block comment, lines": f"```c\n/*\n * password = {V}\n */\n```\n",
    "sql comment": f"```sql\n-- password = {V}\n```\n",
    "libpq string in python": (
        f'```python\nconn = psycopg2.connect("host=db user=app password={V} '
        'dbname=x")\n```\n'
    ),
    "ado string in csharp": (
        f'```csharp\nvar cs = "Server=db;Database=x;User Id=app;Password={V};";\n```\n'
    ),
    "url string in python": f"```python\nurl = 'https://x/cb?token={V}&a=b'\n```\n",
    "f-string in python": f'```python\nprint(f"password={V}")\n```\n',
    "python docstring": f'```python\n"""\nDB_PASSWORD={V}\n"""\n```\n',
    "js template literal": f"```js\nconst env = `\nDB_PASSWORD={V}\n`;\n```\n",
    "kotlin raw string": f'```kotlin\nval env = """\nDB_PASSWORD={V}\n"""\n```\n',
    "json in a python string": (
        f"```python\ncfg = json.loads('{{\"password\": {V}}}')\n```\n"
    ),
}


@pytest.mark.parametrize("text", NOT_CODE.values(), ids=NOT_CODE.keys())
def test_a_comment_or_a_string_in_code_is_not_code(text: str) -> None:
    assert RULE in found(text)


SINGLE_IN_DOUBLE = {
    "go dsn": f"```go\ndsn := \"user=app password='{V}' host=db\"\n```\n",
    "java sql": f"```java\nstmt.execute(\"ALTER USER app PASSWORD '{V}'\");\n```\n",
    "c sql": f"```c\nexec_sql(conn, \"SET password = '{V}'\");\n```\n",
}


@pytest.mark.parametrize("text", SINGLE_IN_DOUBLE.values(), ids=SINGLE_IN_DOUBLE.keys())
def test_single_quotes_inside_a_string_are_a_string(text: str) -> None:
    assert RULE in found(text)


def test_a_multi_character_literal_is_no_character() -> None:
    # No language in the table has a character literal of 8+ characters:
    # 'Xk9mP2vLq7zR4t' is a (misquoted) string, and shown as one.
    for lang in ("java", "go", "c", "rust", "csharp"):
        assert RULE in found(f"```{lang}\nString password = '{V}';\n```\n"), lang
        assert "credential-comparison" in found(
            f"```{lang}\nif ('{V}' == password) {{\n```\n"
        ), lang


# -- the fence line does not open a block holding the site -----------------

NO_BLOCK = {
    # a list item's fence: the unindented line ends the item and the block
    "list item left": f"1. Install:\n\n   ```python\n   import x\n\npassword = {V}\n",
    "list item left, no blank": f"- step\n\n  ```python\n  x = 1\npassword = {V}\n",
    # a backtick fence's info string holds no backtick: an inline code span
    "backtick in info": f"```python`\npassword = {V}\n",
    "code span": f"```python```\npassword = {V}\n",
}


@pytest.mark.parametrize("text", NO_BLOCK.values(), ids=NO_BLOCK.keys())
def test_a_fence_line_that_opens_no_block_around_the_site(text: str) -> None:
    assert RULE in found(text)


# -- the enforcement points: what the caller finally receives -------------


def test_the_pipeline_blocks_a_connection_string_in_a_python_block() -> None:
    text = NOT_CODE["libpq string in python"]
    with pytest.raises(OutputBlocked) as err:
        OutputPipeline([SecretsFilter()]).enforce(text)
    assert RULE in err.value.rule_ids
    assert V not in str(err.value)


@pytest.mark.parametrize("step", [1, 3, 17])
def test_a_stream_blocks_a_comment_in_a_code_block(step: int) -> None:
    text = "```python\nimport os\n" + "x = 1\n" * 20 + f"# password = {V}\n```\n"
    guard = StreamGuard(OutputPipeline([SecretsFilter()]))
    out: list[str] = []

    def run() -> None:
        for a, b in itertools.pairwise([*range(0, len(text), step), len(text)]):
            out.append(guard.feed(text[a:b]))
        guard.close()

    with pytest.raises(OutputBlocked):
        run()
    assert V not in "".join(out)


# -- what still holds: a real assignment in a real block -------------------


@pytest.mark.parametrize(
    "text",
    [
        f"```python\npassword = {V}\n```\n",
        f'```js\nconst c = {{"password": {V}}};\n```\n',
        f"```python\nx = '#'  # a hash\npassword = {V}\n```\n",
        f'```python\ns = """doc"""\npassword = {V}\n```\n',
        f"1. Install:\n\n   ```python\n   password = {V}\n   ```\n",
        f"```c\nchar c = '\"';\nsecret = {V};\n```\n",
    ],
)
def test_the_accepted_trade_off_still_reads_code_as_code(text: str) -> None:
    assert RULE not in found(text)


# -- the PyPI rule: a macaroon has no fixed length -------------------------


def _pypi(location: bytes, caveats: int) -> str:
    import base64

    body = bytes([2, 1, len(location)]) + location + bytes([2, 1, 0])
    body += bytes((i * 37 + 11) % 256 for i in range(caveats))
    return "pypi-" + base64.urlsafe_b64encode(body).decode().rstrip("=")


@pytest.mark.parametrize("location", [b"pypi.org", b"test.pypi.org"])
@pytest.mark.parametrize("caveats", [120, 400, 900])
def test_a_long_pypi_token_leaves_nothing_behind(location: bytes, caveats: int) -> None:
    # Anyone holding a macaroon can add caveats to it (a token restricted to
    # several projects runs to hundreds of characters): past the rule's
    # bound, masking its start left the rest, signature included, on screen.
    token = _pypi(location, caveats)
    pipe = OutputPipeline([SecretsFilter(action="redact")])
    result = pipe.check(f"Use {token} to upload.")
    assert "pypi-token" in {f.rule_id for f in result.findings}
    if result.blocked:
        with pytest.raises(OutputBlocked):
            pipe.enforce(f"Use {token} to upload.")
    else:
        assert result.text == "Use [REDACTED] to upload.", result.text[:80]


# -- a fence only the canonical form sees ----------------------------------

FOLDED = {
    # the canonical form folds these into ```python; a renderer shows a
    # paragraph (or a block in an unknown language), not a Python block
    "fullwidth backticks": "\uff40\uff40\uff40python\n",
    "zero-width in the fence": "``\u200b`python\n",
    "cyrillic info string": "```\u0440ython\n",
    "fullwidth info string": "```\uff50\uff59\uff54\uff48\uff4f\uff4e\n",
    "nbsp indentation": "\u00a0\u00a0```python\n",
}


@pytest.mark.parametrize("opener", FOLDED.values(), ids=FOLDED.keys())
def test_a_fence_the_canonical_form_makes_up_hides_nothing(opener: str) -> None:
    assert RULE in found(f"{opener}password = {V}\n```\n")


def test_a_real_fence_in_a_folded_text_still_reads_code() -> None:
    # the rest of the answer folds (a fullwidth letter), the fence does not
    text = f"\uff28ere:\n\n```python\r\npassword = {V}\r\n```\r\n"
    assert RULE not in found(text)


# -- a fence line inside an open block is its text -------------------------

INSIDE = {
    # CommonMark: a fence line with an info string never closes a block
    "python line in a bare block": f"```\nfoo\n```python\npassword = {V}\n```\n",
    "python line in a yaml block": f"```yaml\nx: 1\n```python\npassword: {V}\n```\n",
    "python line in an env block": f"~~~env\nA=1\n```python\nDB_PASSWORD={V}\n~~~\n",
    "a shorter close does not close": (
        f"````yaml\nx: 1\n```\n```python\npassword: {V}\n````\n"
    ),
}


@pytest.mark.parametrize("text", INSIDE.values(), ids=INSIDE.keys())
def test_a_fence_line_inside_an_open_block_is_its_text(text: str) -> None:
    assert RULE in found(text)


def test_a_long_block_closed_then_a_python_block_reads_python() -> None:
    # the first block's opener is past the reach: its bare close comes first
    first = "```js\n" + "x = 1;\n" * 60 + "```\n\nThen:\n\n"
    text = first + f"```python\npassword = {V}\n```\n"
    assert RULE not in found(text)


# -- a stream reads the block as the one-shot check does -------------------

_PIPE = OutputPipeline([SecretsFilter(action="redact")])
_FENCES = ["```python\n", "```yaml\n", "```\n", "~~~go\n", "   ```js\n"]
_LINES = [
    f"password = {V}\n",
    f"# token: {V}\n",
    f'x = "dsn password={V}"\n',
    '"""\n',
    "/*\n",
    "*/\n",
    "'\n",
    f"  secret = {V}\n",
    f'y = "a &quot; password={V}"\n',
    "%22\n",
]
_PIECES = st.one_of(
    st.sampled_from([*_FENCES, "\uff40\uff40\uff40py\n"]),
    st.sampled_from(_LINES),
    st.integers(0, 300).map(lambda n: "x" * n + "\n"),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(_PIECES, max_size=10),
    cuts=st.lists(st.integers(0, 4000), max_size=25),
)
def test_a_stream_reads_comments_strings_and_blocks_as_one_shot(
    parts: list[str], cuts: list[int]
) -> None:
    text = "".join(parts)
    expected = _PIPE.check(text)
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    guard = StreamGuard(_PIPE)
    out = [guard.feed(text[a:b]) for a, b in itertools.pairwise(points)]
    out.append(guard.close())
    assert "".join(out) == expected.text


@pytest.mark.parametrize("native", [True, False])
def test_a_value_on_the_line_after_a_fat_arrow_is_tried(native: bool) -> None:
    # The rule takes "=>" then up to 16 blanks or line breaks (Perl, PHP,
    # Ruby hashes written one key a line); the pre-scan's shape did not, so
    # the fast path skipped a site the rule reports.
    f = SecretsFilter()
    f._use_native = native
    for text in (f"password =>\n{V}\n", f"'password' =>\n    {V},\n"):
        assert RULE in {x.rule_id for x in f.scan(text)}, text


# -- multi-line strings and comments of the table's languages --------------

MULTILINE = {
    "hcl heredoc (user_data)": (
        '```hcl\nresource "aws_instance" "x" {\n  user_data = <<-EOF\n'
        f"    #!/bin/bash\n    export DB_PASSWORD={V}\n  EOF\n}}\n```\n"
    ),
    "terraform heredoc": f"```terraform\nx = <<EOT\nDB_PASSWORD={V}\nEOT\n```\n",
    "ruby squiggly heredoc": f"```ruby\nenv = <<~ENV\n  DB_PASSWORD={V}\nENV\n```\n",
    "php heredoc": f"```php\n$env = <<<EOT\nDB_PASSWORD={V}\nEOT;\n```\n",
    "perl heredoc": f"```perl\nprint <<'END';\npassword = {V}\nEND\n```\n",
    "lua block comment": f"```lua\n--[[\npassword = {V}\n]]\n```\n",
    "lua long string": f"```lua\nlocal s = [[\npassword = {V}\n]]\n```\n",
    "powershell here-string": f'```powershell\n$e = @"\nDB_PASSWORD={V}\n"@\n```\n',
    "powershell block comment": f"```powershell\n<#\npassword = {V}\n#>\n```\n",
    "rust multi-line string": f'```rust\nlet env = "\nDB_PASSWORD={V}\n";\n```\n',
    "csharp verbatim string": f'```csharp\nvar env = @"\nDB_PASSWORD={V}\n";\n```\n',
    "haskell block comment": f"```haskell\n{{-\npassword = {V}\n-}}\n```\n",
    "fsharp block comment": f"```fsharp\n(*\npassword = {V}\n*)\n```\n",
    "ruby =begin": f"```ruby\n=begin\npassword = {V}\n=end\n```\n",
    "c++ raw string": f'```cpp\nauto env = R"(\nDB_PASSWORD={V}\n)";\n```\n',
}


@pytest.mark.parametrize("text", MULTILINE.values(), ids=MULTILINE.keys())
def test_a_multi_line_string_or_comment_is_not_code(text: str) -> None:
    assert RULE in found(text)


@pytest.mark.parametrize(
    "text",
    [
        f"```hcl\nx = <<EOT\nhello\nEOT\npassword = {V}\n```\n",
        f"```lua\n--[[ note ]]\npassword = {V}\n```\n",
        f"```rust\nfn f<'a>(x: &'a str) {{}}\nlet s = \"a\";\npassword = {V};\n```\n",
        f"```python\ndef f(*args, **kw):\n    password = {V}\n```\n",
        f"```cpp\nint x = 1<<SHIFT;\npassword = {V};\n```\n",
    ],
)
def test_after_a_closed_one_the_block_is_code_again(text: str) -> None:
    assert RULE not in found(text)


# -- shell lines in a code block: IPython escapes and magics, a prompt -----

SHELL_LINES = {
    "ipython %env": f"```python\n%env DB_PASSWORD={V}\n```\n",
    "ipython shell escape": f"```ipython\n!export DB_PASSWORD={V}\n```\n",
    "ipython cell magic": f"```python\n%%bash\nexport DB_PASSWORD={V}\n```\n",
    "a shell prompt": f"```js\n$ DB_PASSWORD={V} node app.js\n```\n",
}


@pytest.mark.parametrize("text", SHELL_LINES.values(), ids=SHELL_LINES.keys())
def test_a_shell_line_in_a_code_block_is_not_code(text: str) -> None:
    assert RULE in found(text)


def test_code_after_a_shell_line_is_code_again() -> None:
    text = f"```python\n!pip install requests\npassword = {V}\n```\n"
    assert RULE not in found(text)


# -- an encoding the canonical form decodes closes a string early ----------

ENCODED = {
    # the canonical form decodes these into a quote or a line break: the
    # string (or comment) the value is in looked closed before it
    "html entity quote": (
        f'```python\nconn = connect("app &quot; host=db password={V}")\n```\n'
    ),
    "percent quote": (
        f'```python\nconn = connect("app %22 host=db password={V}")\n```\n'
    ),
    "numeric entity apostrophe": (
        f"```python\nurl = 'x &#39; y https://h/?token={V}&a=b'\n```\n"
    ),
    "entity line break in a comment": f"```js\n// note&#10;api_key = {V}\n```\n",
}


@pytest.mark.parametrize("text", ENCODED.values(), ids=ENCODED.keys())
def test_a_decoded_quote_or_break_does_not_end_a_string(text: str) -> None:
    assert RULE in found(text)


def test_a_decoded_character_elsewhere_keeps_the_language() -> None:
    # after the site, or before the block: the block's reading is unchanged
    text = f"Caf&eacute;:\n\n```python\npassword = {V}\nx = '&quot;'\n```\n"
    assert RULE not in found(text)


_PARTS = ["a", "`", '"', "&quot;", "%22", "\u200b", "\uff40", "\u0440", "\u00a0"]
_PARTS += ["\n", "\r\n", "e\u0301", "\t", "&amp;#x41;"]


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.sampled_from(_PARTS), max_size=30), a=st.integers(0, 40))
def test_changed_positions_of_a_span_are_those_of_the_whole(
    parts: list[str], a: int
) -> None:
    from aiinvariants._internal.canonical import canonical

    canon = canonical("".join(parts))
    whole = canon.changed()
    for b in range(a, len(canon.cased) + 2):
        assert canon.changed(a, b) == [p for p in whole if a <= p < b]
    if canon.identity:  # one to one: exactly where the characters differ
        differ = [
            i for i, (c, o) in enumerate(zip(canon.cased, canon.original, strict=True))
            if c != o and not (o in "\t\r" and c in " \n")
        ]  # fmt: skip
        assert whole == differ
