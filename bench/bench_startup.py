"""What starting `spillguard` costs: whole commands, process start included, old tree against new, side by side.

    mkdir /tmp/sg-old && git archive OLD_COMMIT spillguard | tar -x -C /tmp/sg-old && cp spillguard/_native*.so /tmp/sg-old/spillguard/
    python bench/bench_startup.py --old /tmp/sg-old --runs 20

Runs each command alternately from the old and the new source tree (PYTHONPATH), `--runs` times each, and
reports the median and mean CPU seconds (user + system, from wait4) and the median wall seconds per start:
`spillguard scan small.jsonl --format json -o out.json` on a demo file of `--records` users, `spillguard --help`,
`spillguard audit --help`, and the bare `from spillguard.cli import main`. The two trees' scan results must be
equal (timing fields aside), so the gain is not bought with a different answer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENTRY = "import sys; from spillguard.cli import main; main()"
IMPORT_ONLY = "from spillguard.cli import main"
_TIMING_KEYS = ("started", "finished", "seconds", "elapsed", "duration")


def run_once(tree: Path, code: str, args: list[str], cwd: Path) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, exit code) of one process running `code` with `args` from `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "100"}
    start = os.times().elapsed
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime, os.times().elapsed - start, proc.returncode


def _strip_times(doc: object) -> object:
    if isinstance(doc, dict):
        return {k: _strip_times(v) for k, v in doc.items() if not any(t in k for t in _TIMING_KEYS)}
    if isinstance(doc, list):
        return [_strip_times(v) for v in doc]
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="source tree of the old code (with its native module)")
    parser.add_argument("--new", type=Path, default=ROOT, help="source tree of the new code (default: this one)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--records", type=int, default=200)
    opts = parser.parse_args()
    trees = {"old": opts.old.resolve(), "new": opts.new.resolve()}

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sys.path.insert(0, str(trees["new"]))
        from spillguard.demo import generate

        generate(work / "demo", users=opts.records, compress=False)
        small = work / "small.jsonl"
        (work / "demo" / "users.jsonl").rename(small)
        size = small.stat().st_size
        commands = {
            f"scan small.jsonl ({opts.records} records, {size / 1024:.0f} KiB) --format json -o out.json":
                (ENTRY, ["scan", str(small), "--format", "json", "-o", "OUT"]),
            "--help": (ENTRY, ["--help"]),
            "audit --help": (ENTRY, ["audit", "--help"]),
            "python -c 'from spillguard.cli import main'": (IMPORT_ONLY, []),
        }  # fmt: skip
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, {opts.runs} runs "
              "each, old and new alternating\n")  # fmt: skip
        print("| command | old CPU s median (mean) | new CPU s median (mean) | new/old CPU | old wall s | new wall s |")
        print("|---|---|---|---|---|---|")
        for label, (code, args) in commands.items():
            cpu: dict[str, list[float]] = {"old": [], "new": []}
            wall: dict[str, list[float]] = {"old": [], "new": []}
            results = {}
            for i in range(opts.runs):
                for name in (("old", "new") if i % 2 == 0 else ("new", "old")):
                    out = work / f"out-{name}.json"
                    c, w, rc = run_once(trees[name], code, [str(out) if a == "OUT" else a for a in args], work)
                    if rc not in (0, 1):
                        raise SystemExit(f"{name}: {label} exited {rc}")
                    cpu[name].append(c)
                    wall[name].append(w)
                    if "OUT" in args:
                        results[name] = _strip_times(json.loads(out.read_text()))
            if results and results["old"] != results["new"]:
                raise SystemExit(f"{label}: old and new trees disagree on the scan result")
            med = {n: statistics.median(v) for n, v in cpu.items()}
            print(f"| `{label}` | {med['old']:.3f} ({statistics.mean(cpu['old']):.3f}) | "
                  f"{med['new']:.3f} ({statistics.mean(cpu['new']):.3f}) | {med['new'] / med['old']:.2f} | "
                  f"{statistics.median(wall['old']):.3f} | {statistics.median(wall['new']):.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
