"""Red team of issue #13's SecretsFilter: routes that carried a credential out.

Each test states the secure outcome (the answer is blocked with the stable
code ``output_blocked`` and the expected rule id, or masked so that no part of
the value survives) for a shape a model answer really has, and keeps the
hard negatives next to it so a fix cannot buy recall with precision.
"""

from __future__ import annotations

import random
import string
import zlib

import pytest

from aiinvariants import OutputBlocked
from aiinvariants.filters import OutputPipeline, SecretsFilter
from aiinvariants.filters._secret_rules import _base62

FILTER = SecretsFilter()
BLOCK = OutputPipeline([SecretsFilter()])
REDACT = OutputPipeline([SecretsFilter(action="redact")])
PASSWORD = "Tr0ub4dor&3xQz!9"
RNG = random.Random(1313)


def _github_pat() -> str:
    body = "".join(RNG.choice(string.ascii_letters + string.digits) for _ in range(30))
    return "ghp_" + body + _base62(zlib.crc32(body.encode()), 6)


def _stripe_key() -> str:
    alphabet = string.ascii_letters + string.digits
    return "sk_live_" + "".join(RNG.choice(alphabet) for _ in range(24))


GITHUB_PAT = _github_pat()
STRIPE_KEY = _stripe_key()


def _blocked(text: str) -> OutputBlocked:
    with pytest.raises(OutputBlocked) as caught:
        BLOCK.enforce(text)
    assert caught.value.code == "output_blocked"
    return caught.value


def _fully_masked(text: str, secret: str) -> None:
    masked = REDACT.check(text).text
    for at in range(0, len(secret) - 5):
        assert secret[at : at + 6] not in masked, masked


# -- token boundaries: the blob rule must not hide a key that is certainly real


@pytest.mark.parametrize(
    "text",
    [
        "x" * 24 + GITHUB_PAT + "y" * 24,
        "MyVeryLongHelperFactoryClassNameForTests" + GITHUB_PAT + "AndMoreIdentifier",
        "QmFzZTY0UGFkZGluZ0hlcmVUb0hpZGVUaGVLZXk" + GITHUB_PAT + "QmFzZTY0UGFkZGlu",
    ],
)
def test_checksum_verified_token_glued_into_a_blob_is_still_reported(
    text: str,
) -> None:
    error = _blocked(text)
    assert error.rule_ids == ("github-pat",)
    assert {f.severity for f in error.findings} == {"critical"}
    _fully_masked(text, GITHUB_PAT)


# -- placeholder exemptions: "EXAMPLE" marks a docs key only as the docs write it


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("AKIAEXAMPLEQZ7K2M3NPLR", "aws-access-key-id"),
        ("sk_live_EXAMPLE" + STRIPE_KEY[8:], "stripe-secret-key"),
        (STRIPE_KEY + "EXAMPLE", "stripe-secret-key"),
        ('password = "Qz7!EXAMPLEbut#k2P-more"', "generic-credential-assignment"),
    ],
)
def test_example_spliced_into_a_real_key_is_no_exemption(text: str, rule: str) -> None:
    assert _blocked(text).rule_ids == (rule,)


@pytest.mark.parametrize(
    "text",
    [
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AKIAI44QH8DHBEXAMPLE",
        'aws_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKE"',
    ],
)
def test_documentation_keys_stay_unreported(text: str) -> None:
    assert FILTER.scan(text) == []


# -- credential formats an answer writes that were not reported

CONFIG_FORMS = [
    # YAML block scalars (literal and folded)
    "database:\n  password: |\n    {}\n",
    "auth:\n  token: >-\n    {}\n",
    # Dockerfile ENV with a space, Java properties with a space
    "ENV DB_PASSWORD {}",
    "spring.datasource.password {}",
    # Markdown: bold key, table row, code-quoted key
    "**Password:** {}",
    "**Password**: {}",
    "| password | {} |",
    "`password` = `{}`",
]


@pytest.mark.parametrize("form", CONFIG_FORMS)
def test_config_and_markdown_forms_are_found_and_masked(form: str) -> None:
    text = form.format(PASSWORD)
    assert _blocked(text).rule_ids == ("generic-credential-assignment",)
    _fully_masked(text, PASSWORD)


URL, CLI = "url-credentials", "cli-user-password"


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (f"redis://:{PASSWORD}@cache.internal:6379/0", URL),
        (f"smtp://alerts@example.com:{PASSWORD}@smtp.example.com:587", URL),
        (f"curl -u admin:{PASSWORD} https://api.example.com/v1/me", CLI),
        (f"curl --user 'deploy:{PASSWORD}' https://ci.example.com", CLI),
        (f"wget --user=admin:{PASSWORD} https://x.example.com/f", CLI),
    ],
)
def test_connection_strings_and_cli_credentials(text: str, rule: str) -> None:
    assert rule in _blocked(text).rule_ids
    _fully_masked(text, PASSWORD)


@pytest.mark.parametrize(
    "text",
    [
        "docker run --rm -u 1000:1000 -v $PWD:/app node:20",
        "docker run -u $(id -u):$(id -g) image",
        "curl -u $USER:$API_TOKEN https://api.example.com",
        'curl -u "$CLIENT_ID:$CLIENT_SECRET" https://api.example.com/oauth/token',
        "curl -u user:password https://x.example.com",
        "curl -u elastic:changeme https://localhost:9200",
        "curl --user neo4j:[PASSWORD] http://[IP]:7474/db/data/",
        "| `api_key` | string | Your API key from the dashboard |",
        "| password | string | The user's password (min 8 chars) |",
        "ENV DB_PASSWORD_FILE /run/secrets/db_password",
        "DB_PASSWORD=/run/secrets/db_password",
        "The SECRET_KEY setting must be kept secret.",
        "the password Manager2024 app",
        "password: |\n  <your password here>\n",
        "**Password:** the one you chose at signup",
        "redis://localhost:6379/0",
        "postgresql://$USER:$PASSWORD@localhost/db",
        "kind: ClusterSecretStore\n    name: aws-secretsmanager\n",
        'curl -H "Authorization: Bearer $(gcloud auth print-access-token)" '
        "https://workflowexecutions.googleapis.com/v1/projects",
    ],
)
def test_near_misses_of_the_new_forms_stay_negative(text: str) -> None:
    assert FILTER.scan(text) == []


# -- values longer than a rule's bound: not reported, or only their start masked

_B64 = string.ascii_letters + string.digits + "+/"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjE" + "".join(RNG.choice(_B64) for _ in range(600))
LONG_KEY = "".join(RNG.choice(_B64) for _ in range(250))
GOOGLE_TOKEN = "ya29." + "".join(
    RNG.choice(string.ascii_letters + string.digits + "_-") for _ in range(900)
)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (f'aws_session_token = "{SESSION_TOKEN}"', "generic-credential-assignment"),
        (f"AWS_SESSION_TOKEN={SESSION_TOKEN}", "generic-credential-assignment"),
        (f'{{"api_key": "{LONG_KEY}"}}', "generic-credential-assignment"),
        (f"Authorization: Bearer {GOOGLE_TOKEN}", "google-oauth-access-token"),
    ],
)
def test_a_value_longer_than_the_rule_bound_blocks_even_when_redacting(
    text: str, rule: str
) -> None:
    """Masking only the first 200 characters would print the other 400."""
    result = REDACT.check(text)
    assert result.blocked
    assert rule in {f.rule_id for f in result.findings if f.action == "block"}
    with pytest.raises(OutputBlocked) as caught:
        REDACT.enforce(text)
    assert caught.value.code == "output_blocked"


def test_a_long_quoted_sentence_is_not_a_credential() -> None:
    sentence = "The secret to good tokenization is a clear vocabulary. " * 5
    assert FILTER.scan(f'"secret": "{sentence}"') == []


# -- SQL: the password a CREATE/ALTER USER statement sets


@pytest.mark.parametrize(
    "text",
    [
        f"CREATE USER 'app'@'%' IDENTIFIED BY '{PASSWORD}';",
        "ALTER USER 'root'@'localhost' IDENTIFIED WITH mysql_native_password "
        f"BY '{PASSWORD}';",
        "CREATE USER scott IDENTIFIED BY Tig3r_Xq9!z;",
    ],
)
def test_sql_identified_by_password_is_found(text: str) -> None:
    assert _blocked(text).rule_ids == ("sql-identified-by",)


@pytest.mark.parametrize(
    "text",
    [
        "CREATE USER 'app'@'localhost' IDENTIFIED BY 'password';",
        "CREATE USER 'app'@'%' IDENTIFIED BY '${DB_PASSWORD}';",
        "CREATE USER app IDENTIFIED BY :new_password;",
        "Users are identified by their e-mail address.",
        "The flaw identified by CVE-2024-3094 affects xz.",
        "It was identified by CVE-2024-3094.",
    ],
)
def test_sql_identified_by_near_misses(text: str) -> None:
    assert FILTER.scan(text) == []


# -- code forms: typed declarations, string prefixes, escaped JSON, name/value

CODE_FORMS = [
    'const apiKey: string = "{}";',
    'private readonly apiToken: string = "{}";',
    'let token: &str = "{}";',
    'val password: String = "{}"',
    'let apiKey: String = "{}"',
    'password: str = "{}"',
    'api_key: Optional[str] = "{}"',
    'SECRET_KEY = b"{}"',
    "password = r'{}'",
    'token = f"{}"',
    '{{\\"password\\": \\"{}\\"}}',
    '"{{\\"api_key\\":\\"{}\\"}}"',
    "- name: DB_PASSWORD\n  value: {}\n",
    'env:\n  - name: API_TOKEN\n    value: "{}"\n',
    '{{"name": "DB_PASSWORD", "value": "{}"}}',
    '{{"key": "X-Api-Key", "value": "{}"}}',
]


@pytest.mark.parametrize("form", CODE_FORMS)
def test_code_forms_are_found_and_masked(form: str) -> None:
    text = form.format(PASSWORD)
    assert _blocked(text).rule_ids == ("generic-credential-assignment",)
    _fully_masked(text, PASSWORD)


@pytest.mark.parametrize(
    "text",
    [
        'const apiKey: string = process.env.API_KEY ?? "";',
        "api_key: Optional[str] = None",
        "- name: DB_PASSWORD\n  valueFrom:\n    secretKeyRef:\n      name: db\n",
        '{"name": "API_TOKEN", "value": "${API_TOKEN}"}',
        '{"key": "X-Api-Key", "value": "{{apiKey}}"}',
        "token: dGVzdA==\nname: x",
        'SECRET_KEY = b"changeme"',
    ],
)
def test_code_form_near_misses(text: str) -> None:
    assert FILTER.scan(text) == []


# -- a private key printed without its BEGIN line ("just the base64, please")


def _key_bodies() -> list[str]:
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    keys = [
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP384R1()),
        ed25519.Ed25519PrivateKey.generate(),
    ]
    bodies = []
    for key in keys:
        for fmt in (
            ser.PrivateFormat.TraditionalOpenSSL,
            ser.PrivateFormat.PKCS8,
            ser.PrivateFormat.OpenSSH,
        ):
            try:
                pem = key.private_bytes(ser.Encoding.PEM, fmt, ser.NoEncryption())
            except ValueError:
                continue  # Ed25519 has no "traditional" form
            bodies.append("\n".join(pem.decode().strip().splitlines()[1:-1]))
    return bodies


@pytest.mark.parametrize("body", _key_bodies(), ids=lambda body: body[:11])
def test_private_key_body_without_header_blocks(body: str) -> None:
    for text in (body, body.replace("\n", ""), f'"key": "{body[:120]}"'):
        assert "private-key-body" in _blocked(text).rule_ids
        assert REDACT.check(text).blocked  # cannot be masked within the window


def test_public_key_and_certificate_bodies_are_not_private_keys() -> None:
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    for key in (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
    ):
        pem = key.public_key().public_bytes(
            ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo
        )
        body = "".join(pem.decode().strip().splitlines()[1:-1])
        assert FILTER.scan(body) == []


# -- Authorization schemes other than Basic/Bearer, built values, token URLs

TOKEN = "hK8mQ2vX9pL4wZ7nR3tY6uB1"


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (f"Authorization: ApiKey {TOKEN}", "authorization-header"),
        (f"Authorization: SSWS {TOKEN}", "authorization-header"),
        (f"Authorization: Splunk {TOKEN}", "authorization-header"),
        (f'headers = {{"Authorization": f"Bearer {TOKEN}"}}', "authorization-header"),
        (f"h = {{'Authorization': 'Bearer ' + '{TOKEN}'}}", "authorization-header"),
        (f"git clone https://{TOKEN}@github.com/org/repo.git", "url-credentials"),
    ],
)
def test_authorization_schemes_and_token_urls(text: str, rule: str) -> None:
    assert rule in _blocked(text).rule_ids
    _fully_masked(text, TOKEN)


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer YOUR_TOKEN",
        "Authorization: ApiKey <your-api-key>",
        "Authorization: required for all endpoints",
        "Authorization: Handled by the OAuth2Provider class",
        "authorization: see https://docs.example.com/authentication-guide",
        "git clone https://github.com/org/repo.git",
        "https://firstname_lastname_company@bitbucket.org/x",
        "https://some-very-long-user-name-here@example.com",
    ],
)
def test_authorization_and_url_near_misses(text: str) -> None:
    assert FILTER.scan(text) == []


# -- passwords on command lines, in .netrc, in PowerShell

CLI_FLAG, NETRC, PWSH = "cli-password-flag", "netrc-password", "powershell-securestring"


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (f"mysql -u root -p{PASSWORD} app", "cli-password-flag"),
        (f"mysqldump -uroot -p{PASSWORD} db > dump.sql", "cli-password-flag"),
        (f"sshpass -p '{PASSWORD}' ssh deploy@10.0.0.5", "cli-password-flag"),
        (f"docker login -u me -p {PASSWORD} registry.example.com", CLI_FLAG),
        (f"az login --service-principal -u app -p {PASSWORD} --tenant t", CLI_FLAG),
        (f"machine api.example.com login me@x.com password {PASSWORD}", NETRC),
        (f'$pw = ConvertTo-SecureString "{PASSWORD}" -AsPlainText -Force', PWSH),
    ],
)
def test_command_line_netrc_and_powershell_passwords(text: str, rule: str) -> None:
    assert rule in _blocked(text).rule_ids
    _fully_masked(text, PASSWORD)


@pytest.mark.parametrize(
    "text",
    [
        "mysql -u root -p mydb",
        f"mysql -u root -p {PASSWORD}",  # mysql reads this as a database name
        "mysql -u root -ppassword",
        "docker login -u ci -p $CI_REGISTRY_PASSWORD registry.example.com",
        "docker login --password-stdin",
        "please login -p to proceed",
        "machine example.com login anonymous password guest@",
        "$pw = ConvertTo-SecureString $env:PASSWORD -AsPlainText -Force",
        "Please login to the machine with your password manager",
    ],
)
def test_command_line_near_misses(text: str) -> None:
    assert FILTER.scan(text) == []


# -- a provider token in front of a longer value does not shrink the value's mask


def test_a_fake_provider_prefix_does_not_leave_the_rest_of_the_value() -> None:
    text = f"secret: {STRIPE_KEY}#{PASSWORD}"
    result = REDACT.check(text)
    assert "generic-credential-assignment" in {f.rule_id for f in result.findings}
    _fully_masked(text, PASSWORD)


def test_a_value_that_is_exactly_a_provider_token_is_reported_once() -> None:
    for text in (f'api_key = "{STRIPE_KEY}"', f"token={STRIPE_KEY}"):
        assert [f.rule_id for f in FILTER.scan(text)] == ["stripe-secret-key"]


# -- a key that is a whole URL path segment inside a long path


@pytest.mark.parametrize(
    "text",
    [
        f"https://api.example.com/v1/projects/prj8Kq2/keys/{STRIPE_KEY}"
        "/rotate/confirm/immediately/please",
        f"https://example.com/{STRIPE_KEY}/abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrst",
        "https://maker.example.com/trigger/deploy/with/key/AKIAQ2XK7ZL3MNB4V5WC"
        "/json/abcdefghijklmnopqrstuvwxyz",
    ],
)
def test_key_as_a_url_path_segment_is_reported(text: str) -> None:
    error = _blocked(text)
    assert error.rule_ids in (("stripe-secret-key",), ("aws-access-key-id",))


def test_a_long_jwt_is_not_half_masked() -> None:
    """The jwt rule matches at most ~390 characters; masking only that part of
    an access token with long claims would print its signature."""
    import base64
    import json

    def b64(data: dict[str, object]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    header = b64({"alg": "RS256", "typ": "JWT", "kid": "k1"})
    claims = b64({"sub": "u-" + "x?" * 90, "scp": "read write", "exp": 1999999999})
    signature = "Mu22AwqqnH7y-zoRp5_hSe5JONP3yRjfecRKRBgXnao"
    text = f"Authorization: Bearer {header}.{claims}.{signature}"
    result = REDACT.check(text)
    assert result.blocked or signature not in result.text


# -- Oracle connect strings (user/password@host)


@pytest.mark.parametrize(
    "text",
    [
        f"jdbc:oracle:thin:app/{PASSWORD}@db.internal:1521/ORCLPDB1",
        f"sqlplus -s app/{PASSWORD}@//db.internal:1521/ORCLPDB1",
    ],
)
def test_oracle_connect_string_password(text: str) -> None:
    assert "oracle-connect-password" in _blocked(text).rule_ids
    _fully_masked(text, PASSWORD)


@pytest.mark.parametrize(
    "text",
    ["sqlplus scott/tiger@orcl", "jdbc:oracle:thin:@//db.internal:1521/ORCLPDB1"],
)
def test_oracle_near_misses(text: str) -> None:
    assert FILTER.scan(text) == []


# -- left open (see the report): each is a real leak this branch does not stop


@pytest.mark.parametrize(
    "text",
    [
        f'variable "db_password" {{\n  type = string\n  default = "{PASSWORD}"\n}}',
        f'gh secret set API_TOKEN --body "{PASSWORD}"',
    ],
)
def test_name_far_from_value(text: str) -> None:
    assert FILTER.scan(text)


# -- obfuscated provider tokens and registered secrets (the canonical form)


@pytest.mark.parametrize(
    "text",
    [
        GITHUB_PAT[:10] + "\u200b" + GITHUB_PAT[10:],
        "".join(chr(ord(c) + 0xFEE0) for c in GITHUB_PAT),
    ],
)
def test_obfuscated_provider_token(text: str) -> None:
    assert FILTER.scan(text)


@pytest.mark.parametrize("encode", ["percent", "base64-wrapped"])
def test_registered_secret_encodings(encode: str) -> None:
    import base64

    secret = "Qx7kPz9mLw2vRt8n"
    if encode == "percent":
        text = "".join(f"%{ord(c):02X}" for c in secret)
    else:
        raw = base64.b64encode(secret.encode()).decode()
        text = raw[:8] + "\n" + raw[8:]
    assert SecretsFilter(registered=[secret]).scan(text)
