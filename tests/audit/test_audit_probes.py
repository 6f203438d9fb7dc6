"""Each probe against a real server started by the test, open and protected, on 127.0.0.1 only."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from spillguard.audit import Verdict, audit
from spillguard.audit.core import probe_target
from spillguard.audit.probes import ProbeContext
from spillguard.targets import parse_target
from tests.servers import (
    free_port,
    mariadb_server,
    memcached_server,
    mosquitto_server,
    nginx_basic_auth_proxy,
    noida_server,
    postgres_server,
    redis_command,
    redis_server,
)


def _one(url: str, admin: str | None = None, **ctx: object) -> dict:
    target = parse_target(url)
    if admin:
        target.admin = parse_target(admin)
    v = probe_target(target, ProbeContext(timeout=5, **ctx))  # type: ignore[arg-type]
    doc = v.to_json()
    # Evidence must never carry a password, whatever the probe found.
    for secret in ("pw-redis", "s3cret-pg", "pw-maria", "s3cret-mq", "s3cret-es"):
        assert secret not in json.dumps(doc)
    return doc


def test_redis_open_protected_and_flipped_at_run_time() -> None:
    with redis_server() as open_srv, redis_server(password="pw-redis") as locked:
        for i in range(25):
            redis_command(open_srv.port, "SET", f"user:{i}", "x")
        doc = _one(open_srv.url, admin=open_srv.admin_url)
        assert doc["verdict"] == "open-read"
        assert doc["server_version"] and doc["server_version"][0].isdigit()
        assert doc["evidence"]["datasets"] == [{"name": "db0", "records": 25}]
        assert doc["evidence"]["posture"]["requirepass_set"] is False
        assert doc["tls"] is False and doc["evidence"]["plaintext"] is True

        doc = _one(locked.url, admin=locked.admin_url)
        assert doc["verdict"] == "protected"
        assert doc["evidence"]["info_reply"] == "NOAUTH"
        assert doc["evidence"]["posture"]["requirepass_set"] is True
        assert doc["server_version"] is None  # nothing leaks before authentication

        # Someone removes the password on the running server: the next audit must see it.
        assert redis_command(locked.port, "CONFIG", "SET", "requirepass", '""', password="pw-redis").startswith(
            b"+OK"
        )
        assert _one(locked.url)["verdict"] == "open-read"
        redis_command(locked.port, "CONFIG", "SET", "requirepass", "pw-again")
        assert _one(locked.url)["verdict"] == "protected"


def test_postgres_trust_is_weak_and_scram_is_protected(monkeypatch: pytest.MonkeyPatch) -> None:
    with postgres_server("trust") as trust:
        import psycopg

        with psycopg.connect(trust.admin_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE customers (id int, email text)")
            conn.execute(
                "INSERT INTO customers SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 40) g"
            )
            conn.execute("ANALYZE customers")
        doc = _one(trust.url, admin=trust.admin_url)
        assert doc["verdict"] == "weak-credentials"
        assert "trust" in doc["evidence"]["reason"]
        assert doc["evidence"]["superuser"] is True
        assert {"name": "public.customers", "records": 40} in doc["evidence"]["datasets"]
        assert doc["evidence"]["posture"]["hba_trust"] is True
        assert "@example.com" not in json.dumps(doc)
    # The auditing user's own saved password must not make a protected server look weak.
    monkeypatch.setenv("PGPASSWORD", "s3cret-pg")
    with postgres_server("scram", password="s3cret-pg") as scram:
        doc = _one(scram.url, admin=scram.admin_url)
        assert doc["verdict"] == "protected"
        assert [a["result"] for a in doc["evidence"]["attempts"]] == ["refused", "refused"]
        assert doc["evidence"]["posture"]["hba_trust"] is False
        assert doc["server_version"]  # from the admin connection


def test_mariadb_empty_root_is_weak_and_a_password_protects() -> None:
    with mariadb_server() as empty:
        import pymysql

        conn = pymysql.connect(host=empty.host, port=empty.port, user="root", password="", autocommit=True)
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE shop")
            cur.execute("CREATE TABLE shop.users (id INT PRIMARY KEY, email TEXT) ENGINE=InnoDB")
            cur.execute("INSERT INTO shop.users VALUES (1, 'a@example.com'), (2, 'b@example.com')")
            cur.execute("ANALYZE TABLE shop.users")
        conn.close()
        doc = _one(empty.url, admin=empty.admin_url)
        assert doc["verdict"] == "weak-credentials"
        assert doc["evidence"]["credential"] == "root with an empty password"
        assert [d["name"] for d in doc["evidence"]["datasets"]] == ["shop.users"]
        assert "'root'@'localhost'" in doc["evidence"]["posture"]["accounts_with_empty_password"]
        assert "MariaDB" in doc["server_version"]
    with mariadb_server(root_password="pw-maria") as locked:
        doc = _one(locked.url, admin=locked.admin_url)
        assert doc["verdict"] == "protected"
        assert all(a["result"] == "refused" for a in doc["evidence"]["attempts"])
        assert not any("root" in a for a in doc["evidence"]["posture"]["accounts_with_empty_password"])


def test_mosquitto_anonymous_true_and_false() -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    with mosquitto_server(allow_anonymous=True) as anon, mosquitto_server(allow_anonymous=False) as closed:
        # A retained message per device: the anonymous subscription to '#' must count them, not show them.
        pub = mqtt.Client(CallbackAPIVersion.VERSION2)
        pub.connect("127.0.0.1", anon.port)
        pub.loop_start()
        for i in range(3):
            pub.publish(f"home/cam-{i}/wifi", "ssid=MyHomeNet", qos=1, retain=True).wait_for_publish(3)
        pub.loop_stop()
        pub.disconnect()
        doc = _one(anon.url, admin=anon.admin_url, mqtt_listen=0.5)
        assert doc["verdict"] == "open-read"
        assert doc["evidence"]["messages_seen"] == 3 and doc["evidence"]["distinct_topics"] == 3
        assert "MyHomeNet" not in json.dumps(doc) and "cam-" not in json.dumps(doc)
        assert doc["server_version"].startswith("mosquitto")
        assert doc["evidence"]["posture"]["allow_anonymous"] is True

        doc = _one(closed.url, admin=closed.admin_url)
        assert doc["verdict"] == "protected"
        assert doc["evidence"]["anonymous_connect"] is False
        assert doc["evidence"]["posture"] == {
            "allow_anonymous": False, "allow_anonymous_source": "observed", "admin_connect": True,
        }  # fmt: skip


def test_elasticsearch_open_through_noida_and_protected_behind_nginx() -> None:
    with noida_server() as noida, nginx_basic_auth_proxy(noida.elasticsearch.port) as proxy:
        base = f"http://127.0.0.1:{noida.elasticsearch.port}"
        for i in range(7):
            r = httpx.put(f"{base}/users-jane.doe@example.com/_doc/{i}", json={"email": f"u{i}@example.com"})
            assert r.status_code in (200, 201)
        httpx.post(f"{base}/_refresh")
        doc = _one(noida.url, admin=f"elasticsearch+http://127.0.0.1:{noida.elasticsearch.port}")
        assert doc["verdict"] == "open-read"
        ev = doc["evidence"]
        assert ev["search_status"] == 200 and ev["search_total_hits"] == 7
        assert ev["datasets"] == [{"name": "users-j***@example.com", "records": 7}]
        assert "jane.doe" not in json.dumps(doc) and "u1@example.com" not in json.dumps(doc)
        assert doc["server_version"] == "8.15.3"
        # noida has no _xpack API: the posture says so rather than guessing.
        assert ev["posture"]["xpack_api"].startswith("unavailable")

        doc = _one(proxy.url)
        assert doc["verdict"] == "protected"
        assert doc["evidence"]["banner_status"] == 401
        assert doc["evidence"]["auth_realm"] == "security"
        assert [a["status"] for a in doc["evidence"]["attempts"]] == [401, 401]


def test_elasticsearch_default_password_is_weak_credentials() -> None:
    with (
        noida_server() as noida,
        nginx_basic_auth_proxy(noida.elasticsearch.port, "elastic", "changeme") as proxy,
    ):
        doc = _one(proxy.url)
        assert doc["verdict"] == "weak-credentials"
        assert doc["evidence"]["credential"] == "elastic with its default password"
        assert "changeme" not in json.dumps(doc)


def test_mongodb_through_noida_is_open() -> None:
    with noida_server() as noida:
        doc = _one(noida.mongodb.url)
        assert doc["verdict"] == "open-read"
        assert doc["server_version"]
        assert doc["evidence"]["find_attempts"][-1]["result"] == "answered"


def test_closed_port_is_unreachable_and_fast() -> None:
    port = free_port()
    started = time.monotonic()
    result = audit([f"redis://127.0.0.1:{port}", f"postgresql://postgres@127.0.0.1:{port}/postgres",
                    f"mysql://root@127.0.0.1:{port}/", f"mqtt://127.0.0.1:{port}",
                    f"elasticsearch+http://127.0.0.1:{port}"], timeout=2)  # fmt: skip
    assert time.monotonic() - started < 5
    assert {t.verdict for t in result.targets} == {Verdict.UNREACHABLE}
    assert all("refused" in t.evidence["reason"].lower() for t in result.targets)
    assert result.exit_code == 2


def test_audit_of_mixed_targets_ranks_worst_first_and_masks_passwords() -> None:
    with redis_server() as open_srv, redis_server(password="pw-redis") as locked:
        result = audit([f"redis://:pw-redis@127.0.0.1:{locked.port}", open_srv.url], timeout=3)
        doc = result.to_json()
        assert [t["verdict"] for t in doc["targets"]] == ["open-read", "protected"]
        assert doc["targets"][1]["target"] == f"redis://:***@127.0.0.1:{locked.port}"
        assert "pw-redis" not in json.dumps(doc)
        assert result.exit_code == 1
        assert doc["version"] == 1 and doc["checked_at"].endswith("Z")


def test_memcached_is_open_read_with_item_count() -> None:
    with memcached_server() as mc:
        with socket.create_connection((mc.host, mc.port), timeout=3) as s:
            for i in range(5):
                s.sendall(f"set session:{i} 0 0 5\r\nhello\r\n".encode())
                assert s.recv(64) == b"STORED\r\n"
        doc = _one(mc.url)
        assert doc["verdict"] == "open-read"
        assert doc["evidence"]["records_total"] == 5
        assert doc["server_version"] and doc["server_version"][0].isdigit()


class _KibanaStandIn:
    """Kibana's status API and console proxy, forwarding to a real Elasticsearch API (noida-db).

    No Kibana binary is installable here; this follows Kibana's documented proxy contract
    (POST /api/console/proxy?path=&method=, kbn-xsrf required) so the probe's requests are checked for real.
    """

    def __init__(self, upstream_port: int, locked: bool = False) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        stand_in = self
        self.proxied: list[tuple[str, str]] = []

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in {
                    "Content-Type": "application/json",
                    "kbn-name": "kibana",
                    **(headers or {}),
                }.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                if locked:
                    self._reply(401, b'{"statusCode":401}', {"WWW-Authenticate": 'Basic realm="kibana"'})
                elif self.path == "/api/status":
                    self._reply(200, json.dumps({"name": "kb", "version": {"number": "8.15.3", "build_hash": "x"},
                                                 "status": {"overall": {"level": "available"}}}).encode())  # fmt: skip
                else:
                    self._reply(404, b"{}")

            def do_POST(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if locked:
                    self._reply(401, b"{}")
                    return
                if url.path != "/api/console/proxy" or "kbn-xsrf" not in self.headers:
                    self._reply(400, b'{"message":"Request must contain a kbn-xsrf header."}')
                    return
                q = parse_qs(url.query)
                path, method = q["path"][0], q["method"][0]
                stand_in.proxied.append((method, path))
                r = httpx.request(method, f"http://127.0.0.1:{upstream_port}{path}", content=body or None,
                                  headers={"Content-Type": "application/json"})  # fmt: skip
                self._reply(r.status_code, r.content)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        import threading

        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_open_kibana_is_an_open_cluster_through_the_console_proxy() -> None:
    with noida_server() as noida:
        httpx.put(
            f"http://127.0.0.1:{noida.elasticsearch.port}/devices/_doc/1?refresh=true", json={"ssid": "x"}
        )
        kibana = _KibanaStandIn(noida.elasticsearch.port)
        locked = _KibanaStandIn(noida.elasticsearch.port, locked=True)
        try:
            doc = _one(f"kibana://127.0.0.1:{kibana.port}")
            assert doc["verdict"] == "open-read"
            assert doc["evidence"]["via"] == "console proxy"
            assert doc["evidence"]["search_total_hits"] == 1
            assert doc["evidence"]["elasticsearch_version"] == "8.15.3"
            assert [m for m, _ in kibana.proxied] == ["GET", "GET", "POST"]
            doc = _one(f"kibana://127.0.0.1:{locked.port}")
            assert doc["verdict"] == "protected" and doc["evidence"]["auth_realm"] == "kibana"
        finally:
            kibana.close()
            locked.close()


def test_couchdb_closed_port_is_unreachable() -> None:
    # No CouchDB package on Debian 12: only the plumbing of this probe is exercised here.
    doc = _one(f"couchdb://127.0.0.1:{free_port()}")
    assert doc["verdict"] == "unreachable"


def test_redis_protected_mode_denies_a_non_loopback_client() -> None:
    # Redis accepts only 127.0.0.1 and ::1 in protected mode; a client from 127.0.0.2 is an "outsider".
    with redis_server() as srv:
        result = audit([srv.url], source_address="127.0.0.2", timeout=3)
        v = result.targets[0]
        assert v.verdict is Verdict.PROTECTED
        assert v.evidence["info_reply"] == "DENIED" and v.evidence["protected_mode"] is True
        assert audit([srv.url], timeout=3).targets[0].verdict is Verdict.OPEN_READ
