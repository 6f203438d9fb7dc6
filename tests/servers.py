"""Throwaway real servers for tests, started from the installed binaries.

Every helper is a context manager that starts one server on a free port bound to 127.0.0.1 with a
temporary data directory, waits until it answers, yields a `Server`, and on exit (also when the
test fails) kills the whole process group and removes the directory. The machine's shared
instances on the default ports are never touched.

    free_port() -> int
    postgres_server(auth="trust" | "scram", password=None) -> Server
        superuser "postgres"; with auth="scram" the password defaults to "s3cret-pg"; initdb runs once per
        (auth, password) in a test process and every server starts on its own copy of that data directory
    mariadb_server(root_password=None) -> Server
        root with an empty password when root_password is None
    redis_server(password=None) -> Server
        `requirepass` when password is given; flip it at run time with CONFIG SET
    mosquitto_server(allow_anonymous=True, username="admin", password="s3cret-mq") -> Server
        the user/password pair is always in the broker's password file
    noida_server() -> NoidaServer
        noida-db with Elasticsearch and MongoDB; `.elasticsearch` and `.mongodb` are Servers,
        and host/port/url of the NoidaServer itself are those of Elasticsearch
    nginx_basic_auth_proxy(upstream_port, username="elastic", password="s3cret-es") -> Server
        nginx in front of an HTTP upstream, answering 401 + WWW-Authenticate without credentials
    memcached_server() -> Server
        memcached on the text protocol (no authentication)
    s3_server() -> Server
        an S3 API stand-in (moto's S3 backend with S3's access control, tests/s3_standin.py); `url` is the
        endpoint (http://127.0.0.1:PORT), `user`/`password` the access key id and secret of its one IAM user

`Server` fields: kind, host, port, url (spillguard target URL, no password), user (= `superuser`), password,
data_dir, and `admin_url` (= `dsn`: the URL with credentials, for posture checks and seeding data).
`Server.process` stops the server as a crash or an admin would (`kill(signal)`, waiting for it to exit), hangs
it (`send(SIGSTOP)`) and starts it again on the same port and data (`start()`), for tests of what a client
does while its server fails. `pg_ctl(server, *args)` runs pg_ctl on a PostgreSQL server (as its owner).
Skip rather than fail when a binary is missing: `require_binary(name)` raises pytest.skip.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest

HOST = "127.0.0.1"
START_TIMEOUT = 30.0


@dataclass
class Server:
    kind: str
    host: str
    port: int
    url: str
    user: str | None = None
    password: str | None = None
    data_dir: str = ""
    admin_url: str | None = None
    pid: int | None = None  # of the first start; `process.pid` after a restart
    log_path: str | None = None
    process: ServerProcess | None = None

    @property
    def dsn(self) -> str:
        """The URL with credentials (libpq accepts it as a DSN for PostgreSQL)."""
        return self.admin_url or self.url

    @property
    def superuser(self) -> str | None:
        return self.user


@dataclass
class NoidaServer:
    elasticsearch: Server
    mongodb: Server
    data_dir: str
    host: str = HOST
    port: int = 0
    url: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.port = self.elasticsearch.port
        self.url = self.elasticsearch.url


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def require_binary(name: str, *extra_dirs: str) -> str:
    path = shutil.which(name)
    if path is None:
        for d in extra_dirs:
            candidate = os.path.join(d, name)
            if os.access(candidate, os.X_OK):
                return candidate
        # On CI a missing server is a broken setup (scripts/bootstrap installs them), never a silent skip.
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; run scripts/bootstrap")
        pytest.skip(f"{name} is not installed")
    return path


def redis_command(port: int, *args: str, password: str | None = None) -> bytes:
    """One inline Redis command on a fresh connection (the tests flip settings with it); the raw reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        if password:
            s.sendall(f"AUTH {password}\r\n".encode())
            assert s.recv(64).startswith(b"+OK")
        s.sendall((" ".join(args) + "\r\n").encode())
        return s.recv(4096)


def _tail(path: str | None, lines: int = 20) -> str:
    if not path or not os.path.exists(path):
        return ""
    with open(path, errors="replace") as fh:
        return "".join(fh.readlines()[-lines:])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait(proc: subprocess.Popen[bytes], what: str, ready: Callable[[], bool], log: str | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{what} exited with code {proc.returncode} before it was ready:\n{_tail(log)}"
            )
        try:
            if ready():
                return
        except Exception:  # noqa: S110 - not ready yet, keep polling
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} was not ready after {START_TIMEOUT:.0f}s:\n{_tail(log)}")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    # Each server runs in its own session, so the group id is its pid: kill helpers too.
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    else:
        # The leader may be gone while children live on.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


class ServerProcess:
    """A server process started by `_process`: it can be killed (any signal, to its whole process group) and
    started again with the same command line, so the same port and data directory."""

    def __init__(
        self, argv: list[str], what: str, ready: Callable[[], bool], log: str, logfh: object, user: str | None, cwd: str | None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.argv, self.what, self.ready, self.log, self.logfh, self.user, self.cwd = argv, what, ready, log, logfh, user, cwd
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        """Start the server (again) and wait until it answers."""
        kwargs: dict[str, object] = {}
        if self.user is not None:
            kwargs["user"] = self.user
            kwargs["group"] = pwd.getpwnam(self.user).pw_gid
            kwargs["extra_groups"] = []
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self.logfh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.cwd,
            env=self.env,
            **kwargs,  # type: ignore[call-overload]
        )
        _wait(self.proc, self.what, self.ready, self.log)

    def send(self, sig: int) -> None:
        """Send `sig` to the server's process group (SIGSTOP: the server hangs, its port still accepts)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 30.0) -> None:
        """Send `sig` to the server's process group and wait until the server has exited."""
        assert self.proc is not None
        self.send(sig)
        self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None:
            self.send(signal.SIGCONT)  # a stopped server would not act on SIGTERM
            _kill(self.proc)


@contextlib.contextmanager
def _process(
    argv: list[str],
    what: str,
    ready: Callable[[], bool],
    log: str,
    user: str | None = None,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[ServerProcess]:
    logfh = open(log, "ab")  # noqa: SIM115 - closed below, after the process is gone
    server = ServerProcess(argv, what, ready, log, logfh, user, cwd, env)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        logfh.close()


def _userinfo(user: str, password: str | None) -> str:
    """`user[:password]` as it stands before the `@` of a URL."""
    return user if password is None else f"{user}:{quote(password, safe='')}"


def _running(
    proc: ServerProcess, log: str, kind: str, port: int, data_dir: str, *, url: str, admin_url: str,
    user: str | None = None, password: str | None = None,
) -> Server:
    """The `Server` of a process started by `_process`, listening on HOST:port."""
    return Server(
        kind=kind, host=HOST, port=port, url=url, user=user, password=password, data_dir=data_dir,
        admin_url=admin_url, pid=proc.pid, log_path=log, process=proc,
    )


@contextlib.contextmanager
def _tempdir(prefix: str, owner: str | None = None) -> Iterator[str]:
    d = tempfile.mkdtemp(prefix=f"sg-{prefix}-")
    try:
        if owner is not None:
            pw = pwd.getpwnam(owner)
            os.chown(d, pw.pw_uid, pw.pw_gid)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --- PostgreSQL ---------------------------------------------------------------------------------


def _pg_bindir() -> str:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if dirs:
        return dirs[-1]
    initdb = shutil.which("initdb")
    if initdb is None:
        pytest.skip("PostgreSQL server binaries are not installed")
    return os.path.dirname(initdb)


def pg_ctl(server: Server, *args: str) -> None:
    """Run pg_ctl on a server of `postgres_server` as the user owning its data, e.g. `pg_ctl(s, "stop", "-m", "immediate")`."""
    kwargs: dict[str, object] = {}
    if os.geteuid() == 0:
        kwargs = {"user": "postgres", "group": pwd.getpwnam("postgres").pw_gid, "extra_groups": []}
    res = subprocess.run([f"{_pg_bindir()}/pg_ctl", "-D", server.data_dir, *args], capture_output=True, text=True, timeout=60, **kwargs)  # type: ignore[call-overload]
    if res.returncode != 0:
        raise RuntimeError(f"pg_ctl {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")


# (auth, password) -> a data directory fresh from initdb, made once per test process: initdb is most of a
# server's start, and every server starts on its own copy of it.
_PG_TEMPLATES: dict[tuple[str, str | None], str] = {}


def _as_user(user: str | None) -> dict[str, object]:
    """subprocess keyword arguments that run a command as `user` (None: as ourselves)."""
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def _pg_template(bindir: str, auth: str, password: str | None, run_as: str | None) -> str:
    key = (auth, password)
    if key in _PG_TEMPLATES:
        return _PG_TEMPLATES[key]
    d = tempfile.mkdtemp(prefix="sg-pg-template-")
    atexit.register(shutil.rmtree, d, True)
    if run_as is not None:
        pw = pwd.getpwnam(run_as)
        os.chown(d, pw.pw_uid, pw.pw_gid)
    data = os.path.join(d, "data")
    argv = [f"{bindir}/initdb", "-D", data, "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"]
    if auth == "trust":
        argv += ["--auth=trust"]
    else:
        pwfile = os.path.join(d, "pw")
        Path(pwfile).write_text(password or "")
        if run_as:
            pw = pwd.getpwnam(run_as)
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        argv += ["--auth-local=scram-sha-256", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120, **_as_user(run_as))  # type: ignore[call-overload]
    if res.returncode != 0:
        raise RuntimeError(f"initdb failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    _PG_TEMPLATES[key] = data
    return data


@contextlib.contextmanager
def postgres_server(auth: str = "trust", password: str | None = None) -> Iterator[Server]:
    if auth not in ("trust", "scram"):
        raise ValueError("auth must be 'trust' or 'scram'")
    bindir = _pg_bindir()
    # initdb refuses to run as root: the cluster belongs to the postgres user when we are root.
    run_as = "postgres" if os.geteuid() == 0 else None
    if auth == "scram" and password is None:
        password = "s3cret-pg"
    template = _pg_template(bindir, auth, password, run_as)
    with _tempdir("pg", owner=run_as) as d:
        data = os.path.join(d, "data")
        log = os.path.join(d, "server.log")
        res = subprocess.run(["cp", "-a", template, data], capture_output=True, text=True, timeout=120, **_as_user(run_as))  # type: ignore[call-overload]
        if res.returncode != 0:
            raise RuntimeError(f"copying the initdb template failed ({res.returncode}):\n{res.stderr}")
        port = free_port()
        server_argv = [
            f"{bindir}/postgres", "-D", data, "-p", str(port),
            "-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={d}",
            "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=30",
        ]  # fmt: skip
        with _process(server_argv, "postgres", lambda: _pg_ready(port, password), log, user=run_as) as proc:
            yield _running(
                proc, log, "postgresql", port, data,
                url=f"postgresql://postgres@{HOST}:{port}/postgres",
                admin_url=f"postgresql://{_userinfo('postgres', password)}@{HOST}:{port}/postgres",
                user="postgres", password=password,
            )


def _pg_ready(port: int, password: str | None) -> bool:
    # An open port is not enough: until recovery ends the server answers "the database system is starting up".
    import psycopg

    psycopg.connect(host=HOST, port=port, user="postgres", password=password or "", dbname="postgres",
                    connect_timeout=2).close()  # fmt: skip
    return True


# --- MariaDB ------------------------------------------------------------------------------------


def _mysql_ready(port: int, password: str | None) -> bool:
    import pymysql

    try:
        conn = pymysql.connect(host=HOST, port=port, user="root", password=password or "", connect_timeout=1)
    except pymysql.err.OperationalError as exc:
        return exc.args[0] == 1045  # access denied: up, with the root password set since (a restart)
    conn.close()
    return True


@contextlib.contextmanager
def mariadb_server(root_password: str | None = None) -> Iterator[Server]:
    install = require_binary("mariadb-install-db")
    mariadbd = require_binary("mariadbd", "/usr/sbin")
    with _tempdir("maria") as d:
        data = os.path.join(d, "data")
        log = os.path.join(d, "server.log")
        res = subprocess.run(
            [install, "--no-defaults", f"--datadir={data}", "--user=root", "--auth-root-authentication-method=normal",
             "--skip-test-db", "--skip-name-resolve"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if res.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        port = free_port()
        argv = [
            mariadbd, "--no-defaults", f"--datadir={data}", f"--socket={d}/mysqld.sock", f"--port={port}",
            f"--bind-address={HOST}", "--user=root", f"--pid-file={d}/mysqld.pid", f"--log-error={log}",
            "--skip-name-resolve", "--innodb-buffer-pool-size=16M", "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0",
        ]  # fmt: skip
        with _process(argv, "mariadbd", lambda: _mysql_ready(port, None), log) as proc:
            if root_password is not None:
                import pymysql

                conn = pymysql.connect(host=HOST, port=port, user="root", password="", autocommit=True)
                with conn.cursor() as cur:
                    cur.execute("SELECT User, Host FROM mysql.user WHERE User = 'root'")
                    for user, host in cur.fetchall():
                        if host in ("localhost", "127.0.0.1", "::1"):
                            cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (user, host, root_password))
                        else:
                            # root@<hostname> cannot be altered under skip-name-resolve and is unreachable anyway.
                            cur.execute(
                                "DELETE FROM mysql.global_priv WHERE User = %s AND Host = %s", (user, host)
                            )
                    cur.execute("FLUSH PRIVILEGES")
                conn.close()
            yield _running(
                proc, log, "mysql", port, data,
                url=f"mysql://root@{HOST}:{port}/",
                admin_url=f"mysql://{_userinfo('root', root_password)}@{HOST}:{port}/",
                user="root", password=root_password,
            )


# --- Redis --------------------------------------------------------------------------------------


def _redis_ready(port: int) -> bool:
    with socket.create_connection((HOST, port), timeout=1) as s:
        s.sendall(b"PING\r\n")
        reply = s.recv(128)
    # PONG when open, NOAUTH when a password is set: both mean the server is up.
    return reply.startswith((b"+PONG", b"-NOAUTH"))


@contextlib.contextmanager
def redis_server(password: str | None = None) -> Iterator[Server]:
    binary = require_binary("redis-server")
    with _tempdir("redis") as d:
        port = free_port()
        log = os.path.join(d, "server.log")
        argv = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", d,
                "--daemonize", "no", "--logfile", log]  # fmt: skip
        if password is not None:
            argv += ["--requirepass", password]
        with _process(argv, "redis-server", lambda: _redis_ready(port), log) as proc:
            admin = (
                f"redis://:{quote(password, safe='')}@{HOST}:{port}" if password else f"redis://{HOST}:{port}"
            )
            yield _running(
                proc, log, "redis", port, d,
                url=f"redis://{HOST}:{port}",
                admin_url=admin,
                password=password,
            )


# --- Mosquitto ----------------------------------------------------------------------------------


def _mqtt_ready(port: int) -> bool:
    # A minimal MQTT 3.1.1 CONNECT; any CONNACK (accepted or refused) means the broker is up.
    payload = b"\x00\x04MQTT\x04\x02\x00\x05" + b"\x00\x05ready"
    with socket.create_connection((HOST, port), timeout=1) as s:
        s.sendall(bytes([0x10, len(payload)]) + payload)
        reply = s.recv(4)
    return reply[:1] == b"\x20"


@contextlib.contextmanager
def mosquitto_server(
    allow_anonymous: bool = True, username: str = "admin", password: str = "s3cret-mq"
) -> Iterator[Server]:
    binary = require_binary("mosquitto", "/usr/sbin")
    passwd = require_binary("mosquitto_passwd")
    with _tempdir("mqtt") as d:
        port = free_port()
        log = os.path.join(d, "server.log")
        pwfile = os.path.join(d, "passwd")
        res = subprocess.run(
            [passwd, "-c", "-b", pwfile, username, password], capture_output=True, text=True, timeout=30
        )
        if res.returncode != 0:
            raise RuntimeError(f"mosquitto_passwd failed: {res.stderr}")
        os.chmod(pwfile, 0o600)
        conf = os.path.join(d, "mosquitto.conf")
        Path(conf).write_text(
            ""
            # Mosquitto drops to the "mosquitto" user when started as root, which could not read our files.
            + ("user root\n" if os.geteuid() == 0 else "")
            + f"listener {port} {HOST}\n"
            f"allow_anonymous {'true' if allow_anonymous else 'false'}\n"
            f"password_file {pwfile}\n"
            "persistence false\n"
            "log_dest stderr\n"
        )
        with _process([binary, "-c", conf], "mosquitto", lambda: _mqtt_ready(port), log) as proc:
            yield _running(
                proc, log, "mqtt", port, d,
                url=f"mqtt://{HOST}:{port}",
                admin_url=f"mqtt://{_userinfo(username, password)}@{HOST}:{port}",
                user=username, password=password,
            )


# --- noida-db (Elasticsearch and MongoDB stand-in) -----------------------------------------------


def _http_ok(port: int, path: str = "/") -> bool:
    import httpx

    return httpx.get(f"http://{HOST}:{port}{path}", timeout=1).status_code < 500


@contextlib.contextmanager
def noida_server() -> Iterator[NoidaServer]:
    binary = shutil.which("noida-db") or os.path.join(os.path.dirname(sys.executable), "noida-db")
    if not os.access(binary, os.X_OK):
        pytest.skip("noida-db is not installed (pip install noida-db==0.2.3)")
    with _tempdir("noida") as d:
        es_port, mongo_port = free_port(), free_port()
        while mongo_port == es_port:
            mongo_port = free_port()
        log = os.path.join(d, "server.log")
        argv = [binary, "start", "--data-dir", os.path.join(d, "data"), "--only", "elasticsearch,mongodb",
                "--elasticsearch-port", str(es_port), "--mongodb-port", str(mongo_port)]  # fmt: skip

        def ready() -> bool:
            return _http_ok(es_port) and _port_open(mongo_port)

        with _process(argv, "noida-db", ready, log, cwd=d) as proc:
            es = _running(
                proc, log, "elasticsearch", es_port, d,
                url=f"elasticsearch+http://{HOST}:{es_port}",
                admin_url=f"http://{HOST}:{es_port}",
            )
            mongo = _running(
                proc, log, "mongodb", mongo_port, d,
                url=f"mongodb://{HOST}:{mongo_port}/?directConnection=true",
                admin_url=f"mongodb://{HOST}:{mongo_port}/?directConnection=true",
            )
            yield NoidaServer(elasticsearch=es, mongodb=mongo, data_dir=d)


# --- nginx with basic auth in front of an HTTP upstream -----------------------------------------


@contextlib.contextmanager
def nginx_basic_auth_proxy(
    upstream_port: int, username: str = "elastic", password: str = "s3cret-es", realm: str = "security"
) -> Iterator[Server]:
    binary = require_binary("nginx", "/usr/sbin")
    with _tempdir("nginx") as d:
        port = free_port()
        log = os.path.join(d, "error.log")
        # nginx reads {PLAIN} entries in auth_basic_user_file, which spares us an htpasswd tool.
        Path(d, "htpasswd").write_text(f"{username}:{{PLAIN}}{password}\n")
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        user_line = "user root;\n" if os.geteuid() == 0 else ""
        Path(d, "nginx.conf").write_text(
            f"{user_line}worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {log} warn;\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            f"  access_log off; client_body_temp_path {d}/client_body; proxy_temp_path {d}/proxy;\n"
            f"  fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n"
            f"  server {{\n    listen {HOST}:{port};\n"
            f'    auth_basic "{realm}";\n    auth_basic_user_file {d}/htpasswd;\n'
            f'    location / {{ proxy_pass http://{HOST}:{upstream_port}; proxy_set_header Authorization ""; }}\n'
            "  }\n}\n"
        )
        argv = [binary, "-p", d, "-c", os.path.join(d, "nginx.conf"), "-e", log]
        with _process(argv, "nginx", lambda: _http_ok(port), log) as proc:
            yield _running(
                proc, log, "elasticsearch", port, d,
                url=f"elasticsearch+http://{HOST}:{port}",
                admin_url=f"http://{_userinfo(username, password)}@{HOST}:{port}",
                user=username, password=password,
            )


# --- memcached ----------------------------------------------------------------------------------


def _memcached_ready(port: int) -> bool:
    with socket.create_connection((HOST, port), timeout=1) as s:
        s.sendall(b"version\r\n")
        return s.recv(64).startswith(b"VERSION")


@contextlib.contextmanager
def memcached_server() -> Iterator[Server]:
    binary = require_binary("memcached")
    with _tempdir("memcached") as d:
        port = free_port()
        log = os.path.join(d, "server.log")
        argv = [binary, "-l", HOST, "-p", str(port), "-U", "0", "-m", "16", "-c", "64"]
        if os.geteuid() == 0:
            argv += ["-u", "root"]  # memcached refuses to run as root unless told so
        with _process(argv, "memcached", lambda: _memcached_ready(port), log) as proc:
            yield _running(
                proc, log, "memcached", port, d,
                url=f"memcached://{HOST}:{port}",
                admin_url=f"memcached://{HOST}:{port}",
            )


# --- S3 (moto's S3 backend behind the access control of tests/s3_standin.py) ---------------------


@contextlib.contextmanager
def s3_server() -> Iterator[Server]:
    try:
        import moto  # noqa: F401
    except ModuleNotFoundError:
        if os.environ.get("CI"):
            pytest.fail("moto[server] is not installed; run scripts/bootstrap")
        pytest.skip("moto[server] is not installed (pip install -e '.[test]')")
    with _tempdir("s3") as d:
        port = free_port()
        log = os.path.join(d, "server.log")
        argv = [sys.executable, "-m", "tests.s3_standin", str(port)]
        root = str(Path(__file__).resolve().parent.parent)

        def keys() -> dict[str, str] | None:  # the one JSON line the stand-in prints when it listens
            import json

            line = next((x for x in Path(log).read_text().splitlines() if x.startswith('{"port"')), None)
            return json.loads(line) if line else None

        def ready() -> bool:
            return keys() is not None and _port_open(port)

        with _process(argv, "S3 stand-in", ready, log, cwd=root, env={**os.environ, "PYTHONPATH": root}) as proc:
            found = keys()
            assert found is not None
            yield _running(
                proc, log, "s3", port, d, url=f"http://{HOST}:{port}", admin_url=f"http://{HOST}:{port}",
                user=found["access_key_id"], password=found["secret_access_key"],
            )
