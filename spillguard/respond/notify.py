"""Tell each affected person about the breach exactly once (GDPR Art. 34), over SMTP or an HTTP e-mail API.

The notices are the report's Art. 34 drafts (one per risk group, `Report.art34`), rendered through Jinja2
templates: `<group>.txt.j2` or `default.txt.j2` from a templates folder, else the built-in one. A person
in several risk groups gets one message, from the template of their most serious group, covering every
group of theirs. A template must carry the four Art. 34(2) items as non-empty blocks — `nature`,
`contact`, `consequences`, `measures` — and a notice must have no placeholder left from the draft;
otherwise nothing is sent and the run stops with one line (UserError, exit 2).

The ledger (SQLite, owner-only) holds one row per (incident, keyed hash of the recipient, template):
never the address, only a mask of it. For every message the notifier commits `pending` BEFORE the
send and the outcome (`sent`, `rejected`, `failed`, `in_doubt`) AFTER it. What that guarantees:

* Nobody gets a second message for the same incident and template: a `sent`/`rejected`/`bounced` row is
  never sent again, in this run or any rerun, whatever crashed in between.
* Everybody else is mailed by a rerun: a row that is missing or `failed` (the server said no for now,
  or the connection broke before the end of the message was sent) is sent again.
* The one window nothing local can close is between the server accepting a message and the ledger
  recording it: a kill -9 there, or a connection lost while waiting for the server's answer to the end
  of the message, leaves the row `pending`/`in_doubt` — the server may or may not have it. Such rows are
  never re-sent blindly over SMTP (no one is mailed twice); the run lists them with their Message-ID,
  which is deterministic, so the mail server's log settles them: `resolve_in_doubt()` with a checker
  (or `Ledger.resolve`) marks them sent or sendable, and with `in_doubt="resend"` the operator can choose
  at-least-once instead. Per SMTP connection at most one message is in doubt at a time.
  Over the HTTP API the same `Idempotency-Key` is sent again, so the provider drops a duplicate; that is
  safe only while the provider keeps keys (15 minutes to 24 hours): older in-doubt rows are held too.
* One run sends with a ledger at a time (an exclusive lock beside it); a second stops with one line.
* The ledger commits in WAL mode: a committed row survives the process being killed; with `durable=True`
  (synchronous=FULL) it also survives a power cut, at the price of an fsync per commit.

Addresses appear only in the SMTP envelope and headers (or the API request); logs, results, the ledger
and the journal carry masks (`a***@e***.com`) and keyed hashes.
"""

from __future__ import annotations

import contextlib
import csv
import email.policy
import hashlib
import json
import os
import re
import secrets
import smtplib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import httpx
import jinja2
from jinja2 import nodes

from spillguard.categories import RISK_GROUPS
from spillguard.config import SinkConfig
from spillguard.detect.masking import mask_email
from spillguard.errors import UserError
from spillguard.keys import derive_key, keyed_hex
from spillguard.report.gdpr import CONTACT_PLACEHOLDER
from spillguard.respond.actions import Context, Limits, Pacer, Verification, batches
from spillguard.respond.steps import Step, StepOutcome, step_key

if TYPE_CHECKING:
    from spillguard.respond.journal import Journal

# Art. 34(2) refers to Art. 33(3)(b)-(d): the items every notice to a person must carry, as template blocks.
REQUIRED_BLOCKS: dict[str, str] = {
    "nature": "the nature of the breach",
    "contact": "the contact point",
    "consequences": "the likely consequences",
    "measures": "the measures taken or proposed",
}
EXEMPTION_BASES: dict[str, str] = {
    "34(3)(a)": "the data was unintelligible to anyone not authorised to access it (e.g. encrypted)",
    "34(3)(b)": "later measures ensure the high risk is no longer likely to materialise",
    "34(3)(c)": "individual notice would involve disproportionate effort; a public communication is made instead",
}
BUILTIN_TEMPLATES = Path(__file__).with_name("templates")
_PLACEHOLDER = re.compile(r"\[(?:Describe|Say|name, role)[^\]]*\]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TERMINAL = frozenset({"sent", "rejected", "bounced"})
IN_DOUBT = frozenset({"pending", "in_doubt"})
InDoubtPolicy = Literal["hold", "resend"]


# --- input: who, and what to tell them ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str  # only ever used for the envelope / API call
    groups: tuple[str, ...]  # risk groups of the report (credentials, health, financial, ...)
    name: str = ""


def recipients_from_csv(path: str | Path, *, address_column: str = "email", groups_column: str = "groups",
                        name_column: str | None = None) -> Iterator[Recipient]:  # fmt: skip
    """People to notify from a CSV export (groups separated by `;`), e.g. the affected users joined with the
    scan's subjects. A bad row names its line, never its address."""
    for r, _ in _recipients_with(Path(path), address_column, groups_column, name_column, None):
        yield r


def _recipients_with(path: Path, address_column: str, groups_column: str, name_column: str | None,
                     subject_column: str | None) -> Iterator[tuple[Recipient, str]]:  # fmt: skip
    try:
        fh = open(path, newline="", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise UserError(f"{path}: cannot read the recipients file ({exc.strerror}); give a readable CSV") from None
    with fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        for col in filter(None, (address_column, groups_column, name_column, subject_column)):
            if col not in cols:
                raise UserError(f"{path}: no column {col!r} (columns: {', '.join(cols)}); name the right one")
        for line, row in enumerate(reader, start=2):
            address = (row[address_column] or "").strip()
            if not _EMAIL.match(address):
                raise UserError(f"{path}:{line}: not an e-mail address in column {address_column!r}; fix or remove the row")
            groups = tuple(g.strip() for g in (row[groups_column] or "").split(";") if g.strip())
            name = (row.get(name_column) or "").strip() if name_column else ""
            yield Recipient(address, groups, name), (row.get(subject_column) or "").strip() if subject_column else ""


def notices_from_report(path: str | Path) -> list[dict[str, Any]]:
    """The Art. 34 notices of a `spillguard report --format json` file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a report JSON file ({exc}); write one with `spillguard report … -f json`") from None
    notices = data.get("art34") if isinstance(data, dict) else None
    if not isinstance(notices, list):
        raise UserError(f"{path}: has no Art. 34 notices; write it with `spillguard report … -f json`")
    return notices


def normalise(address: str) -> str:
    # One person, one ledger row: case and surrounding space do not make a second recipient.
    return address.strip().lower()


def recipient_key(key: bytes) -> bytes:
    return derive_key(key, "spillguard notify recipient")


# --- templates -----------------------------------------------------------------------------------------


class Templates:
    """Finds, checks and renders the notice templates. Problems are UserErrors naming the file."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder else None
        if self.folder is not None and not self.folder.is_dir():
            raise UserError(f"{self.folder}: no such templates folder; give the folder holding <group>.txt.j2 files")
        search = [str(self.folder)] if self.folder else []
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search + [str(BUILTIN_TEMPLATES)]),
            undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True,
        )  # fmt: skip
        self._cache: dict[str, jinja2.Template] = {}

    def name_for(self, group: str) -> str:
        """The template a person whose most serious group is `group` gets."""
        if self.folder is not None:
            for name in (f"{group}.txt.j2", "default.txt.j2"):
                if (self.folder / name).is_file():
                    return name
        return "notice.txt.j2"

    def where(self, name: str) -> str:
        if self.folder is not None and (self.folder / name).is_file():
            return str(self.folder / name)
        return f"built-in {name}"

    def get(self, name: str) -> jinja2.Template:
        t = self._cache.get(name)
        if t is None:
            try:
                t = self._cache[name] = self.env.get_template(name)
            except jinja2.TemplateSyntaxError as exc:
                raise UserError(f"{self.where(name)}:{exc.lineno}: template error: {exc.message}; fix the template") from None
        return t

    def _blocks(self, name: str, seen: tuple[str, ...] = ()) -> set[str]:
        """Block names of a template and the templates it extends."""
        if name in seen:
            return set()
        source = self.env.loader.get_source(self.env, name)[0]  # type: ignore[union-attr]
        ast = self.env.parse(source)
        found = {b.name for b in ast.find_all(nodes.Block)}
        for ext in ast.find_all(nodes.Extends):
            if isinstance(ext.template, nodes.Const):
                found |= self._blocks(ext.template.value, seen + (name,))
        return found

    def check(self, name: str, context: dict[str, Any]) -> None:
        """Refuse a template that lacks an Art. 34(2) item, renders one empty, or leaves one out of the message."""
        tmpl = self.get(name)
        blocks = self._blocks(name)
        for block, what in REQUIRED_BLOCKS.items():
            if block not in blocks:
                raise UserError(f"{self.where(name)}: no {{% block {block} %}} ({what}), which Art. 34(2) requires "
                                "in every notice; add it")  # fmt: skip
        ctx = tmpl.new_context(context)
        full = self.render_text(name, context)
        self.render(name, context)  # the Subject line
        for block, what in REQUIRED_BLOCKS.items():
            render = tmpl.blocks.get(block)
            text = "".join(render(ctx)).strip() if render else ""
            if not text or text not in full:
                raise UserError(f"{self.where(name)}: block {block!r} ({what}) renders empty or is not part of the "
                                "message; fill it in")  # fmt: skip

    def render_text(self, name: str, context: dict[str, Any]) -> str:
        try:
            return self.get(name).render(context)
        except jinja2.UndefinedError as exc:
            raise UserError(f"{self.where(name)}: {exc.message}; use the variables notice, notices, data, "
                            "consequences, measures, advice, recipient, organisation") from None  # fmt: skip

    def render(self, name: str, context: dict[str, Any]) -> tuple[str, str]:
        """(subject, body): the first line `Subject: …` is the subject, the text after the blank line the body."""
        text = self.render_text(name, context)
        head, sep, body = text.partition("\n\n")
        if not sep or not head.startswith("Subject:") or "\n" in head:
            raise UserError(f"{self.where(name)}: must start with one `Subject: …` line and a blank line")
        return head[len("Subject:"):].strip(), body.strip() + "\n"


def check_notice(notice: dict[str, Any]) -> None:
    group = notice.get("group", "?")
    for item, keys in (("nature", ("what_happened", "what_data")), ("contact", ("contact",)),
                       ("consequences", ("consequences",)), ("measures", ("measures",))):  # fmt: skip
        for k in keys:
            v = notice.get(k)
            if not v:
                raise UserError(f"Art. 34 notice for {group!r}: {REQUIRED_BLOCKS[item]} ({k}) is missing; complete the report")
            texts = v if isinstance(v, list) else [v]
            if any(isinstance(t, str) and (_PLACEHOLDER.search(t) or t == CONTACT_PLACEHOLDER) for t in texts):
                hint = "--contact" if k == "contact" else "the draft's [...] text"
                raise UserError(f"Art. 34 notice for {group!r}: {k} still holds a placeholder; fill in {hint} before sending")


def _merged(notices: list[dict[str, Any]], key: str) -> list[str]:
    out: list[str] = []
    for n in notices:
        for item in n.get(key) or []:
            if item not in out:
                out.append(item)
    return out


# --- the ledger ----------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    incident TEXT NOT NULL, recipient TEXT NOT NULL, template TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE, masked TEXT NOT NULL, state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, code TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT '',
    provider_id TEXT NOT NULL DEFAULT '', intent_at REAL, outcome_at REAL,
    PRIMARY KEY (incident, recipient, template));
"""


@dataclass(frozen=True, slots=True)
class LedgerRow:
    state: str
    message_id: str
    masked: str
    intent_at: float | None
    attempts: int


class Ledger:
    """One row per (incident, keyed recipient hash, template); see the module docstring for the guarantee."""

    def __init__(self, path: str | Path, *, durable: bool = False) -> None:
        self.path = Path(path)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise UserError(f"{self.path}: cannot open the notification ledger ({exc.strerror}); choose a writable path") from None
        os.close(fd)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self.db.executescript(_SCHEMA)
            fmt = self.db.execute("SELECT value FROM meta WHERE name='format'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{self.path}: not a notification ledger ({exc}); give the ledger file notify wrote") from None
        if fmt is None:
            self.db.execute("INSERT INTO meta VALUES ('format', 'spillguard-notify-ledger-1')")
        self.lock = threading.Lock()

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """One sending run per ledger: two at once would both see a person as not yet mailed."""
        import fcntl

        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(f"{self.path}: another notification run is using this ledger; wait for it to end") from None
            yield
        finally:
            os.close(fd)  # releases the lock

    def rows(self, incident: str) -> dict[tuple[str, str], LedgerRow]:
        cur = self.db.execute("SELECT recipient, template, state, message_id, masked, intent_at, attempts FROM messages "
                              "WHERE incident=?", (incident,))  # fmt: skip
        return {(r[0], r[1]): LedgerRow(*r[2:]) for r in cur}

    def intent(self, incident: str, recipient: str, template: str, message_id: str, masked: str) -> None:
        with self.lock:
            self.db.execute(
                "INSERT INTO messages (incident, recipient, template, message_id, masked, state, attempts, intent_at) "
                "VALUES (?, ?, ?, ?, ?, 'pending', 1, ?) ON CONFLICT (incident, recipient, template) DO UPDATE SET "
                "state='pending', attempts=attempts+1, intent_at=excluded.intent_at",
                (incident, recipient, template, message_id, masked, time.time()),
            )

    def outcome(self, message_id: str, state: str, code: str = "", detail: str = "", provider_id: str = "") -> None:
        with self.lock:
            self.db.execute("UPDATE messages SET state=?, code=?, detail=?, provider_id=?, outcome_at=? WHERE message_id=?",
                            (state, code, detail[:300], provider_id, time.time(), message_id))  # fmt: skip

    def resolve(self, message_id: str, delivered: bool) -> bool:
        """Settle an in-doubt row from the mail server's log: delivered -> sent, else sendable again."""
        with self.lock:
            cur = self.db.execute(
                "UPDATE messages SET state=?, detail=?, outcome_at=? WHERE message_id=? AND state IN ('pending', 'in_doubt')",
                ("sent" if delivered else "failed", "resolved from the mail log", time.time(), message_id),
            )
        return cur.rowcount == 1

    def in_doubt(self, incident: str) -> list[tuple[str, str]]:
        """(message_id, masked recipient) of every row the server may or may not have."""
        cur = self.db.execute("SELECT message_id, masked FROM messages WHERE incident=? AND state IN ('pending', 'in_doubt') "
                              "ORDER BY message_id", (incident,))  # fmt: skip
        return list(cur)

    def counts(self, incident: str) -> dict[str, int]:
        return dict(self.db.execute("SELECT state, count(*) FROM messages WHERE incident=? GROUP BY state", (incident,)).fetchall())

    def mark_bounced(self, message_id: str, status: str, detail: str) -> bool:
        with self.lock:
            cur = self.db.execute("UPDATE messages SET state='bounced', code=?, detail=?, outcome_at=? WHERE message_id=?",
                                  (status, detail[:300], time.time(), message_id))  # fmt: skip
        return cur.rowcount == 1


# --- transports ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outgoing:
    incident: str
    recipient: str  # keyed hash (hex)
    template: str
    message_id: str  # <hex@domain>, deterministic
    address: str  # raw: envelope only
    masked: str
    subject: str
    body: str

    @property
    def idempotency_key(self) -> str:
        return self.message_id.strip("<>").split("@", 1)[0]


@dataclass(frozen=True, slots=True)
class Delivery:
    state: Literal["sent", "rejected", "failed", "in_doubt"]
    code: str = ""
    detail: str = ""
    provider_id: str = ""


class Transport(Protocol):
    name: str
    target: str  # masked: host:port or scheme://host
    dedup_window_s: float  # how long the receiver drops a re-sent duplicate (0: never)

    def check(self) -> None: ...  # reachable and authenticated, or UserError

    def send(self, msg: Outgoing) -> Delivery: ...

    def close(self) -> None: ...


def _crlf_dot_stuffed(data: bytes) -> bytes:
    return re.sub(rb"(?m)^\.", b"..", data)


class SmtpTransport:
    """SMTP with the DATA phase driven by hand, so the one ambiguous moment — after the final dot is sent,
    before the server's answer is read — is told apart from failures that certainly sent nothing."""

    name = "smtp"
    dedup_window_s = 0.0

    def __init__(self, cfg: SinkConfig, *, retries: int = 3, backoff_s: float = 0.5) -> None:
        if not cfg.host or not cfg.sender:
            raise UserError("notify smtp: set host and sender (the From address of the notices)")
        self.cfg, self.retries, self.backoff_s = cfg, retries, backoff_s
        self.password = cfg.password()
        self.sender = cfg.sender
        self.domain = cfg.sender.rpartition("@")[2] or "spillguard.invalid"
        self.target = f"smtp://{cfg.host}:{cfg.port}"
        # One connection per sending thread; each has at most one message in doubt at a time.
        self._local = threading.local()
        self._open: list[smtplib.SMTP] = []
        self._lock = threading.Lock()
        self._bodies: dict[tuple[str, str], bytes] = {}

    def _connect(self) -> smtplib.SMTP:
        conn: smtplib.SMTP | None = getattr(self._local, "conn", None)
        if conn is None:
            c = self.cfg
            cls = smtplib.SMTP_SSL if c.ssl else smtplib.SMTP
            conn = cls(c.host or "localhost", c.port, timeout=c.timeout)
            try:
                conn.ehlo()
                if c.starttls:
                    conn.starttls()
                    conn.ehlo()
                if c.username:
                    conn.login(c.username, self.password or "")
            except BaseException:
                conn.close()
                raise
            self._local.conn = conn
            with self._lock:
                self._open.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._open:
                    self._open.remove(conn)
            conn.close()

    def check(self) -> None:
        try:
            self._connect().noop()
        except smtplib.SMTPAuthenticationError as exc:
            raise UserError(f"notify {self.target}: authentication failed ({exc.smtp_code}); check username and "
                            f"${self.cfg.password_env}") from None  # fmt: skip
        except (OSError, smtplib.SMTPException) as exc:
            raise UserError(f"notify {self.target}: cannot reach the mail server ({type(exc).__name__}); check host "
                            "and port") from None  # fmt: skip

    def close(self) -> None:
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                conn.quit()
        self._local = threading.local()

    def payload(self, msg: Outgoing) -> bytes:
        """The message as sent: the encoded subject and body are built once per distinct text (most people
        share one), the per-person headers are put in front."""
        body = self._bodies.get((msg.subject, msg.body))
        if body is None:
            m = EmailMessage(policy=email.policy.SMTP)
            m["From"] = self.sender
            m["Subject"] = msg.subject
            m["Auto-Submitted"] = "auto-generated"
            m.set_content(msg.body)
            body = m.as_bytes()
            if len(self._bodies) < 10_000:
                self._bodies[(msg.subject, msg.body)] = body
        head = f"To: {msg.address}\r\nDate: {formatdate(localtime=False)}\r\nMessage-ID: {msg.message_id}\r\n"
        return head.encode() + body

    def send(self, msg: Outgoing) -> Delivery:
        data = _crlf_dot_stuffed(self.payload(msg))
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        data += b".\r\n"
        delay, last = self.backoff_s, Delivery("failed", "", "not attempted")
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(delay)
                delay *= 2
            last = self._once(msg, data)
            if last.state != "failed":
                return last
        return last

    def _once(self, msg: Outgoing, data: bytes) -> Delivery:
        try:
            conn = self._connect()
            code, reply = conn.mail(self.sender)
            if code != 250:
                conn.rset()
                if code >= 500:  # the sender itself is refused: a configuration problem, not this person's
                    raise UserError(f"notify {self.target}: the server refuses the sender ({code}); check `sender` "
                                    "and the account's sending rights")  # fmt: skip
                return self._refused(code, reply, "failed")
            code, reply = conn.rcpt(msg.address)
            if code not in (250, 251):
                conn.rset()  # 5xx here is about this mailbox: refused for good
                return self._refused(code, reply, "rejected" if code >= 500 else "failed")
            conn.putcmd("data")
            code, reply = conn.getreply()
            if code != 354:
                conn.rset()
                return self._refused(code, reply, "failed")
            conn.send(data)
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()  # the final dot did not go out: the server has nothing
            return Delivery("failed", "", f"{type(exc).__name__} before the message was complete")
        try:
            code, reply = conn.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            return Delivery("in_doubt", "", f"{type(exc).__name__} while waiting for the server's answer")
        if code == 250:
            return Delivery("sent", "250")
        # Refusing the content is not about the mailbox (every notice shares it): keep it sendable.
        return self._refused(code, reply, "failed")

    @staticmethod
    def _refused(code: int, reply: bytes, state: Literal["rejected", "failed"]) -> Delivery:
        text = reply.decode("utf-8", "replace")
        # A server's reply may quote the address back: keep only its code and enhanced status.
        status = re.match(r"\s*(\d\.\d{1,3}\.\d{1,3})", text)
        detail = f"{code} {status.group(1) if status else ''}".strip()
        return Delivery(state, str(code), detail)


@dataclass(frozen=True, slots=True)
class HttpMailConfig:
    """An e-mail provider's send endpoint (Resend-style JSON: from, to, subject, text)."""

    url: str
    sender: str
    api_key_env: str = "SPILLGUARD_MAIL_API_KEY"
    dedup_window_s: float = 900.0  # how long the provider keeps idempotency keys (Resend: 24 h; assume less)
    timeout: float = 10.0


class HttpMailTransport:
    """POST per message with an `Idempotency-Key` (the ledger row's), so a re-sent request is a no-op."""

    name = "http"

    def __init__(self, cfg: HttpMailConfig, *, retries: int = 3, backoff_s: float = 0.5) -> None:
        from urllib.parse import urlsplit

        p = urlsplit(cfg.url)
        if p.scheme not in ("http", "https") or not p.hostname:
            raise UserError(f"notify http: {cfg.url!r} is not an http(s) URL; give the provider's send endpoint")
        self.api_key = os.environ.get(cfg.api_key_env)
        if not self.api_key:
            raise UserError(f"notify http: set ${cfg.api_key_env} to the e-mail provider's API key")
        self.cfg, self.retries, self.backoff_s = cfg, retries, backoff_s
        self.dedup_window_s = cfg.dedup_window_s
        self.domain = cfg.sender.rpartition("@")[2] or "spillguard.invalid"
        self.target = f"{p.scheme}://{p.hostname}" + (f":{p.port}" if p.port else "")
        self.http = httpx.Client(timeout=cfg.timeout, trust_env=False,
                                 headers={"Authorization": f"Bearer {self.api_key}", "User-Agent": "spillguard-notify/1"})  # fmt: skip

    def check(self) -> None:
        pass  # providers have no side-effect-free probe; a bad key stops the run at the first message

    def close(self) -> None:
        self.http.close()

    def send(self, msg: Outgoing) -> Delivery:
        body = {"from": self.cfg.sender, "to": [msg.address], "subject": msg.subject, "text": msg.body,
                "headers": {"Message-ID": msg.message_id}}  # fmt: skip
        headers = {"Idempotency-Key": msg.idempotency_key}
        delay, maybe_sent = self.backoff_s, False
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(delay)
                delay *= 2
            try:
                resp = self.http.post(self.cfg.url, json=body, headers=headers)
            except httpx.TransportError as exc:
                # The request may have reached the provider; the same key makes a retry safe.
                maybe_sent = maybe_sent or not isinstance(exc, httpx.ConnectError)
                continue
            if resp.status_code in (401, 403):
                raise UserError(f"notify {self.target}: the provider refused the API key (HTTP {resp.status_code}); "
                                f"check ${self.cfg.api_key_env}")  # fmt: skip
            if 200 <= resp.status_code < 300:
                try:
                    pid = str(resp.json().get("id", ""))
                except (ValueError, AttributeError):
                    pid = ""
                return Delivery("sent", str(resp.status_code), "", pid[:100])
            if resp.status_code in (409, 429) or resp.status_code >= 500:
                maybe_sent = maybe_sent or resp.status_code >= 500
                continue
            # 422: the provider refuses this recipient (e.g. an invalid address); other 4xx may be ours: retry later.
            state: Literal["rejected", "failed"] = "rejected" if resp.status_code == 422 else "failed"
            return Delivery(state, str(resp.status_code), f"HTTP {resp.status_code}")
        if maybe_sent:
            return Delivery("in_doubt", "", "no answer from the provider after retries")
        return Delivery("failed", "", "the provider could not be reached")


# --- the notifier ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Exemption:
    """An Art. 34(3) decision not to notify the people of one risk group individually."""

    group: str
    basis: str  # "34(3)(a)" | "34(3)(b)" | "34(3)(c)"
    reason: str  # in plain words, journaled

    def __post_init__(self) -> None:
        if self.basis not in EXEMPTION_BASES:
            raise UserError(f"exemption for {self.group!r}: basis {self.basis!r} is not one of {', '.join(EXEMPTION_BASES)}")
        if not self.reason.strip():
            raise UserError(f"exemption for {self.group!r}: give the reason (it is journaled)")


@dataclass(slots=True)
class NotifyResult:
    incident: str
    people: int = 0  # distinct recipients with a notice to get
    sent: int = 0  # sent by this run
    already: int = 0  # sent (or refused for good) by an earlier run
    failed: int = 0  # could not be sent now; a rerun tries again
    rejected: int = 0  # refused for good by the server (e.g. no such mailbox)
    in_doubt: int = 0  # the server may or may not have it: settle with the mail log
    exempted: int = 0  # people only in exempted groups (Art. 34(3))
    previews: int = 0
    by_template: dict[str, int] = field(default_factory=dict)
    held: list[dict[str, str]] = field(default_factory=list)  # in doubt: masked recipient + Message-ID
    failures: list[dict[str, str]] = field(default_factory=list)  # masked recipient + code
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return self.failed == 0 and self.in_doubt == 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"complete": self.complete}


class Notifier:
    """Plans and sends the notices of one incident through one transport, with the ledger."""

    def __init__(self, *, incident: str, notices: list[dict[str, Any]], transport: Transport, ledger: Ledger, key: bytes,
                 templates: Templates | None = None, organisation: str = "", exemptions: Iterable[Exemption] = (),
                 journal: Journal | None = None, limits: Limits | None = None, in_doubt: InDoubtPolicy = "hold",
                 connections: int = 4, log: Callable[[str], None] | None = None) -> None:  # fmt: skip
        self.incident, self.transport, self.ledger = incident, transport, ledger
        self.templates = templates or Templates()
        self.organisation = organisation
        self.journal = journal
        self.limits = limits or Limits(per_second=None)
        self.in_doubt_policy = in_doubt
        self.connections = max(1, connections)
        self.log = log or (lambda line: None)
        self._rkey = recipient_key(key)
        self.notices = {n["group"]: n for n in notices}
        self.exemptions = {e.group: e for e in exemptions}
        for g in self.exemptions:
            if g not in self.notices:
                raise UserError(f"exemption for {g!r}: the report has no notice for that group ({', '.join(self.notices)})")
        # Everything is checked before anything is sent.
        for group, notice in self.notices.items():
            if group in self.exemptions:
                continue
            check_notice(notice)
            name = self.templates.name_for(group)
            self.templates.check(name, self._context([notice], Recipient("preview@example.invalid", (group,), "Preview")))

    def _order(self, group: str) -> int:
        return RISK_GROUPS[group].order if group in RISK_GROUPS else 99

    def _context(self, notices: list[dict[str, Any]], r: Recipient) -> dict[str, Any]:
        return {
            "notice": notices[0], "notices": notices, "recipient": {"name": r.name},
            "data": " ".join(n.get("what_data", "") for n in notices),
            "consequences": _merged(notices, "consequences"), "measures": _merged(notices, "measures"),
            "advice": _merged(notices, "advice"), "organisation": self.organisation, "incident": self.incident,
        }  # fmt: skip

    def _hash(self, address: str) -> str:
        return keyed_hex(self._rkey, normalise(address))

    def message_id(self, recipient: str, template: str) -> str:
        h = hashlib.sha256(f"{self.incident}\x00{recipient}\x00{template}".encode()).hexdigest()[:40]
        domain = getattr(self.transport, "domain", None) or "spillguard.invalid"
        return f"<{h}@{domain}>"

    def plan(self, recipients: Iterable[Recipient]) -> tuple[list[Outgoing], int]:
        """One message per distinct person (their groups merged); (messages, people exempted)."""
        people: dict[str, tuple[str, set[str], str]] = {}
        for r in recipients:
            unknown = [g for g in r.groups if g not in self.notices]
            if unknown:
                raise UserError(f"recipient {mask_email(r.address)}: no Art. 34 notice for group {unknown[0]!r} "
                                f"(the report has {', '.join(self.notices)}); fix the recipients' groups")  # fmt: skip
            if not _EMAIL.match(r.address.strip()) or not r.address.isascii():
                raise UserError(f"recipient {mask_email(r.address)}: not a plain ASCII e-mail address; fix the recipients")
            h = self._hash(r.address)
            addr, groups, name = people.get(h, (r.address.strip(), set(), r.name))
            people[h] = (addr, groups | set(r.groups), name or r.name)
        out: list[Outgoing] = []
        exempted = 0
        # A message depends on the person's groups and name only: render each distinct one once.
        rendered: dict[tuple[tuple[str, ...], str], tuple[str, str, str]] = {}
        for h, (addr, groups, name) in people.items():
            live = tuple(sorted((g for g in groups if g not in self.exemptions), key=self._order))
            if not live:
                exempted += 1
                continue
            hit = rendered.get((live, name))
            if hit is None:
                notices = [self.notices[g] for g in live]
                template = self.templates.name_for(live[0])
                hit = rendered[(live, name)] = (template, *self.templates.render(template, self._context(notices, Recipient(addr, live, name))))
            template, subject, body = hit
            out.append(Outgoing(self.incident, h, template, self.message_id(h, template), addr, mask_email(addr), subject, body))
        return out, exempted

    def _journal_exemptions(self) -> None:
        if self.journal is None:
            return
        done = {e.target for e in self.journal.entries(self.incident) if e.kind == "decision" and e.action == "notify"}
        for g, ex in sorted(self.exemptions.items()):
            target = f"notices:{g}"
            if target not in done:
                self.journal.append("decision", incident=self.incident, action="notify", target=target, result=f"exempt {ex.basis}",
                                    detail=f"Art. {ex.basis}: {ex.reason}")  # fmt: skip

    def resolve_in_doubt(self, delivered: Callable[[set[str]], set[str]]) -> int:
        """Settle in-doubt rows with a lookup in the mail system (Message-IDs it has); returns how many."""
        ids = {mid for mid, _ in self.ledger.in_doubt(self.incident)}
        if not ids:
            return 0
        have = delivered(ids)
        for mid in ids:
            self.ledger.resolve(mid, mid in have)
        return len(ids)

    def preview(self, address: str, recipients: Iterable[Recipient] | None = None, *, every: bool = False) -> NotifyResult:
        """Send previews to one test address; the ledger and the journal are not touched.

        Without recipients: one message per template the report's groups use. With recipients: their planned
        messages, each person's own text (subject marked with the masked person it was for), the first one of
        each template, or with `every` every message of the plan."""
        if not _EMAIL.match(address.strip()) or not address.isascii():
            raise UserError("notify --preview: give one e-mail address to send the previews to")
        if recipients is not None:
            messages, exempted = self.plan(recipients)
            return self.preview_messages(address, messages, every=every, exempted=exempted)
        res = NotifyResult(self.incident)
        groups = sorted((g for g in self.notices if g not in self.exemptions), key=self._order)
        by_template: dict[str, str] = {}
        for g in groups:
            by_template.setdefault(self.templates.name_for(g), g)
        for template, g in by_template.items():
            subject, body = self.templates.render(template, self._context([self.notices[g]], Recipient(address, (g,), "Preview")))
            mid = f"<preview-{hashlib.sha256(f'{self.incident}{template}{time.time()}'.encode()).hexdigest()[:24]}@spillguard.invalid>"
            d = self.transport.send(Outgoing(self.incident, "", template, mid, address.strip(), mask_email(address),
                                             f"[PREVIEW] {subject}", body))  # fmt: skip
            if d.state != "sent":
                raise UserError(f"notify --preview: {self.transport.target} did not accept the preview ({d.code or d.detail})")
            res.previews += 1
            res.by_template[template] = res.by_template.get(template, 0) + 1
        self.transport.close()
        return res

    def preview_messages(self, address: str, messages: list[Outgoing], *, every: bool = False, exempted: int = 0) -> NotifyResult:
        """Planned messages sent to `address` instead of their recipients, paced like a run; nothing recorded.
        A preview's Message-ID is its own (`preview-…`), so a bounce or a mail-log lookup never settles a real row."""
        if not _EMAIL.match(address.strip()) or not address.isascii():
            raise UserError("notify --preview: give one e-mail address to send the previews to")
        t0 = time.monotonic()
        res = NotifyResult(self.incident, people=len(messages), exempted=exempted)
        if not every:
            first: dict[str, Outgoing] = {}
            for m in messages:
                first.setdefault(m.template, m)
            messages = list(first.values())
        self.transport.check()
        pacer = Pacer(self.limits.per_second)
        try:
            for m in messages:
                pacer.wait()
                mid = f"<preview-{secrets.token_hex(12)}@spillguard.invalid>"
                d = self.transport.send(Outgoing(self.incident, "", m.template, mid, address.strip(), mask_email(address),
                                                 f"[PREVIEW for {m.masked}] {m.subject}", m.body))  # fmt: skip
                if d.state != "sent":
                    raise UserError(f"notify --preview: {self.transport.target} did not accept the preview ({d.code or d.detail})")
                res.previews += 1
                res.by_template[m.template] = res.by_template.get(m.template, 0) + 1
        finally:
            self.transport.close()
        res.seconds = round(time.monotonic() - t0, 3)
        return res

    def run(self, recipients: Iterable[Recipient]) -> NotifyResult:
        messages, exempted = self.plan(recipients)
        return self.send(messages, exempted)

    def send(self, messages: list[Outgoing], exempted: int = 0) -> NotifyResult:
        """Send planned messages the ledger does not already have as sent (or refused for good)."""
        with self.ledger.exclusive():
            return self._send(messages, exempted)

    def _send(self, messages: list[Outgoing], exempted: int) -> NotifyResult:
        t0 = time.monotonic()
        res = NotifyResult(self.incident, people=len(messages), exempted=exempted)
        self.transport.check()
        self._journal_exemptions()
        rows = self.ledger.rows(self.incident)
        now = time.time()
        todo: list[Outgoing] = []
        for m in messages:
            row = rows.get((m.recipient, m.template))
            if row is not None and row.state in TERMINAL:
                res.already += 1
                continue
            if row is not None and row.state in IN_DOUBT:
                window = self.transport.dedup_window_s
                within = bool(window and row.intent_at and now - row.intent_at < window)
                if not within and self.in_doubt_policy == "hold":
                    res.in_doubt += 1
                    res.held.append({"recipient": m.masked, "message_id": m.message_id})
                    continue
            todo.append(m)
        try:
            self._send_all(todo, res)
        finally:
            self.transport.close()
            res.seconds = round(time.monotonic() - t0, 3)
            self._journal_run(res)
        return res

    def _send_all(self, todo: list[Outgoing], res: NotifyResult) -> None:
        """`connections` threads, each on its own connection: intent committed, message sent, outcome committed."""
        pacer = Pacer(self.limits.per_second)
        lock = threading.Lock()
        queue = iter(todo)
        errors: list[BaseException] = []

        def worker() -> None:
            while True:
                with lock:
                    m = None if errors else next(queue, None)
                    if m is not None:
                        pacer.wait()
                if m is None:
                    return
                try:
                    self.ledger.intent(m.incident, m.recipient, m.template, m.message_id, m.masked)
                    try:
                        d = self.transport.send(m)
                    except UserError:  # raised only before anything went out (refused sender, bad API key)
                        self.ledger.outcome(m.message_id, "failed", "", "not sent: the run stopped")
                        raise
                    self.ledger.outcome(m.message_id, d.state, d.code, d.detail, d.provider_id)
                except BaseException as exc:  # stop every worker, report it once; anything else stays in doubt
                    with lock:
                        errors.append(exc)
                    return
                with lock:
                    self._count(res, m, d)

        threads = [threading.Thread(target=worker, name=f"notify-{i}") for i in range(min(self.connections, len(todo)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def _count(self, res: NotifyResult, m: Outgoing, d: Delivery) -> None:
        if d.state == "sent":
            res.sent += 1
            res.by_template[m.template] = res.by_template.get(m.template, 0) + 1
            return
        if d.state == "in_doubt":
            res.in_doubt += 1
            res.held.append({"recipient": m.masked, "message_id": m.message_id})
        elif d.state == "rejected":
            res.rejected += 1
        else:
            res.failed += 1
        if d.state != "in_doubt" and len(res.failures) < 100:
            res.failures.append({"recipient": m.masked, "state": d.state, "code": d.code, "detail": d.detail})
        self.log(f"notify: {m.masked}: {d.state} {d.code} {d.detail}".rstrip())

    def _journal_run(self, res: NotifyResult) -> None:
        if self.journal is None:
            return
        detail = (f"sent {res.sent}, already {res.already}, failed {res.failed}, rejected {res.rejected}, "
                  f"in doubt {res.in_doubt}, exempted {res.exempted}")  # fmt: skip
        self.journal.append("notify", incident=self.incident, action="notify", target=self.transport.target,
                            count=res.people, done=res.sent + res.already, failed=res.failed + res.rejected + res.in_doubt,
                            result="done" if res.complete else "incomplete", detail=detail)  # fmt: skip


class NotifyAction:
    """The notifier as a playbook action (`kind = "notify"`): steps are batches of people (keyed hashes in the
    payload), a step's outcome counts people now notified, and verify counts who has still not been told.

    Settings: `report` (the report JSON holding the Art. 34 notices), `recipients` (CSV: `address_column`,
    `groups_column`, optional `name_column`; with `subject_column`, scope exact keeps only the affected people
    of the subjects file / leaked set), `ledger`, `templates`, `organisation`, either SMTP (`smtp_host`,
    `smtp_port`, `starttls`, `ssl`, `username`, `password_env`, `sender`) or an HTTP provider (`mail_api_url`,
    `api_key_env`, `sender`, `dedup_window_s`), `connections`, `per_second`, `in_doubt`, `durable`, and
    `exempt = [{group, basis, reason}]` for Art. 34(3) decisions.
    """

    KEYS: dict[str, Any] = {
        "report": str, "recipients": str, "address_column": str, "groups_column": str, "name_column": str,
        "subject_column": str, "ledger": str, "templates": str, "organisation": str, "smtp_host": str, "smtp_port": int,
        "starttls": bool, "ssl": bool, "username": str, "sender": str, "mail_api_url": str, "api_key_env": str,
        "dedup_window_s": (int, float), "connections": int, "per_second": (int, float), "in_doubt": str,
        "durable": bool, "exempt": list,
    }  # fmt: skip
    PATH_KEYS = ("report", "recipients", "ledger", "templates")
    kind = "notify"

    def __init__(self, settings: dict[str, Any], src: str = "notify", *, notifier: Notifier | None = None,
                 recipients: Iterable[Recipient] | None = None) -> None:  # fmt: skip
        self.settings, self.src = settings, src
        self.id: str = settings["id"]
        self.scope: str | None = settings.get("scope")
        self.notifier = notifier
        self.recipients = list(recipients) if recipients is not None else None  # addresses in memory only
        self._subjects: list[str] = []  # the subject_column value per recipient, in memory only
        self._messages: dict[str, Outgoing] | None = None
        self.exempted = 0
        if notifier is None:
            for k in ("report", "recipients", "ledger", "sender"):
                if not settings.get(k):
                    raise UserError(f"{src}: `{k}` is required for kind 'notify'")
            if bool(settings.get("smtp_host")) == bool(settings.get("mail_api_url")):
                raise UserError(f"{src}: give either smtp_host (SMTP) or mail_api_url (an HTTP e-mail provider)")
            policy = settings.get("in_doubt", "hold")
            if policy not in ("hold", "resend"):
                raise UserError(f"{src}: in_doubt = {policy!r}; use hold or resend")
            self.exemptions = []
            for n, e in enumerate(settings.get("exempt") or [], 1):
                if not isinstance(e, dict) or set(e) != {"group", "basis", "reason"}:
                    raise UserError(f"{src}: exempt #{n} must be {{group = …, basis = \"34(3)(a)\", reason = …}}")
                self.exemptions.append(Exemption(str(e["group"]), str(e["basis"]), str(e["reason"])))
        target = settings.get("smtp_host") or settings.get("mail_api_url") or (notifier.transport.target if notifier else "")
        self.target = notifier.transport.target if notifier else (f"smtp://{target}:{settings.get('smtp_port', 25)}"
                                                                  if settings.get("smtp_host") else str(target))

    def _transport(self) -> Transport:
        s = self.settings
        retries = {"retries": 3, "backoff_s": 0.5}
        if s.get("smtp_host"):
            cfg = SinkConfig(type="smtp", host=s["smtp_host"], port=int(s.get("smtp_port", 25)), starttls=bool(s.get("starttls")),
                             ssl=bool(s.get("ssl")), username=s.get("username"), password_env=s.get("password_env"),
                             sender=s["sender"])  # fmt: skip
            return SmtpTransport(cfg, **retries)
        return HttpMailTransport(HttpMailConfig(url=s["mail_api_url"], sender=s["sender"],
                                                api_key_env=s.get("api_key_env", "SPILLGUARD_MAIL_API_KEY"),
                                                dedup_window_s=float(s.get("dedup_window_s", 900.0))), **retries)  # fmt: skip

    def _build(self, incident: str, key: bytes) -> Notifier:
        s = self.settings
        transport = self._transport()
        return Notifier(incident=incident, notices=notices_from_report(s["report"]), transport=transport,
                        ledger=Ledger(s["ledger"], durable=bool(s.get("durable"))), key=key,
                        templates=Templates(s.get("templates")), organisation=s.get("organisation", ""),
                        exemptions=self.exemptions, limits=Limits(per_second=s.get("per_second")),
                        in_doubt=s.get("in_doubt", "hold"), connections=int(s.get("connections", 4)))  # fmt: skip

    def _read_recipients(self) -> None:
        s = self.settings
        col = s.get("subject_column")
        people, subjects = [], []
        path = Path(s["recipients"])
        for r, subject in _recipients_with(path, s.get("address_column", "email"), s.get("groups_column", "groups"),
                                           s.get("name_column"), col):  # fmt: skip
            people.append(r)
            subjects.append(subject)
        self.recipients, self._subjects = people, subjects

    def connect(self) -> None:
        """Everything checked before anything changes: notices, templates, recipients, the mail server or API key."""
        if self.notifier is None:
            from spillguard.keys import fingerprint_key

            probe = self._build("check", fingerprint_key())
            probe.transport.check()
            probe.transport.close()
            probe.ledger.close()
        if self.recipients is None:
            self._read_recipients()

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.transport.close()

    def _bind(self, ctx: Context) -> Notifier:
        if self.notifier is None:
            self.notifier = self._build(ctx.incident, ctx.key)
        if self.notifier.journal is None:
            self.notifier.journal = ctx.journal
        return self.notifier

    def _planned(self, ctx: Context) -> dict[str, Outgoing]:
        if self._messages is None:
            notifier = self._bind(ctx)
            if self.recipients is None:
                self._read_recipients()
            people = self.recipients or []
            if (self.scope or ctx.scope) == "exact" and self.settings.get("subject_column") and ctx.subjects is not None:
                import pyarrow as pa

                keep = ctx.subjects.contains(pa.array(self._subjects, pa.string()))
                people = [p for p, k in zip(people, keep, strict=True) if k]
            messages, self.exempted = notifier.plan(people)
            self._messages = {m.recipient: m for m in messages}
        return self._messages

    def plan(self, ctx: Context) -> list[Step]:
        messages = self._planned(ctx)
        assert self.notifier is not None
        rows = self.notifier.ledger.rows(self.notifier.incident)
        waiting = sorted(h for h, m in messages.items() if (rows.get((h, m.template)) or _NONE).state not in TERMINAL)
        return [Step(key=step_key(ctx.incident, self.id, batch), action=self.id, count=len(batch), payload=tuple(batch),
                     description=f"notify {len(batch)} people (Art. 34) via {self.target}")
                for batch in batches(waiting, ctx.limits.batch)]  # fmt: skip

    def execute(self, ctx: Context, step: Step) -> StepOutcome:
        messages = self._planned(ctx)
        assert self.notifier is not None
        res = self.notifier.send([messages[h] for h in step.payload if h in messages], self.exempted)
        detail = f"sent {res.sent}, already {res.already}, failed {res.failed}, rejected {res.rejected}, in doubt {res.in_doubt}"
        return StepOutcome(done=res.sent + res.already, failed=res.failed + res.rejected + res.in_doubt, detail=detail)

    def preview(self, ctx: Context, address: str, *, every: bool = False) -> NotifyResult:
        """`respond execute --preview ADDRESS`: this action's plan (scope applied) sent to one test address."""
        messages = self._planned(ctx)
        assert self.notifier is not None
        return self.notifier.preview_messages(address, sorted(messages.values(), key=lambda m: m.recipient), every=every,
                                              exempted=self.exempted)  # fmt: skip

    @property
    def ledger_path(self) -> Path:
        return Path(self.notifier.ledger.path) if self.notifier is not None else Path(self.settings["ledger"])

    def verify(self, ctx: Context) -> Verification:
        messages = self._planned(ctx)
        assert self.notifier is not None
        rows = self.notifier.ledger.rows(self.notifier.incident)
        states: dict[str, int] = {}
        for h, m in messages.items():
            st = (rows.get((h, m.template)) or _NONE).state
            if st != "sent":
                states[st] = states.get(st, 0) + 1
        details = [f"{n} {st.replace('_', ' ')}" for st, n in sorted(states.items())]
        return Verification(action=self.id, checked=len(messages), still_active=sum(states.values()), details=details)


_NONE = LedgerRow("not sent", "", "", None, 0)


# --- bounces -------------------------------------------------------------------------------------------


def import_bounces(ledger: Ledger, messages: Iterable[bytes]) -> int:
    """Record RFC 3464 delivery status notifications (bounces) against the ledger rows they report on.

    A DSN names the failed message by the original headers it carries (text/rfc822-headers or
    message/rfc822), so the deterministic Message-ID finds the row; the Status code is kept, the address not.
    """
    n = 0
    for raw in messages:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        if msg.get_content_type() != "multipart/report":
            continue
        status, action, original = "", "", ""
        for part in msg.walk():
            ctype = part.get_content_type()
            if ctype == "message/delivery-status":
                for block in part.get_payload():
                    action = action or str(block.get("Action", "")).strip().lower()
                    status = status or str(block.get("Status", "")).strip()
            elif ctype in ("text/rfc822-headers", "message/rfc822"):
                payload = part.get_payload()
                inner = payload[0] if isinstance(payload, list) else email.message_from_string(str(payload))
                original = original or str(inner.get("Message-ID", "")).strip()
        if action == "failed" and original and ledger.mark_bounced(original, status, f"bounced ({status})"):
            n += 1
    return n


def read_mailbox(path: str | Path) -> Iterator[bytes]:
    """Messages of an mbox file or a folder of .eml files (where bounces were collected)."""
    import mailbox

    p = Path(path)
    if p.is_dir():
        for f in sorted(p.glob("*.eml")):
            yield f.read_bytes()
        return
    if not p.is_file():
        raise UserError(f"{p}: no such mailbox; give an mbox file or a folder of .eml bounces")
    for m in mailbox.mbox(p):
        yield m.as_bytes()


__all__ = [
    "EXEMPTION_BASES", "REQUIRED_BLOCKS", "Delivery", "Exemption", "HttpMailConfig", "HttpMailTransport", "Ledger",
    "Notifier", "NotifyAction", "NotifyResult", "Outgoing", "Recipient", "SmtpTransport", "Templates", "Transport", "check_notice",
    "import_bounces", "notices_from_report", "read_mailbox", "recipients_from_csv",
]
