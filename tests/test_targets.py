"""Target URLs: protocol and port by scheme, passwords never shown."""

from __future__ import annotations

import pytest

from spillguard.audit.probes.base import mask_dataset_name
from spillguard.errors import UserError
from spillguard.targets import mask_url, parse_target


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
