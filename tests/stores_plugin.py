"""Pytest plugin: one module-scoped fixture per store kind that starts a throwaway server
(tests/servers.py), loads the module's `generated` dataset into it (the loaders in tests/storedata.py)
and yields the server. A test module defines its own `generated` (storedata.generated_dataset_fixture)
so each module keeps its own seed and data.

    pg     PostgreSQL   tables in the server's default database
    maria  MariaDB      database `iot`
    rds    Redis        keys of every type in db 0
    es     Elasticsearch (noida-db) one index per dataset, plus `.internal-secrets` and alias `customers`
    mongo  MongoDB (wire stand-in) database `iot`, plus `fleet` (storedata.fleet_documents and a view)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spillguard.model import ScanResult
from tests import storedata
from tests.servers import mariadb_server, noida_server, postgres_server, redis_server

Generated = tuple[Path, Any, ScanResult]


@pytest.fixture(scope="module")
def pg(generated: Generated) -> Iterator[Any]:
    pytest.importorskip("psycopg")
    with postgres_server() as server:
        storedata.load_postgres(server.admin_url, storedata.dataset_records(generated[0]))
        yield server


@pytest.fixture(scope="module")
def maria(generated: Generated) -> Iterator[Any]:
    pytest.importorskip("pymysql")
    with mariadb_server() as server:
        storedata.load_mysql(server, storedata.dataset_records(generated[0]))
        yield server


@pytest.fixture(scope="module")
def rds(generated: Generated) -> Iterator[Any]:
    pytest.importorskip("redis")
    with redis_server() as server:
        storedata.load_redis(server.admin_url, storedata.dataset_records(generated[0]))
        yield server


@pytest.fixture(scope="module")
def es(generated: Generated) -> Iterator[Any]:
    with noida_server() as server:
        storedata.load_search(server.elasticsearch.admin_url, storedata.dataset_records(generated[0]))
        yield server.elasticsearch


@pytest.fixture(scope="module")
def mongo(generated: Generated) -> Iterator[Any]:
    pytest.importorskip("pymongo")
    mongo_wire = pytest.importorskip("tests.mongo_wire", reason="the MongoDB stand-in needs mockupdb and mongomock (pip install -e .[test])")
    with mongo_wire.mongo_wire_server() as server:
        storedata.load_mongodb(server.url, storedata.dataset_records(generated[0]))
        yield server
