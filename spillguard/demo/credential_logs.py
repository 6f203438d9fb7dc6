"""Log lines with credentials written into them, and the ground truth of each line.

Application and proxy logs are where credentials end up as text: a config dumped at start-up, a failed login
echoed back, a request logged with its headers, a connection string in a stack trace. `credential_log_lines`
writes such lines in the shapes people and frameworks use (key=value, JSON, YAML, .env, HTTP headers,
connection strings, "username X / password Y", issuer tokens inside a message), interleaved with decoys that
must stay silent (placeholders, templates, masked values, prose about passwords, request ids and digests that
look random but sit under no credential key). Each line carries at most one credential; the truth is its exact
text, so a detector can be scored on the span it reports, not only on the line.
"""

from __future__ import annotations

import base64
import binascii
import random
import string
from dataclasses import dataclass, field

_B62 = string.ascii_letters + string.digits
_HEX = "0123456789abcdef"
_WORDS = ("Summer", "Falcon", "Harbor", "Maple", "Quartz", "Violet", "Tundra", "Copper", "Orchid", "Ember")
_SYMBOLS = "!#%&*?@$^"
_USERS = ("admin", "root", "deploy", "svc_backup", "jane.doe", "m.keller", "etl", "grafana")
_HOSTS = ("db1.internal", "10.0.4.17", "pg.prod.example.net", "cache-2", "mysql.local")


@dataclass(slots=True)
class CredentialLogs:
    lines: list[str] = field(default_factory=list)
    secrets: list[str | None] = field(default_factory=list)  # the credential written in each line, or None
    shapes: list[str] = field(default_factory=list)  # which shape (or decoy) each line is


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    while True:
        s = "".join(rng.choice(alphabet) for _ in range(n))
        has_upper = any(c.isupper() for c in s) or not any(c.isupper() for c in alphabet)
        has_digit = any(c.isdigit() for c in s) or not any(c.isdigit() for c in alphabet)
        if has_upper and has_digit:
            return s


def _password(rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        return f"{rng.choice(_WORDS)}{rng.randrange(1970, 2030)}{rng.choice(_SYMBOLS)}"
    if kind == 1:
        return _rand(rng, _B62 + "!#%&*", rng.randrange(10, 24))
    return f"{rng.choice(_WORDS).lower()}{rng.choice(_SYMBOLS)}{rng.choice(_WORDS)}{rng.randrange(10, 99)}"


def _github(rng: random.Random) -> str:
    alphabet = string.digits + string.ascii_uppercase + string.ascii_lowercase
    body = _rand(rng, _B62, 30)
    n = binascii.crc32(body.encode())
    check = ""
    while n:
        n, r = divmod(n, 62)
        check = alphabet[r] + check
    return "ghp_" + body + check.rjust(6, "0")


def _stamp(rng: random.Random) -> str:
    return f"2026-11-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z"


def _positive(rng: random.Random) -> tuple[str, str, str]:
    """(line, credential, shape)."""
    ts, user, host = _stamp(rng), rng.choice(_USERS), rng.choice(_HOSTS)
    pw = _password(rng)
    shape = rng.randrange(16)
    if shape == 0:
        return f"{ts} INFO db connect host={host} user={user} password={pw} pool=8", pw, "kv_password"
    if shape == 1:
        return f'{{"ts": "{ts}", "level": "debug", "msg": "config", "db": {{"user": "{user}", "password": "{pw}"}}}}', pw, "json_password"
    if shape == 2:
        return f"{ts} env dump: DB_PASSWORD={pw}", pw, "env_password"
    if shape == 3:
        return f"{ts} loaded settings.yml:\n  database:\n    password: {pw}\n    pool: 5", pw, "yaml_password"
    if shape == 4:
        cred = base64.b64encode(f"{user}:{pw}".encode()).decode()
        return f"{ts} proxy request GET /admin headers={{Authorization: Basic {cred}}}", cred, "basic_header"
    if shape == 5:
        tok = _rand(rng, _B62 + "-_", rng.randrange(32, 48))
        return f"{ts} upstream call Authorization: Bearer {tok} status=200", tok, "bearer_header"
    if shape == 6:
        key = _rand(rng, _HEX, 32)
        return f"{ts} WARN retrying with api_key: {key}", key, "api_key_yaml"
    if shape == 7:
        sec = _rand(rng, _B62, 32)
        return f'{ts} oauth client registered {{"client_id": "app-{rng.randrange(1000)}", "client_secret": "{sec}"}}', sec, "json_client_secret"
    if shape == 8:
        return f"{ts} ERROR could not connect to postgresql://{user}:{pw.replace('@', '#')}@{host}:5432/app", pw.replace("@", "#"), "connection_url"
    if shape == 9:
        weak = rng.choice(("root", "admin123", "toor", "changeit42", "P@ssw0rd")) if rng.random() < 0.5 else pw
        return f"{ts} WARN default login still active: username {user} / password {weak}", weak, "user_password_pair"
    if shape == 10:
        p = pw.replace(";", "")
        return f"{ts} conn string Server={host};Database=app;User Id={user};Password={p};", p, "ado_connection_string"
    if shape == 11:
        tok = _github(rng)
        return f"{ts} git clone with token {tok} failed", tok, "github_token"
    if shape == 12:
        key = "AKIA" + _rand(rng, string.ascii_uppercase + "234567", 16)
        return f"{ts} s3 upload as {key} to bucket logs", key, "aws_key_id"
    if shape == 13:
        tok = f"xoxb-{rng.randrange(10**10, 10**11)}-{rng.randrange(10**12, 10**13)}-{_rand(rng, _B62, 24)}"
        return f"{ts} slack notify token={tok}", tok, "slack_token"
    if shape == 14:
        key = "sk_live_" + _rand(rng, _B62, 24)
        return f'{ts} payment provider init {{"secret_key": "{key}"}}', key, "stripe_key"
    tok = _rand(rng, _B62, 40)
    return f"{ts} export ACME_AUTH_TOKEN={tok}", tok, "env_token"


def _decoy(rng: random.Random) -> tuple[str, str]:
    ts, user = _stamp(rng), rng.choice(_USERS)
    lines = (
        f"{ts} INFO db connect user={user} password=${{DB_PASSWORD}}",
        f"{ts} template: password: <your-password>",
        f"{ts} INFO login ok user={user} password=********",
        f'{ts} {{"user": "{user}", "password": null}}',
        f"{ts} INFO password reset requested for user {user}",
        f"{ts} WARN token expired for session of {user}, refreshing",
        f"{ts} docs: set api_key: YOUR_API_KEY_HERE before running",
        f"{ts} example config uses AKIAXXXXXXXXXXXXXXXX",
        f"{ts} readme: export GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        f"{ts} curl example: Authorization: Bearer <token>",
        f"{ts} auth failed: user {user} password incorrect",
        f"{ts} request_id={_rand(rng, _HEX, 32)} trace_id={_rand(rng, _HEX, 16)} status=200",
        f"{ts} artifact sha256={_rand(rng, _HEX, 64)} uploaded",
        f"{ts} deploy commit {_rand(rng, _HEX, 40)} by {user}",
        f"{ts} rate limit: tokens=42 refill=10/s",
        f"{ts} INFO user {user} changed their password",
        f"{ts} api_key=${{API_KEY}} token={{{{ token }}}}",
        f"{ts} session started for {user} from 10.1.{rng.randrange(255)}.{rng.randrange(255)}",
        f"{ts} env: HOME=/home/{user} PWD=/srv/app OLDPWD=/root SHELL=/bin/bash",
        f"{ts} usage token_count={rng.randrange(10**16, 10**17)} prompt_tokens=512",
        f"{ts} mounting k8s_secret: payments-api-credentials-v2 into /etc/creds",
    )
    shape = rng.randrange(len(lines))
    return lines[shape], f"decoy_{shape}"


def credential_log_lines(count: int, seed: int = 7, share: float = 0.4) -> CredentialLogs:
    """`count` log lines, a `share` of them carrying one credential each, the rest decoys and plain lines."""
    rng = random.Random(seed)
    out = CredentialLogs()
    for _ in range(count):
        if rng.random() < share:
            line, secret, shape = _positive(rng)
            out.lines.append(line)
            out.secrets.append(secret)
            out.shapes.append(shape)
        else:
            line, shape = _decoy(rng)
            out.lines.append(line)
            out.secrets.append(None)
            out.shapes.append(shape)
    return out
