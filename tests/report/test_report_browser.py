"""The HTML report in a real browser: headless Chromium over the DevTools protocol.

Chromium loads the report from a file URL while every network request the page makes is logged
(Network.requestWillBeSent) and every console/CSP message is collected; the DOM is then queried for the
charts and tables, and a full-page screenshot is saved. A control page with external references proves
the request logger sees what it must catch. In CI (CI=true) a missing Chromium fails the test.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from spillguard.report import build_report, render
from tests.report.test_report_data import T0, make_history, make_store

try:
    import websocket  # websocket-client, from the test extra
except ModuleNotFoundError:
    if os.environ.get("CI", "").lower() == "true":
        raise  # in CI a missing browser driver is a failure, never a silent skip
    pytest.skip("pip install websocket-client (test extra)", allow_module_level=True)

HOUR = timedelta(hours=1)
CHROMIUM = os.environ.get("SPILLGUARD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-allow-origins=*",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",  # Chromium picks a free port and writes it to DevToolsActivePort
]


def _chromium_or_fail() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    message = "headless Chromium is needed for the HTML report test: apt-get install -y chromium"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


class DevTools:
    """A minimal DevTools client: one page, commands with ids, events kept in arrival order."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        self.ws.settimeout(60)  # wait_for/drain shorten it; a full-page screenshot can take seconds
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, event: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(e["method"] == event for e in self.events):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {event} within {timeout}s")
            self.ws.settimeout(max(deadline - time.monotonic(), 0.1))
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)

    def drain(self, seconds: float) -> None:
        """Collect late events (a lazy image, a font) for a while after the load event."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ws.settimeout(max(end - time.monotonic(), 0.05))
            try:
                msg = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                break
            if "method" in msg:
                self.events.append(msg)

    def evaluate(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in res:
            raise AssertionError(res["exceptionDetails"])
        return res["result"].get("value")

    def requests(self) -> list[str]:
        return [
            e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"
        ]

    def console(self) -> list[str]:
        out = [e["params"]["entry"]["text"] for e in self.events if e["method"] == "Log.entryAdded"]
        out += [
            " ".join(str(a.get("value", "")) for a in e["params"].get("args", []))
            for e in self.events
            if e["method"] == "Runtime.consoleAPICalled"
        ]
        return out


@pytest.fixture(scope="module")
def browser() -> Iterator[str]:
    """A headless Chromium of our own; yields the DevTools HTTP endpoint."""
    exe = _chromium_or_fail()
    profile = tempfile.mkdtemp(prefix="sg-chromium-")
    proc = subprocess.Popen(
        [exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"Chromium did not start (exit code {proc.poll()})")
            time.sleep(0.1)
        port_line, browser_path = port_file.read_text().splitlines()[:2]
        yield f"http://127.0.0.1:{int(port_line)}"
        # A polite Browser.close lets Chromium reap its own helper processes; SIGTERM would orphan them.
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{int(port_line)}{browser_path}", timeout=10, suppress_origin=True
        )
        ws.send(json.dumps({"id": 1, "method": "Browser.close"}))
        ws.close()
        proc.wait(timeout=20)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)


def _open_page(endpoint: str, url: str, width: int = 1280) -> DevTools:
    # Chromium only creates targets on PUT (a GET from a web page must not open tabs).
    request = urllib.request.Request(f"{endpoint}/json/new?about:blank", method="PUT")
    with urllib.request.urlopen(request, timeout=10) as resp:
        target = json.load(resp) if resp.status == 200 else None
    assert target, "DevTools did not create a page"
    dt = DevTools(target["webSocketDebuggerUrl"])
    dt.target_id = target["id"]  # type: ignore[attr-defined]
    for domain in ("Network", "Page", "Log", "Runtime"):
        dt.send(f"{domain}.enable")
    dt.send("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False)
    dt.send("Page.navigate", url=url)
    dt.wait_for("Page.loadEventFired")
    dt.drain(1.0)
    return dt


def _close_page(endpoint: str, dt: DevTools) -> None:
    dt.ws.close()
    urllib.request.urlopen(f"{endpoint}/json/close/{dt.target_id}", timeout=10).close()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("html")
    es, _ = make_store("http://es.internal:9200", 2400, seed=51, started=T0 + 520 * HOUR)
    pg, _ = make_store("postgresql://app@db.internal:5432/prod", 900, seed=52, started=T0 + 521 * HOUR)
    base, _ = make_store("http://es.internal:9200", 2000, seed=51, started=T0 - 240 * HOUR)
    db = tmp / "watch.sqlite"
    make_history(
        db,
        {
            "http://***@es.internal:9200": [
                (T0 - 48 * HOUR, "protected"),
                (T0 + 3 * HOUR, "open-read"),
                (T0 + 529 * HOUR, "protected"),
            ],
            "postgresql://***@db.internal:5432": [(T0 - 48 * HOUR, "protected")],
        },
        timedelta(hours=2),
    )
    report = build_report(
        [es, pg], history=str(db), baseline=base, organisation="Example Cams Ltd", contact="dpo@example.com"
    )
    t = time.perf_counter()
    html = render(report, "html")
    render_seconds = time.perf_counter() - t
    path = tmp / "report.html"
    path.write_text(html, encoding="utf-8")
    return {"path": path, "report": report, "html": html, "render_seconds": render_seconds, "tmp": tmp}


def test_report_renders_in_chromium_with_charts_tables_and_no_request(
    browser: str, report_file: dict[str, Any]
) -> None:
    path: Path = report_file["path"]
    r = report_file["report"]
    page_url = path.resolve().as_uri()
    dt = _open_page(browser, page_url)
    try:
        # The only request is the document itself.
        assert dt.requests() == [page_url], dt.requests()
        assert not [m for m in dt.console() if "Content Security Policy" in m or "Refused" in m], dt.console()
        dom = dt.evaluate(
            """(() => {
              const q = (s) => document.querySelectorAll(s);
              const rows = (id) => document.querySelectorAll('#' + id + ' tbody tr:not(.group)').length;
              const box = (id) => { const b = document.getElementById(id).getBoundingClientRect();
                                    return [Math.round(b.width), Math.round(b.height)]; };
              return {
                title: document.title,
                charts: [...q('svg.chart')].map(s => s.id),
                chartSizes: ['chart-categories', 'chart-stores', 'chart-timeline'].map(box),
                categoryBars: q('#chart-categories rect.bar').length,
                storeBars: q('#chart-stores rect.bar').length,
                exposedBars: q('#chart-timeline rect.exposed').length,
                tables: [...q('table[id]')].map(t => t.id),
                categoryRows: rows('categories-table'),
                fieldRows: rows('fields-table'),
                storeRows: rows('stores-table'),
                notices: q('article.letter').length,
                people: document.getElementById('people-affected').textContent.trim(),
                scrollHeight: document.documentElement.scrollHeight,
                overflowing: [...q('table')].filter(t => t.scrollWidth > t.parentElement.clientWidth + 2).length,
              };
            })()"""
        )
        assert dom["charts"] == ["chart-categories", "chart-stores", "chart-timeline"]
        assert all(w > 600 and h > 80 for w, h in dom["chartSizes"]), dom["chartSizes"]
        assert dom["categoryBars"] == len(r.scope["categories"])  # the chart shows the exposed store
        assert dom["categoryRows"] == len(r.categories)  # the table keeps the inventory
        assert dom["storeBars"] == len(r.stores) == dom["storeRows"] == 2
        assert dom["exposedBars"] == 1
        assert {
            "exposure-table",
            "categories-table",
            "stores-table",
            "datasets-table",
            "fields-table",
            "secrets-table",
            "consequences-table",
            "diff-categories-table",
            "store-categories-table",
        } <= set(dom["tables"])
        assert dom["fieldRows"] == len(r.fields)
        assert dom["notices"] == len(r.art34) >= 4
        assert dom["people"] == str(r.scope["people_affected"]) == "2,400"
        assert "Example Cams Ltd" in dom["title"]

        # Full-page screenshot, kept for a person to look at.
        height = min(int(dom["scrollHeight"]), 16000)
        dt.send(
            "Emulation.setDeviceMetricsOverride", width=1280, height=height, deviceScaleFactor=1, mobile=False
        )
        shot = dt.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        png = base64.b64decode(shot["data"])
        out_dir = Path(os.environ.get("SPILLGUARD_SCREENSHOT_DIR") or report_file["tmp"])
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.png").write_bytes(png)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width_px, height_px = struct.unpack(">II", png[16:24])
        assert width_px == 1280 and height_px == height
        assert len(png) > 50_000  # a rendered page, not a blank one
        print(
            f"\nscreenshot: {out_dir / 'report.png'}  html: {len(report_file['html']):,} bytes  "
            f"render: {report_file['render_seconds'] * 1000:.0f} ms"
        )
    finally:
        _close_page(browser, dt)


def test_report_without_its_csp_still_requests_nothing(browser: str, report_file: dict[str, Any]) -> None:
    """The CSP would hide a stray reference by blocking it; without it, the page itself must need nothing."""
    html = report_file["html"]
    stripped = html.replace('<meta http-equiv="Content-Security-Policy"', '<meta name="x-removed-csp"', 1)
    assert stripped != html
    path = report_file["tmp"] / "no-csp.html"
    path.write_text(stripped, encoding="utf-8")
    dt = _open_page(browser, path.resolve().as_uri())
    try:
        assert dt.requests() == [path.resolve().as_uri()], dt.requests()
    finally:
        _close_page(browser, dt)


def test_request_logger_catches_external_references(browser: str, tmp_path: Path) -> None:
    """Control: if the report did reference something, this test setup would see it."""
    page = tmp_path / "control.html"
    page.write_text(
        "<!DOCTYPE html><html><head><link rel='stylesheet' href='http://127.0.0.1:9/style.css'>"
        "<style>body{background:url(http://127.0.0.1:9/bg.png)}</style></head>"
        "<body><img src='http://127.0.0.1:9/pixel.png'><p>x</p></body></html>"
    )
    dt = _open_page(browser, page.resolve().as_uri())
    try:
        external = sorted(u for u in dt.requests() if u.startswith("http"))
        assert "http://127.0.0.1:9/pixel.png" in external and "http://127.0.0.1:9/style.css" in external
    finally:
        _close_page(browser, dt)


def test_html_renders_fast_and_stays_small(report_file: dict[str, Any]) -> None:
    assert report_file["render_seconds"] < 2.0
    assert len(report_file["html"]) < 400_000
