"""Arrow readers that parse bytes held by Python start no Arrow pool thread.

A pool thread that drops the last reference to a Python-held buffer takes the GIL; when that happens while the
interpreter shuts down, the thread is ended mid C++ frame and the whole process aborts after its work is done
("terminate called without an active exception", exit -6; apache/arrow#34314). A CLI is a short-lived process,
so these readers parse on the calling thread. Each case runs in a fresh interpreter, whose Arrow pools have
started no thread yet, and counts the process's threads before and after the read.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests import ROOT

PRELUDE = """
import os, sys, json
import pyarrow as pa, pyarrow.parquet as pq
def threads():
    return len(os.listdir("/proc/self/task"))
"""

CASES = {
    # respond: the user ids in JSON session values (one JSON Lines buffer of the values read from the store)
    "session_values_json": """
from spillguard.respond.session_values import SessionDecoder
values = [json.dumps({"user": {"id": i}, "csrf": "x" * 40}).encode() for i in range(20_000)]
before = threads()
users = SessionDecoder("json", "user.id").users(values)
""",
    # respond: the (ctid, digest) rows of PostgreSQL's COPY output. Arrow's CSV reader always reads ahead on one
    # I/O thread: copy_rows hands it Arrow's own copy of the bytes (nothing of Python's), and that thread is started
    # first here, by a read of Arrow-owned bytes, so that what is counted is the parse threads.
    "respond_sql_copy_rows": """
import pyarrow.csv as pcsv
from spillguard.respond.sql import copy_rows
pa.set_io_thread_count(1)
pcsv.read_csv(pa.BufferReader(pa.array([b"a,b\\n1,2\\n"], pa.binary()).buffers()[2]),
              read_options=pcsv.ReadOptions(use_threads=False))
chunks = [memoryview(b"".join(b"(%d,%d)\\t%064x\\n" % (i // 50, i % 50, i) for i in range(j, j + 1000)))
          for j in range(0, 50_000, 1000)]
before = threads()
rows = copy_rows(chunks, ["ctid", "digest"])
assert rows.num_rows == 50_000 and rows["ctid"][51].as_py() == "(1,1)"
""",
    # scan: a block of documents (Elasticsearch, MongoDB, Redis values)
    "records_block": """
from spillguard.sources.records import _read_block
data = b"\\n".join(json.dumps({"email": f"u{i}@example.com", "n": i}).encode() for i in range(50_000))
before = threads()
assert _read_block(data).num_rows == 50_000
""",
    # scan: a Parquet object read through its Python stream (a bucket's object), row group by row group
    "parquet_through_a_stream": """
import tempfile
from pathlib import Path
from spillguard.sources.files import FileDataset, LocalFile
path = Path(tempfile.mkdtemp()) / "p.parquet"
pq.write_table(pa.table({"email": [f"u{i}@example.com" for i in range(60_000)], "n": list(range(60_000))}), path,
               row_group_size=20_000)
class Remote(LocalFile):
    @property
    def path(self):
        return None
    @property
    def remote(self):
        return True
remote = Remote(path)
dataset = FileDataset(remote, "p.parquet", "parquet", None)
before = threads()
assert sum(t.num_rows for t in dataset._parquet(remote, None, lambda *a: None)) == 60_000
""",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_reader_of_python_held_bytes_starts_no_arrow_thread(case: str) -> None:
    code = PRELUDE + textwrap.dedent(CASES[case]) + "\nprint(json.dumps([before, threads()]))\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    before, after = json.loads(proc.stdout.splitlines()[-1])
    assert after == before, f"{case}: {after - before} Arrow pool thread(s) started"
