"""The throwaway servers of tests/servers.py start, answer as configured, and leave nothing behind."""

from __future__ import annotations

import os
import socket

import httpx
import pytest

from tests.servers import (
    free_port,
    mariadb_server,
    memcached_server,
    mosquitto_server,
    nginx_basic_auth_proxy,
    noida_server,
    postgres_server,
    redis_server,
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def _redis(port: int, command: bytes, password: str | None = None) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        if password:
            s.sendall(f"AUTH {password}\r\n".encode())
            assert s.recv(64) == b"+OK\r\n"
        s.sendall(command + b"\r\n")
        return s.recv(256)


def test_redis_with_and_without_password() -> None:
    with redis_server() as open_srv, redis_server(password="pw1") as locked:
        assert _redis(open_srv.port, b"PING") == b"+PONG\r\n"
        assert _redis(locked.port, b"PING").startswith(b"-NOAUTH")
        assert _redis(locked.port, b"PING", password="pw1") == b"+PONG\r\n"
        assert locked.admin_url == f"redis://:pw1@127.0.0.1:{locked.port}"
        pid, data_dir = locked.pid, locked.data_dir
    assert pid is not None and not _alive(pid)
    assert not os.path.exists(data_dir)


def test_postgres_trust_and_scram() -> None:
    import psycopg

    with postgres_server("trust") as trust:
        with psycopg.connect(host=trust.host, port=trust.port, user="postgres", dbname="postgres") as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        pid = trust.pid
    assert pid is not None and not _alive(pid)
    with postgres_server("scram", password="pw2") as scram:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(
                host=scram.host, port=scram.port, user="postgres", dbname="postgres", connect_timeout=3
            )
        with psycopg.connect(scram.admin_url) as conn:
            assert conn.execute("select current_user").fetchone() == ("postgres",)


def test_mariadb_empty_and_set_root_password() -> None:
    import pymysql

    with mariadb_server() as empty:
        pymysql.connect(host=empty.host, port=empty.port, user="root", password="").close()
    with mariadb_server(root_password="pw3") as locked:
        with pytest.raises(pymysql.err.OperationalError):
            pymysql.connect(host=locked.host, port=locked.port, user="root", password="")
        pymysql.connect(host=locked.host, port=locked.port, user="root", password="pw3").close()


def test_mosquitto_anonymous_flag() -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    def connect_rc(port: int, user: str | None = None, password: str | None = None) -> int:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        if user:
            client.username_pw_set(user, password)
        result: list[int] = []
        client.on_connect = lambda c, u, f, rc, p=None: result.append(
            rc.value if hasattr(rc, "value") else int(rc)
        )
        client.connect("127.0.0.1", port, keepalive=5)
        for _ in range(50):
            client.loop(timeout=0.1)
            if result:
                break
        client.disconnect()
        return result[0]

    with mosquitto_server(allow_anonymous=True) as anon, mosquitto_server(allow_anonymous=False) as closed:
        assert connect_rc(anon.port) == 0
        assert connect_rc(closed.port) != 0
        assert connect_rc(closed.port, closed.user, closed.password) == 0


def test_noida_and_nginx_basic_auth() -> None:
    with noida_server() as noida:
        r = httpx.get(f"http://127.0.0.1:{noida.elasticsearch.port}/")
        assert r.status_code == 200 and "version" in r.json()
        with nginx_basic_auth_proxy(noida.elasticsearch.port) as proxy:
            r = httpx.get(f"http://127.0.0.1:{proxy.port}/")
            assert r.status_code == 401
            assert 'realm="security"' in r.headers["www-authenticate"]
            r = httpx.get(f"http://127.0.0.1:{proxy.port}/", auth=(proxy.user, proxy.password))
            assert r.status_code == 200


def test_memcached_answers_stats() -> None:
    with memcached_server() as mc, socket.create_connection((mc.host, mc.port), timeout=3) as s:
        s.sendall(b"stats\r\n")
        assert s.recv(4096).startswith(b"STAT pid ")
