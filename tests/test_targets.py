"""Target URLs: protocol and port by scheme, passwords never shown."""

from __future__ import annotations

import importlib
import random
import string
from urllib.parse import quote, unquote, urlsplit

import pytest

from spillguard.audit.probes.base import mask_dataset_name
from spillguard.errors import UserError
from spillguard.targets import (
    SCHEMES,
    check_targets,
    credentials_tag,
    mask_url,
    normalized_url,
    parse_target,
    parse_url,
    store_key,
    with_password,
)


@pytest.mark.parametrize(
    ("url", "protocol", "port", "tls"),
    [
        ("elasticsearch+http://127.0.0.1", "elasticsearch", 9200, False),
        ("elasticsearch+https://es.internal:9243", "elasticsearch", 9243, True),
        ("opensearch://127.0.0.1", "elasticsearch", 9200, False),
        ("kibana://127.0.0.1", "kibana", 5601, False),
        ("mongodb://127.0.0.1/?directConnection=true", "mongodb", 27017, False),
        ("mongodb://127.0.0.1/?tls=true", "mongodb", 27017, True),
        ("redis://127.0.0.1", "redis", 6379, False),
        ("rediss://127.0.0.1:6380", "redis", 6380, True),
        ("postgresql://postgres@127.0.0.1/postgres", "postgresql", 5432, False),
        ("postgres://u@127.0.0.1/db?sslmode=require", "postgresql", 5432, True),
        ("mysql://root@127.0.0.1/", "mysql", 3306, False),
        ("mariadb://root@127.0.0.1:3307/", "mysql", 3307, False),
        ("mqtt://127.0.0.1", "mqtt", 1883, False),
        ("mqtts://127.0.0.1", "mqtt", 8883, True),
        ("memcached://127.0.0.1", "memcached", 11211, False),
        ("couchdb://127.0.0.1", "couchdb", 5984, False),
    ],
)
def test_scheme_gives_protocol_port_and_tls(url: str, protocol: str, port: int, tls: bool) -> None:
    t = parse_target(url)
    assert (t.protocol, t.port, t.tls) == (protocol, port, tls)


def test_passwords_are_masked_everywhere() -> None:
    url = "postgresql://admin:Pa%24%24word@127.0.0.1:5432/app?password=other&sslmode=disable"
    t = parse_target(url)
    assert t.password == "Pa$$word" and t.user == "admin"
    assert t.masked == "postgresql://admin:***@127.0.0.1:5432/app?password=***&sslmode=disable"
    assert "Pa$$" not in repr(t) and "Pa%24" not in repr(t) and "other" not in repr(t)
    assert mask_url("redis://:secret@127.0.0.1:6379") == "redis://:***@127.0.0.1:6379"
    assert mask_url("redis://127.0.0.1:6379") == "redis://127.0.0.1:6379"


def test_bad_urls_are_user_errors() -> None:
    with pytest.raises(UserError, match="unknown scheme 'ftp'"):
        parse_target("ftp://127.0.0.1")
    with pytest.raises(UserError, match="no host"):
        parse_target("redis://")
    with pytest.raises(UserError, match="port '99999999' is not a number"):
        parse_target("redis://127.0.0.1:99999999")


def test_dataset_names_that_look_personal_are_masked() -> None:
    assert mask_dataset_name("users-jane.doe@example.com") == "users-j***@example.com"
    assert mask_dataset_name("tenant_4915112345678") == "tenant_49###########"
    assert mask_dataset_name("logs-2024.01.01") == "logs-2024.01.01"
    assert mask_dataset_name("public.customers") == "public.customers"


# ------------------------------------------------------------------- the registry (spillguard.targets)


def test_every_row_names_a_real_adapter_and_probe() -> None:
    # A row that points at a missing module or class would only fail when a user names that scheme.
    for row in SCHEMES.values():
        assert row.scheme == row.scheme.lower() and row.kind
        assert row.default_port is None or 0 < row.default_port < 65536
        if row.adapter:
            module, cls = row.adapter.split(":")
            assert isinstance(getattr(importlib.import_module(module), cls), type), row
        if row.probe:
            assert callable(importlib.import_module(row.probe).probe), row
        if row.destination:
            module, cls = row.destination.split(":")
            assert isinstance(getattr(importlib.import_module(module), cls), type), row
        assert row.adapter or row.probe, f"{row.scheme}: neither scanned nor audited"
    # One probe per kind: the kind is what the audit reports as `protocol`.
    for kind in {r.kind for r in SCHEMES.values() if r.probe}:
        assert len({r.probe for r in SCHEMES.values() if r.kind == kind and r.probe}) == 1, kind


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        # an unescaped '@' and '#' in the password (issue 10 item 17)
        ("postgresql://scanner:Scan@Pw#9911@host/app", "postgresql://scanner:***@host/app"),
        ("postgresql://scanner:Scan@Pw#9911@host:5433/app?sslmode=require",
         "postgresql://scanner:***@host:5433/app?sslmode=require"),
        ("mysql://u:a:b@c@[::1]:3306/db", "mysql://u:***@[::1]:3306/db"),
        ("postgresql://u:pa/ss@host/db", "postgresql://u:***@host/db"),
        # passwords in the query (issue 9 fix 1)
        ("postgresql://app@db/prod?password=S3cret", "postgresql://app@db/prod?password=***"),
        ("postgresql://app@db/prod?sslmode=verify-full&sslpassword=k3y&application_name=x",
         "postgresql://app@db/prod?sslmode=verify-full&sslpassword=***&application_name=x"),
        ("redis://h/0?pass=a&pwd=b&secret=c&token=d&key=e&auth=f&access_key=g&api_key=h&Client_Secret=i",
         "redis://h/0?pass=***&pwd=***&secret=***&token=***&key=***&auth=***&access_key=***&api_key=***"
         "&Client_Secret=***"),
        ("mongodb://h/?authSource=admin;password=x", "mongodb://h/?authSource=***;password=***"),
        ("elasticsearch+https://es:9200/#token=abc", "elasticsearch+https://es:9200/#***"),
        # no credentials: unchanged, byte for byte
        ("elasticsearch+http://127.0.0.1:9200/logs?verify=false", "elasticsearch+http://127.0.0.1:9200/logs?verify=false"),
        ("sqlite:///tmp/a@b/x.db", "sqlite:///tmp/a@b/x.db"),
        ("es://es:9200/idx@2024", "es://es:9200/idx@2024"),
        ("./folder/with@sign", "./folder/with@sign"),
        # unparseable: still masked, never an exception
        ("postgresql://u:pw@[::1/app", "postgresql://u:***@[::1/app"),
        ("redis://:pw@127.0.0.1:abc", "redis://:***@127.0.0.1:abc"),
        ("mysql://u:p@[zz]:3306/db", "mysql://u:***@[zz]:3306/db"),
    ],
)  # fmt: skip
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_mask_url_never_raises_and_never_shows_the_password() -> None:
    rng = random.Random(5)
    alphabet = string.ascii_letters + string.digits + "@#:%?&=;[]!$'()*+,~-._"
    for _ in range(3000):
        password = "Zq" + "".join(rng.choice(alphabet) for _ in range(rng.randint(4, 16))) + "Zq"
        for url in (
            f"postgresql://u:{password}@db.internal:5432/app",
            f"postgresql://u@db.internal/app?password={quote(password, safe='')}",
            f"redis://:{quote(password, safe='')}@127.0.0.1:6379/0",
        ):
            shown = mask_url(url)
            assert password not in shown and quote(password, safe="") not in shown, (url, shown)
        junk = "".join(rng.choice(alphabet + "/ ") for _ in range(rng.randint(0, 30)))
        mask_url(f"redis://{junk}")  # never raises
        mask_url(junk)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://[::1/app", "no closing ']'"),
        ("redis://:pw@127.0.0.1:abc", "port 'abc' is not a number"),
        ("mysql://u:p@[zz]:3306/db", "[zz] is not an IPv6 address"),
        ("redis://127.0.0.1:", "the port after ':' is empty"),
        ("redis://127.0.0.1:0", "port '0' is not a number"),
        ("postgresql://u:p@ho st/db", "'ho st' is not a host name"),
        ("gopher://127.0.0.1", "unknown scheme 'gopher'"),
    ],
)
def test_malformed_urls_are_one_line_user_errors(url: str, message: str) -> None:
    with pytest.raises(UserError) as err:
        check_targets(["./a/folder", url])
    text = str(err.value)
    assert message in text and "\n" not in text
    assert ":p@" not in text and ":pw@" not in text


def test_passwords_with_reserved_characters_reach_the_driver_whole() -> None:
    p = parse_url("postgresql://scanner:Scan@Pw#9911@host/app")
    assert (p.user, p.password, p.host, p.port, p.path) == ("scanner", "Scan@Pw#9911", "host", 5432, "/app")
    url = normalized_url("postgresql://scanner:Scan@Pw#9911@host/app")
    assert url == "postgresql://scanner:Scan%40Pw%239911@host/app"
    parts = urlsplit(url)  # what every adapter's parser sees
    assert (unquote(parts.password or ""), parts.hostname, parts.path) == ("Scan@Pw#9911", "host", "/app")
    assert normalized_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert with_password("mysql://root@[::1]:3307/db?x=1", "p@ss:w/rd") == "mysql://root:p%40ss%3Aw%2Frd@[::1]:3307/db?x=1"
    assert parse_url("mongodb://a:27017,B:27018/db").hosts == (("a", 27017), ("b", 27018))


@pytest.mark.parametrize(
    "spellings",
    [
        ["elasticsearch+https://127.0.0.1", "https://127.0.0.1:9200", "elasticsearch+http://elastic:pw@LOCALHOST:9200/",
         "es://[::1]", "opensearch+https://127.0.0.1:9200/?verify=false", "http://***@127.0.0.1:9200",
         "elasticsearch://127.0.0.1"],
        ["postgresql://app@db.internal/prod", "postgres://other:pw@DB.internal:5432/other?sslmode=require",
         "postgresql://***@db.internal"],
        ["redis://127.0.0.1", "rediss://:pw@localhost:6379/3", "redis://127.0.0.1:6379?password=x"],
        ["mongodb://a:27017,b/db", "mongodb://u:p@b:27017,a/other"],
        ["./demo-data", " ./demo-data"],
    ],
)  # fmt: skip
def test_store_key_joins_every_spelling_of_one_store(spellings: list[str]) -> None:
    assert len({store_key(s) for s in spellings}) == 1, {s: store_key(s) for s in spellings}


def test_store_key_format_and_what_keeps_stores_apart() -> None:
    assert store_key("elasticsearch+https://ES.internal") == "elasticsearch://es.internal:9200"
    assert store_key("mysql://u@[2001:DB8::1]/x") == "mysql://[2001:db8::1]:3306"
    assert store_key("sqlite:///var/app.db") == "sqlite:///var/app.db"
    different = ["https://127.0.0.1", "https://127.0.0.1:9200", "kibana://127.0.0.1:9200", "redis://127.0.0.1:9200",
                 "http://127.0.0.2:9200", "./a", "./b"]  # fmt: skip
    assert len({store_key(s) for s in different}) == len(different)
    assert store_key("redis://:pw@127.0.0.1:abc") == "redis://:pw@127.0.0.1:abc"  # never raises


def test_credentials_tag_tells_logins_apart_without_keeping_them() -> None:
    key = bytes(range(32))
    a, b = credentials_tag(key, "app", "pw-one"), credentials_tag(key, "app", "pw-two")
    assert a != b and a == credentials_tag(key, "app", "pw-one")
    assert credentials_tag(key, "ap", "ppw-one") != a  # the user/password boundary counts
    assert credentials_tag(bytes(32), "app", "pw-one") != a  # keyed: another install, another tag
    assert "pw-one" not in a and len(a) == 16


def test_password_variables_come_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    from spillguard.sources.store import StoreOptions, resolve_password

    for name in ("SPILLGUARD_PASSWORD", "PGPASSWORD", "OPENSEARCH_PASSWORD", "ES_PASSWORD", "ELASTIC_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    opts = StoreOptions()
    monkeypatch.setenv("PGPASSWORD", "from-env")
    assert resolve_password("postgresql://u@h/db", opts) == "from-env"
    assert resolve_password("postgresql://u:Scan@Pw#1@h/db", opts) == "Scan@Pw#1"  # the URL wins
    monkeypatch.setenv("OPENSEARCH_PASSWORD", "os-pw")
    assert resolve_password("opensearch+https://admin@h", opts) == "os-pw"
    assert resolve_password("elasticsearch+https://elastic@h", opts) is None
    assert SCHEMES["opensearch+https"].password_env == ("OPENSEARCH_PASSWORD", "ES_PASSWORD")


def test_s3_targets_key_by_endpoint_and_bucket(monkeypatch):
    from spillguard.s3 import with_endpoint

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    assert store_key("s3://lake/exports/?endpoint=http://LOCALHOST:9000") == "s3://127.0.0.1:9000/lake"
    assert store_key("s3://lake/other/prefix/?endpoint=http://127.0.0.1:9000/") == "s3://127.0.0.1:9000/lake"
    assert store_key("s3://lake?endpoint=http://127.0.0.1:9001") == "s3://127.0.0.1:9001/lake"  # another store
    assert store_key("s3://lake/x.jsonl") == "s3://s3.amazonaws.com:443/lake"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://minio.internal")
    assert store_key("s3://lake/x.jsonl") == "s3://minio.internal:443/lake"
    assert with_endpoint("s3://lake/x.jsonl", None) == "s3://lake/x.jsonl?endpoint=https://minio.internal"
    assert with_endpoint("s3://lake/x.jsonl?endpoint=http://h:1", "http://other:2") == "s3://lake/x.jsonl?endpoint=http://h:1"
    assert with_endpoint("postgresql://db/app", "http://other:2") == "postgresql://db/app"
    target = parse_target("s3://lake?endpoint=http://127.0.0.1:9000")
    assert (target.host, target.port, target.tls, target.protocol) == ("127.0.0.1", 9000, False, "s3")
    for bad in ("s3://AKIAEXAMPLEKEY:secret@lake/", "s3://x/", "s3://lake?endpoint=ftp://h", "s3://lake?endpoint=http://u:p@h:1"):
        with pytest.raises(UserError) as err:
            check_targets([bad])
        assert "secret" not in str(err.value) and "u:p" not in str(err.value)
