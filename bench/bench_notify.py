"""100,000 Art. 34 notifications to a local SMTP server, with the exactly-once ledger. Target: >= 500 a second.

The SMTP server (aiosmtpd) runs in its own process on a loopback port and writes every accepted
recipient to a file; afterwards the bench checks that every person got exactly one message. The
notices are drafted by `spillguard report` from a scan of generated data; the recipients are generated
(one to three risk groups each). Timed: planning (template rendering for everybody, Art. 34 checks) and
sending (ledger intent, SMTP transaction, ledger outcome per message), then a rerun that must send nothing.

    python bench/bench_notify.py --people 100000 [--durable] [--out /tmp/notes/bench_notify.md]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spillguard.config import SinkConfig  # noqa: E402
from spillguard.respond.notify import Ledger, Notifier, Recipient, SmtpTransport, notices_from_report  # noqa: E402
from tests.servers import free_port  # noqa: E402

CLI = [sys.executable, "-c", "from spillguard.cli import main; main()"]
GROUPS = ["credentials", "health", "financial", "identity", "home", "contact"]
SERVER = """
import asyncio, signal, sys
from aiosmtpd.controller import Controller
out = open(sys.argv[2], "w")
class Handler:
    async def handle_DATA(self, server, session, envelope):
        out.write("\\n".join(envelope.rcpt_tos) + "\\n")
        return "250 OK"
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})  # for sigwait, in every thread
ctl = Controller(Handler(), hostname="127.0.0.1", port=int(sys.argv[1]))
ctl.start()
print("ready", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
ctl.stop()
out.close()
"""


def notices(tmp: Path) -> list[dict]:
    env = dict(os.environ, XDG_STATE_HOME=str(tmp / "state"))
    subprocess.run([sys.executable, "-c", f"from spillguard.demo import generate; generate({str(tmp / 'demo')!r}, users=300, seed=3)"],
                   check=True, env=env)  # fmt: skip
    subprocess.run(CLI + ["scan", str(tmp / "demo"), "-f", "json", "-o", str(tmp / "scan.json")], env=env, capture_output=True)
    subprocess.run(CLI + ["report", str(tmp / "scan.json"), "-f", "json", "-o", str(tmp / "report.json"), "--organisation",
                          "Acme Cameras", "--contact", "our data protection officer, +49 30 1234567"],
                   check=True, env=env, capture_output=True)  # fmt: skip
    out = notices_from_report(tmp / "report.json")
    for n in out:  # what the operator fills in before sending
        n["what_happened"] = n["what_happened"].split(" [")[0] + " A configuration mistake removed its password."
        n["measures"] = ["We closed access to the database on 26 December." if m.startswith("[") else m for m in n["measures"]]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=100_000)
    ap.add_argument("--durable", action="store_true", help="ledger with synchronous=FULL (an fsync per commit)")
    ap.add_argument("--connections", type=int, default=4, help="SMTP connections in parallel")
    ap.add_argument("--out")
    args = ap.parse_args()
    key = bytes.fromhex("42" * 32)
    rng = random.Random(2019)
    people = [Recipient(f"user{i}@mail{i % 97}.example", tuple(rng.sample(GROUPS, rng.randint(1, 3)))) for i in range(args.people)]

    with tempfile.TemporaryDirectory(prefix="sg-bench-notify-") as d:
        tmp = Path(d)
        drafted = notices(tmp)
        port = free_port()
        received = tmp / "received.txt"
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(received)], stdout=subprocess.PIPE, text=True)
        assert server.stdout and server.stdout.readline().strip() == "ready"
        try:
            cfg = SinkConfig(type="smtp", host="127.0.0.1", port=port, sender="privacy@acme.example", timeout=30)

            def notifier() -> Notifier:
                return Notifier(incident="bench", notices=drafted, transport=SmtpTransport(cfg),
                                ledger=Ledger(tmp / "ledger.db", durable=args.durable), key=key, organisation="Acme",
                                connections=args.connections)  # fmt: skip

            n = notifier()
            t0 = time.perf_counter()
            messages, _ = n.plan(people)
            t_plan = time.perf_counter() - t0
            t0, c0 = time.perf_counter(), time.process_time()
            res = n.run(people)
            t_run, c_run = time.perf_counter() - t0, time.process_time() - c0
            t0 = time.perf_counter()
            rerun = notifier().run(people)
            t_rerun = time.perf_counter() - t0
        finally:
            server.send_signal(signal.SIGTERM)
            _, status, usage = os.wait4(server.pid, 0)
            server.returncode = os.waitstatus_to_exitcode(status)
            c_server = usage.ru_utime + usage.ru_stime
        lines = received.read_text().split()
        exactly_once = len(lines) == len(set(lines)) == args.people
        ledger_bytes = sum(p.stat().st_size for p in tmp.glob("ledger.db*"))

    rate = args.people / t_run
    report = {
        "people": args.people, "durable": args.durable, "connections": args.connections, "plan_s": round(t_plan, 2), "run_s": round(t_run, 2),
        "per_second": round(rate), "send_only_per_second": round(args.people / max(t_run - t_plan, 1e-9)),
        "client_cpu_ms_per_message": round(1000 * c_run / args.people, 3),
        "server_cpu_ms_per_message_incl_rerun_idle": round(1000 * c_server / args.people, 3),
        "rerun_s": round(t_rerun, 2), "rerun_sent": rerun.sent, "sent": res.sent, "received": len(lines),
        "exactly_once": exactly_once, "ledger_mb": round(ledger_bytes / 1e6, 1), "messages_planned": len(messages),
    }  # fmt: skip
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if not exactly_once or res.sent != args.people or rerun.sent != 0:
        sys.exit("bench_notify: not exactly once")


if __name__ == "__main__":
    main()
