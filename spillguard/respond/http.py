"""A generic HTTP action for in-house admin APIs: one request per leaked token, per affected person,
or once, with the method, URL, headers and body templated.

Placeholders: {sha256} and {fingerprint} of a leaked token, {user} (the person's id from the subjects
file, sent to the API and nowhere else), {incident}, and {env:NAME} for credentials. A raw token is
never a placeholder. Each request carries an `Idempotency-Key` derived from the step key and the item,
so a step re-sent after a crash is recognisable by a server that honours the header; requests are
paced to `[limits] per_second` and retried with backoff on 429, 5xx and transport errors.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

import httpx

from spillguard.errors import UserError
from spillguard.respond.actions import Context, Pacer, Verification, batches
from spillguard.respond.steps import Step, StepOutcome, step_key
from spillguard.targets import mask_url

_PLACEHOLDER = re.compile(r"\{(\w+)(?::(\w+))?\}")
_VARS = {"token": {"sha256", "fingerprint", "incident", "env"}, "user": {"user", "incident", "env"}, "once": {"incident", "env"}}


class _Retry(Exception):
    pass


class HttpAction:
    KEYS: dict[str, Any] = {"method": str, "url": str, "headers": dict, "body": str, "per": str, "rules": list, "ok_status": list,
                            "timeout_s": (int, float), "verify_url": str, "verify_method": str, "verify_body": str,
                            "verify_active_status": list, "verify_inactive_status": list, "verify_active_field": str}
    kind = "http"

    def __init__(self, settings: dict[str, Any], src: str) -> None:
        self.settings = settings
        self.src = src
        self.id: str = settings["id"]
        self.scope: str = settings["scope"]
        self.method: str = settings.get("method", "POST").upper()
        self.url_t: str = settings.get("url") or ""
        if not self.url_t.startswith(("http://", "https://")):
            raise UserError(f"{src}: `url` must be an http:// or https:// URL template")
        self.headers_t: dict[str, str] = {str(k): str(v) for k, v in (settings.get("headers") or {}).items()}
        self.body_t: str | None = settings.get("body")
        self.per: str = settings.get("per", "token")
        if self.per not in _VARS:
            raise UserError(f"{src}: per = {self.per!r}; use token, user or once")
        if self.scope == "all" and self.per != "once":
            raise UserError(f"{src}: scope all needs per = \"once\" (an HTTP action cannot enumerate every token or person)")
        # Verification: one request per item after the fact; its status (and JSON field) says whether the API
        # still accepts what was revoked. Same placeholders and headers as the action's own request.
        self.verify_url_t: str | None = settings.get("verify_url")
        if self.verify_url_t is not None and not self.verify_url_t.startswith(("http://", "https://")):
            raise UserError(f"{src}: `verify_url` must be an http:// or https:// URL template")
        self.verify_method: str = settings.get("verify_method", "GET").upper()
        self.verify_body_t: str | None = settings.get("verify_body")
        self.verify_active = set(settings.get("verify_active_status") or [200])
        self.verify_inactive = set(settings.get("verify_inactive_status") or [404, 410])
        if self.verify_active & self.verify_inactive:
            raise UserError(f"{src}: a status cannot be both in verify_active_status and verify_inactive_status")
        field: str | None = settings.get("verify_active_field")
        self.verify_field = field.split(".") if field else None
        if self.verify_url_t is None and any(k.startswith("verify_") for k in settings):
            raise UserError(f"{src}: verify_* settings need `verify_url` (the request that tells whether an item is still active)")
        for text in self._templates():
            for name, arg in _PLACEHOLDER.findall(text):
                if name not in _VARS[self.per] or (name == "env") != bool(arg):
                    raise UserError(f"{src}: placeholder {{{name}{':' + arg if arg else ''}}} is not available with per = "
                                    f"{self.per!r}; use {', '.join(sorted(_VARS[self.per]))}")
        self.rules: list[str] | None = settings.get("rules")
        self.ok_status = set(settings.get("ok_status") or [200, 201, 202, 204, 404, 410])
        self.timeout = float(settings.get("timeout_s", 30))
        self.target = mask_url(_PLACEHOLDER.sub("…", self.url_t))
        self.client: httpx.Client | None = None
        self._env: dict[str, str] = {}
        self._items: dict[str, list[dict[str, str]]] = {}

    def _templates(self) -> list[str]:
        return [self.url_t, self.body_t or "", *self.headers_t.values(), self.verify_url_t or "", self.verify_body_t or ""]

    def connect(self) -> None:
        for text in self._templates():
            for name, arg in _PLACEHOLDER.findall(text):
                if name == "env":
                    if arg not in os.environ:
                        raise UserError(f"{self.src}: environment variable {arg} is not set; export it or remove {{env:{arg}}}")
                    self._env[arg] = os.environ[arg]
        self.client = httpx.Client(timeout=self.timeout)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def _fill(self, text: str, item: dict[str, str]) -> str:
        return _PLACEHOLDER.sub(lambda m: self._env[m.group(2)] if m.group(1) == "env" else item[m.group(1)], text)

    def _items_for(self, ctx: Context) -> list[dict[str, str]]:
        if self.per == "once":
            return [{"incident": ctx.incident}]
        if self.per == "user":
            return [{"user": u, "incident": ctx.incident} for u in ctx.subjects.ids]
        t = ctx.leaked.table
        rows = t.select(["sha256", "fingerprint", "rule"]).to_pylist()
        seen: dict[str, dict[str, str]] = {}
        for r in rows:
            if self.rules is None or r["rule"] in self.rules:
                seen.setdefault(r["sha256"], {"sha256": r["sha256"], "fingerprint": r["fingerprint"], "incident": ctx.incident})
        return [seen[k] for k in sorted(seen)]

    @staticmethod
    def _digest(item: dict[str, str]) -> str:
        if "sha256" in item:
            return item["sha256"]
        return hashlib.sha256(("user:" + item["user"]).encode()).hexdigest() if "user" in item else "once"

    def plan(self, ctx: Context) -> list[Step]:
        steps = []
        for batch in batches(self._items_for(ctx), ctx.limits.batch):
            digests = tuple(self._digest(i) for i in batch)
            key = step_key(ctx.incident, self.id, digests)
            self._items[key] = batch
            steps.append(Step(key, self.id, f"{self.method} {self.target} × {len(batch):,} ({self.per})", len(batch), digests))
        return steps

    def _request(self, ctx: Context, method: str, url_t: str, body_t: str | None, item: dict[str, str],
                 idempotency_key: str | None) -> httpx.Response | None:
        """One request, retried with backoff on 429, 5xx and transport errors; None when no answer came."""
        import time

        if self.client is None:
            self.connect()
        assert self.client is not None
        headers = {k: self._fill(v, item) for k, v in self.headers_t.items()}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        body = self._fill(body_t, item).encode() if body_t is not None else None
        delay = ctx.limits.backoff_s
        last: httpx.Response | None = None
        for attempt in range(ctx.limits.retries + 1):
            try:
                last = self.client.request(method, self._fill(url_t, item), headers=headers, content=body)
                if last.status_code != 429 and last.status_code < 500:
                    return last
            except httpx.TransportError:
                last = None
            if attempt == ctx.limits.retries:
                return last
            time.sleep(delay)
            delay *= 2
        return last

    def _send(self, ctx: Context, key: str, item: dict[str, str]) -> int:
        idem = hashlib.sha256(f"{key}:{self._digest(item)}".encode()).hexdigest()
        r = self._request(ctx, self.method, self.url_t, self.body_t, item, idem)
        return r.status_code if r is not None else 0

    def execute(self, ctx: Context, step: Step) -> StepOutcome:
        batch = self._items.get(step.key)
        if batch is None:
            return StepOutcome(0, step.count, "batch not planned in this run; plan again")
        if self.client is None:
            self.connect()
        pacer = Pacer(ctx.limits.per_second)
        statuses: dict[int, int] = {}
        for item in batch:
            pacer.wait()
            status = self._send(ctx, step.key, item)
            statuses[status] = statuses.get(status, 0) + 1
        done = sum(n for s, n in statuses.items() if s in self.ok_status)
        detail = ", ".join(f"{n:,} × {s or 'no answer'}" for s, n in sorted(statuses.items()))
        return StepOutcome(done, len(batch) - done, detail)

    def _still_active(self, r: httpx.Response | None) -> bool | None:
        """True/False from the verify answer; None when it says neither (no answer, an unexpected status or body)."""
        if r is None:
            return None
        if r.status_code in self.verify_inactive:
            return False
        if r.status_code not in self.verify_active:
            return None
        if self.verify_field is None:
            return True
        try:
            doc: Any = r.json()
        except ValueError:
            return None
        for part in self.verify_field:
            if not isinstance(doc, dict) or part not in doc:
                return None
            doc = doc[part]
        return doc if isinstance(doc, bool) else None

    def verify(self, ctx: Context) -> Verification:
        if self.verify_url_t is None:
            return Verification(self.id, 0, 0, [f"{self.target}: no `verify_url`, so spillguard cannot check this API's "
                                                "state; check it there"])
        shown = mask_url(_PLACEHOLDER.sub("…", self.verify_url_t))
        pacer = Pacer(ctx.limits.per_second)
        items = self._items_for(ctx)
        active = unknown = 0
        statuses: dict[int, int] = {}
        for item in items:
            pacer.wait()
            r = self._request(ctx, self.verify_method, self.verify_url_t, self.verify_body_t, item, None)
            state = self._still_active(r)
            if state is None:
                unknown += 1
                code = r.status_code if r is not None else 0
                statuses[code] = statuses.get(code, 0) + 1
            elif state:
                active += 1
        details = []
        if active:
            details.append(f"{active:,} of {len(items):,} ({self.per}) still active at {shown}")
        if unknown:
            said = ", ".join(f"{n:,} × {s or 'no answer'}" for s, n in sorted(statuses.items()))
            details.append(f"{unknown:,} of {len(items):,} could not be verified at {shown} ({said}); counted as still active")
        return Verification(self.id, len(items), active + unknown, details)
