"""PostgreSQL read as COPY text (native decoder, sources/pgtext.py) against the row_to_json reading it replaced:
a table of every common type filled with generated people gives the same Arrow tables, the same scan and the
same copy, odd values included; a block the decoder cannot read is an error naming the table."""

from __future__ import annotations

import random
import subprocess
import sys
import uuid

import pyarrow as pa
import pytest

from spillguard._native import copy_text_columns
from spillguard.safecopy import copy
from spillguard.scan.options import ScanOptions
from spillguard.scan.run import run_scan
from spillguard.sources import pgtext
from spillguard.sources.pgtext import CopyDecodeError, copy_column, text_lines_to_tables
from spillguard.sources.postgres import PostgresTable
from tests import storedata

psycopg = pytest.importorskip("psycopg")
generated = storedata.generated_dataset_fixture("pgtext", seed=5)  # loaded into the `pg` fixture (tests/stores_plugin.py)

PEOPLE = 240
DDL = """CREATE TYPE mood AS ENUM ('calm', 'busy');
CREATE TABLE {name} (
  id bigserial PRIMARY KEY, user_id text, email varchar(120), full_name text, phone text, age int2, visits int4,
  balance numeric(12,2), score numeric, ratio float4, weight float8, active bool, birth_date date,
  signup_at timestamp, seen_at timestamp, login_at timestamptz, wake_time time, tenure interval, device_uuid uuid,
  last_ip inet, home_net cidr, mac macaddr, note_bytes bytea, profile json, settings jsonb, aliases text[],
  lucky int[], notes text, iso_text text, mood mood)"""
COLS = ["user_id", "email", "full_name", "phone", "age", "visits", "balance", "score", "ratio", "weight", "active",
        "birth_date", "signup_at", "seen_at", "login_at", "wake_time", "tenure", "device_uuid", "last_ip", "home_net",
        "mac", "note_bytes", "profile", "settings", "aliases", "lucky", "notes", "iso_text", "mood"]


def _people(rng: random.Random, n: int) -> list[tuple]:
    first = ["Ana", "Ben", "Chloé", "Dev", "Eun", "Ñico", "Zoë", "Øyvind"]
    last = ["Lima", "Okafor", "Müller", "Tanaka", "Novak", "Haddad"]
    rows = []
    for i in range(n):
        blank = i % 7 == 3  # NULL in every nullable column
        name = f"{rng.choice(first)} {rng.choice(last)}"
        email = f"person.{i}@example{rng.randint(1, 9)}.com"
        phone = f"+44 20 7946 {i:04d}"
        ip = f"{rng.randint(11, 200)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        mac = ":".join(f"{rng.randint(0, 255):02x}" for _ in range(6))
        notes = rng.choice([f"call\tback at {phone}\nthen\\write", f"naïve café ☕ {email}", "plain note", "", "tab\there \\N"])
        fraction = f".{rng.randint(0, 999999):06d}" if i % 5 == 0 else ""
        row = (
            f"usr_{i:06d}", email, name if i % 11 else f"{name}\t(\\{i}\\)\r", phone, rng.randint(18, 90),
            rng.randint(0, 10**6), f"{rng.randint(0, 10**6)}.{rng.randint(0, 99):02d}",
            str(rng.randint(0, 999)) if i % 3 else f"{rng.randint(0, 999)}.{rng.randint(1, 9)}",
            rng.random() * 100, rng.choice([0.5, 2.0, 1e-7, 12345.678, -3.25, 1e300]), i % 2 == 0,
            f"19{rng.randint(40, 99)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            f"20{rng.randint(15, 24)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} 10:11:12{fraction}",
            f"20{rng.randint(15, 24)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)} 0{rng.randint(0, 9)}:30:00",
            f"2021-03-0{rng.randint(1, 9)} 12:00:00{fraction}+0{rng.randint(0, 9)}:{rng.choice(['00', '30'])}",
            f"0{rng.randint(0, 9)}:15:00", f"{rng.randint(0, 40)} days {rng.randint(0, 23)} hours",
            str(uuid.UUID(int=rng.getrandbits(128))), ip, f"10.{rng.randint(0, 255)}.0.0/16", mac,
            f"write to {email}".encode() + bytes([0, 9, 92, 255]),
            f'{{\n "contact": {{"email": "{email}", "phone": "{phone}"}},\n "tags": ["a", "b"]}}',
            f'{{"ip": "{ip}", "devices": [{{"mac": "{mac}", "n": {i}}}], "deep": {{"x": {{"y": "{name}"}}}}}}',
            [f"alias.{i}@example.net", None, "tab\there"], [i, i * 2],
            notes, f"{rng.randint(1950, 2005)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}", rng.choice(["calm", "busy"]),
        )
        if blank:
            row = (row[0], *[None] * (len(row) - 1))
        rows.append(row)
    return rows


def _load(url: str, name: str, rows: list[tuple], extra_sql: str = "") -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        if name == "everything":
            conn.execute(DDL.split(";")[0])
        conn.execute(DDL.split(";", 1)[1].format(name=name))
        with conn.cursor() as cur:
            marks = ", ".join(["%s"] * len(COLS))
            cur.executemany(f"INSERT INTO {name} ({', '.join(COLS)}) VALUES ({marks})", rows)
        if extra_sql:
            conn.execute(extra_sql)
        conn.execute(f"ANALYZE {name}")


@pytest.fixture(scope="module")
def tables(pg):
    rng = random.Random(7)
    _load(pg.admin_url, "everything", _people(rng, PEOPLE))
    # Values the JSON reading cannot type in one parse: NaN and Infinity among numbers, nested values whose types
    # clash, a document nested deeper than 64 levels. Such blocks are read as row_to_json lines.
    deep = "[" * 70 + '"deep.person@example.org"' + "]" * 70
    _load(pg.admin_url, "odd_values", _people(rng, 60),
          "UPDATE odd_values SET weight = 'NaN' WHERE id % 9 = 1; UPDATE odd_values SET ratio = '-Infinity' WHERE id = 5;"
          "UPDATE odd_values SET settings = '{\"n\": [1, \"x\"]}' WHERE id = 7;"
          f"UPDATE odd_values SET settings = jsonb_build_object('deep', '{deep}'::jsonb) WHERE id = 12")
    # Dates and times at the edges of what Arrow's reader reads as a timestamp, each group in partitions of its own
    # (20 rows fill 5 pages: ctid partitions of 20 rows split the table between groups).
    with psycopg.connect(pg.admin_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE edge_dates (id int, d date, ts timestamp, tz timestamptz, t text, pad text)")
        conn.execute("ALTER TABLE edge_dates ALTER COLUMN pad SET STORAGE PLAIN")
        groups = [("2020-01-02", "2020-01-02 03:04:05", "2020-01-02 03:04:05+05:30", "2020-01-02T03:04:05Z"),
                  ("0044-03-15 BC", "0044-03-15 12:00:00 BC", "0044-03-15 12:00:00+00 BC", "2020-01-02 03:04"),
                  ("infinity", "10000-01-01 00:00:00", "-infinity", "2020-01-02T03:04:05+02:00"),
                  ("1999-12-31", "2020-01-02 03:04:05.5", "1900-01-01 00:00:00+01", "2020-13-45")]
        for g, values in enumerate(groups):
            for i in range(20):
                conn.execute("INSERT INTO edge_dates VALUES (%s, %s, %s, %s, %s, %s)", (g * 20 + i, *values, rng.randbytes(900).hex()))
        conn.execute("ANALYZE edge_dates")
    yield ["public.everything", "public.odd_values", "public.edge_dates"]
    with psycopg.connect(pg.admin_url, autocommit=True) as conn:
        conn.execute("DROP TABLE everything, odd_values, edge_dates")
        conn.execute("DROP TYPE mood")


def _read_all(url: str, name: str, row_json: bool, **options) -> tuple[list[list[pa.Table]], list[tuple]]:
    from spillguard.sources import open_target

    source = open_target(url, **options)
    reports: list[tuple] = []
    try:
        ds = source.dataset(name)
        read = ds.read_row_json if row_json else ds.read
        return [list(read(p, lambda *a: reports.append(a))) for p in ds.partitions()], reports
    finally:
        source.close()


@pytest.mark.parametrize("partition_rows", [1000, 50, 20])
def test_text_reading_gives_the_row_to_json_tables(pg, tables, partition_rows):
    for name in tables:
        text, text_reports = _read_all(pg.url, name, False, partition_rows=partition_rows)
        rows, row_reports = _read_all(pg.url, name, True, partition_rows=partition_rows)
        assert text_reports == row_reports
        assert len(text) == len(rows) > (1 if partition_rows < 1000 and name != "public.edge_dates" else 0)
        for a, b in zip(text, rows, strict=True):
            assert [t.schema for t in a] == [t.schema for t in b]
            assert [t.to_pylist() for t in a] == [t.to_pylist() for t in b]
    if partition_rows == 20:
        edge = [part[0].schema for part in _read_all(pg.url, "public.edge_dates", False, partition_rows=20)[0]]
        assert [(s.field("d").type, s.field("ts").type, s.field("t").type) for s in edge] == [
            (pa.timestamp("s"), pa.timestamp("s"), pa.timestamp("s")), (pa.string(), pa.string(), pa.timestamp("s")),
            (pa.string(), pa.string(), pa.timestamp("s")), (pa.timestamp("s"), pa.string(), pa.string())]
    everything = pa.concat_tables(t for part in _read_all(pg.url, "public.everything", False)[0] for t in part)
    assert everything.num_rows == PEOPLE
    types = dict(zip(everything.schema.names, everything.schema.types, strict=True))
    # typed as the JSON reading types them: dates as timestamps, nested values as structs and lists
    assert types["id"] == pa.int64() and types["active"] == pa.bool_() and types["weight"] == pa.float64()
    assert types["birth_date"] == pa.timestamp("s") and types["iso_text"] == pa.timestamp("s")
    assert types["signup_at"] == pa.string() and pa.types.is_struct(types["settings"]) and pa.types.is_list(types["aliases"])
    notes = everything.column("notes").to_pylist()
    assert f"call\tback at +44 20 7946 {0:04d}\nthen\\write" in notes or any("\t" in n for n in notes if n)


def _scan(url: str, row_json: bool, monkeypatch, **source_options) -> dict:
    with monkeypatch.context() as m:
        if row_json:
            m.setattr(PostgresTable, "read", PostgresTable.read_row_json)
        result, _ = run_scan([url], ScanOptions(seed=3, workers=1, source_options={"include": ["everything", "odd_values", "edge_dates"], **source_options}))
    doc = result.to_json()
    for key in ("started_at", "finished_at", "duration_s", "elapsed_s"):
        doc.pop(key, None)
    doc.get("summary", {}).pop("duration_s", None)
    return doc


def test_scan_results_equal_the_row_to_json_reading(pg, tables, monkeypatch):
    text = _scan(pg.url, False, monkeypatch, partition_rows=80)
    rows = _scan(pg.url, True, monkeypatch, partition_rows=80)
    assert text == rows
    # ground truth: every person with an e-mail address (one row in 7 is all NULL) is found, in both tables
    people = PEOPLE - len([i for i in range(PEOPLE) if i % 7 == 3])
    emails = [f for f in text["findings"] if f["category"] == "email" and f["dataset"] == "public.everything"]
    assert {f["field"] for f in emails} >= {"email", "profile.contact.email", "aliases[]", "note_bytes"}
    assert max(f["records_matched"] for f in emails) == people
    assert text["summary"]["complete"] is True


def test_copy_destinations_equal(pg, tables, monkeypatch, tmp_path):
    monkeypatch.setenv("SG_COPY_KEY", "5e" * 32)
    fields = "\n".join(f'{c} = "keep"' for c in ["id", *COLS])
    outs = {}
    for row_json in (False, True):
        schema = "via_rows" if row_json else "via_text"
        with psycopg.connect(pg.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        policy = tmp_path / f"{schema}.toml"
        policy.write_text(f'version = 1\n[keys.main]\nenv = "SG_COPY_KEY"\n[datasets."public.everything"]\n'
                          f'to = "{schema}.everything"\n[datasets."public.everything".fields]\n{fields}\n')
        with monkeypatch.context() as m:
            if row_json:
                m.setattr(PostgresTable, "read", PostgresTable.read_row_json)
            result = copy(pg.url, pg.url, policy=policy, verify=False, allow_exposed_destination=True, partition_rows=100)
        assert {d.destination: d.rows for d in result.datasets} == {f"{schema}.everything": PEOPLE}
        with psycopg.connect(pg.admin_url) as conn:
            kinds = conn.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
                                 "AND table_name = 'everything' ORDER BY ordinal_position", (schema,)).fetchall()
            outs[schema] = (kinds, conn.execute(f"SELECT * FROM {schema}.everything ORDER BY id").fetchall())
    with psycopg.connect(pg.admin_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA via_text, via_rows CASCADE")
    assert outs["via_text"] == outs["via_rows"]
    assert len(outs["via_text"][1]) == PEOPLE


def test_a_block_that_is_not_copy_text_names_the_row():
    cols = [copy_column("a", "text", "text", "b", True), copy_column("b", "int4", "int4", "b", True)]
    tabs = list(text_lines_to_tables(b"x\t1\ny\t\\N\n", 1, "t", lambda *a: None, cols))
    assert [t.to_pylist() for t in tabs] == [[{"a": "x", "b": 1}, {"a": "y", "b": None}]]
    for block, why in [(b"x\t1\ny\n", "row 12 has 1 fields, expected 2"), (b"x\t1\ny\t2", "row 12 is not ended"),
                       (b"x\t1\ny\t2\\\n", "row 12 is not ended"), (b"x\t1\t3\n", "row 11 has 3 fields")]:
        with pytest.raises(CopyDecodeError, match=why):
            list(text_lines_to_tables(block, 11, "t", lambda *a: None, cols))


def test_escapes_decode_as_copy_from_reads_them():
    block = b"\\b\\f\\n\\r\\t\\v\\\\\\101\\0618\\x41\\x4g\\xg\\q\t\\N\t\\\\N\t\n"
    rows, cols = copy_text_columns(block, 4)
    assert rows == 1
    values = [pa.Array.from_buffers(pa.binary(), 1, [None if v is None else pa.py_buffer(v), pa.py_buffer(o), pa.py_buffer(d)],
                                    null_count=n).to_pylist()[0] for o, d, v, n, _ in cols]
    assert values == [b"\b\f\n\r\t\v\\A18A\x04gxgq", None, b"\\N", b""]


def _copy_field_reference(raw: bytes) -> bytes | None:
    """One COPY text field as COPY FROM reads it, byte by byte (the decoder's specification)."""
    if raw == b"\\N":
        return None
    out, i = bytearray(), 0
    while i < len(raw):
        c = raw[i]
        i += 1
        if c != 0x5C:
            out.append(c)
            continue
        e = raw[i]
        i += 1
        simple = {ord("b"): 8, ord("f"): 12, ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("v"): 11}
        if e in simple:
            out.append(simple[e])
        elif e == ord("x") and i < len(raw) and chr(raw[i]) in "0123456789abcdefABCDEF":
            digits = 2 if i + 1 < len(raw) and chr(raw[i + 1]) in "0123456789abcdefABCDEF" else 1
            out.append(int(raw[i : i + digits], 16))
            i += digits
        elif ord("0") <= e <= ord("7"):
            j = i
            while j < len(raw) and j - i < 2 and ord("0") <= raw[j] <= ord("7"):
                j += 1
            out.append(int(raw[i - 1 : j], 8) & 0xFF)
            i = j
        else:
            out.append(e)
    return bytes(out)


def _random_field(rng: random.Random) -> bytes:
    """A raw COPY field: plain bytes of any length around the 16- and 32-byte steps, escapes, or null."""
    kind = rng.random()
    if kind < 0.1:
        return b"\\N"
    if kind < 0.15:
        return b""
    size = rng.choice([rng.randint(1, 40), rng.randint(1, 300)])
    plain = bytes(rng.choice(b"abcXYZ019 {}:,\"@\xc3\xa9") for _ in range(size))
    if kind < 0.7:
        return plain
    pieces = [plain]
    for _ in range(rng.randint(1, 4)):
        pieces.insert(rng.randint(0, len(pieces)), rng.choice([b"\\t", b"\\n", b"\\\\", b"\\N", b"\\x4", b"\\x41", b"\\101", b"\\7", b"\\q"]))
    return b"".join(pieces)


@pytest.mark.parametrize("seed", range(6))
def test_the_decoder_equals_copy_from_on_random_blocks(seed):
    """Blocks of random rows (short and long fields, escapes, nulls; some with more rows than the decoder first
    makes room for) decode as the byte-by-byte reading of each field does, column by column."""
    rng = random.Random(seed)
    ncols = rng.choice([1, 2, 5, 19])
    nrows = rng.choice([1, 7, 300, 5000])
    if seed % 2:  # tiny fields: many more rows than bytes / 256 (the recorded field ends must grow)
        fields = [[rng.choice([b"", b"1", b"\\N", b"ab"]) for _ in range(ncols)] for _ in range(nrows)]
    else:
        fields = [[_random_field(rng) for _ in range(ncols)] for _ in range(nrows)]
    block = b"".join(b"\t".join(row) + b"\n" for row in fields)
    rows, cols = copy_text_columns(block, ncols, 1)
    assert rows == nrows
    for i, (off, data, valid, nulls, wide) in enumerate(cols):
        assert not wide
        got = pa.Array.from_buffers(pa.binary(), rows, [None if valid is None else pa.py_buffer(valid), pa.py_buffer(off), pa.py_buffer(data)],
                                    null_count=nulls).to_pylist()
        assert got == [_copy_field_reference(row[i]) for row in fields], (seed, i)


_WIDE_BLOCK_PROBE = """
import resource, sys
from spillguard._native import copy_text_columns
ncols = 1600  # PostgreSQL's most columns
row = b"\\t".join([b"ab"] * ncols) + b"\\n"
block = row * (18_000_000 // len(row))
resource.setrlimit(resource.RLIMIT_AS, (900 << 20, 900 << 20))
rows, cols = copy_text_columns(block, ncols, 1)
print(rows, len(cols))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="address-space limit")
def test_a_wide_tables_block_reserves_room_for_its_fields_only():
    """The decoder reserves each field's end before it counts rows, guessing ~256 bytes a row; a 1,600-column row is
    longer, and the guess must stop at the fields a block can hold (one per byte), not ask for ~0.9 GB (a
    MemoryError under a 900 MB address-space limit, where the decoding itself needs far less)."""
    proc = subprocess.run([sys.executable, "-c", _WIDE_BLOCK_PROBE], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert proc.stdout.split() == ["3750", "1600"]


@pytest.mark.parametrize("seed", range(8))
def test_date_text_columns_type_as_the_json_reading_does(seed):
    """A text column of dates only (`DDDD-DD-DD`) is cast; the cast must give what the JSON reading infers from the
    same strings: timestamps, or the strings when one of them is no date (month 13, 30 February, day 00, year 0)."""
    rng = random.Random(seed)
    rows = rng.choice([1, 5, 400])
    dates = [f"{rng.randint(1900, 2030):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}" for _ in range(rows)]
    if seed % 2:
        odd = [f"{rng.choice([0, 1, 1999, 2000, 2023, 2024, 9999]):04d}-{rng.randint(0, 13):02d}-{rng.randint(0, 32):02d}" for _ in range(20)]
        dates[rng.randrange(rows)] = rng.choice(odd)
    if seed % 4 >= 2 and rows > 1:
        dates[rng.randrange(rows)] = None
    s = pa.array(dates, pa.string())
    typed = pgtext._text(s, rows)
    assert typed.equals(pgtext._text_read_as_json(s, rows))
    if seed % 2 == 0:
        assert pa.types.is_timestamp(typed.type)


def test_a_decode_error_is_a_partition_error_naming_the_table(pg, tables, monkeypatch):
    import spillguard.sources.postgres as pgsrc

    real = pgsrc.select_list
    # The server sends one column fewer than the reader expects: the decoder must refuse the block.
    monkeypatch.setattr(pgsrc, "select_list", lambda columns, text: real(columns[:-1] if text else columns, text))
    result, _ = run_scan([pg.url], ScanOptions(seed=3, workers=1, source_options={"include": ["public.everything"]}))
    doc = result.to_json()
    assert doc["summary"]["complete"] is False
    errors = [e for e in doc["errors"] if e["kind"] == "error"]
    assert errors and all(e["dataset"] == "public.everything" and "public.everything: the server's COPY data cannot be read "
                          "(row 1 has 29 fields, expected 30)" in e["message"] for e in errors)
    assert result.records_scanned == 0


def test_ctrl_c_ends_a_scan_waiting_for_copy_rows(pg, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    with psycopg.connect(pg.admin_url, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION stall_at(n int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
                     "IF n = 3000 THEN PERFORM pg_sleep(120); END IF; RETURN n; END $$")
        conn.execute("CREATE VIEW stalled AS SELECT stall_at(g) AS n, 'person' || g || '@example.com' AS email "
                     "FROM generate_series(1, 5000) g")
    try:
        argv = [sys.executable, "-c", "from spillguard.cli import main; main()", "scan", pg.url, "--include-views",
                "--include", "stalled", "--workers", "1", "--no-progress", "--format", "json", "-o", str(tmp_path / "out.json")]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        with psycopg.connect(pg.admin_url, autocommit=True) as admin:
            deadline = time.monotonic() + 60
            while not admin.execute("SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query LIKE 'COPY%%'").fetchone():
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        time.sleep(0.3)  # the scan now waits for rows the server is not sending
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert time.monotonic() - started < 20  # not the server's 120 s
    finally:
        with psycopg.connect(pg.admin_url, autocommit=True) as conn:
            conn.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep'")
            conn.execute("DROP VIEW stalled")
            conn.execute("DROP FUNCTION stall_at(int)")


def test_bytes_that_are_not_utf8_take_the_json_reading_with_its_warning():
    from spillguard.sources.records import json_lines_to_tables

    cols = [copy_column("a", "text", "text", "b", True), copy_column("b", "int4", "int4", "b", True),
            copy_column("c", "float8", "float8", "b", True)]
    text_reports: list[tuple] = []
    json_reports: list[tuple] = []
    text = list(text_lines_to_tables(b"caf\xe9\\t\t1\tNaN\nok\t\\N\t2.5\n", 7, "t", lambda *a: text_reports.append(a), cols))
    rows = list(json_lines_to_tables(b'{"a":"caf\xe9\\t","b":1,"c":"NaN"}\n{"a":"ok","b":null,"c":2.5}\n', 7, "t",
                                     lambda *a: json_reports.append(a)))
    assert [t.to_pylist() for t in text] == [t.to_pylist() for t in rows] and text_reports == json_reports
    assert text_reports and text_reports[0][1] == 7  # the warning names the row


def test_rows_taken_from_psycopg_one_by_one_give_the_same_tables(pg, tables, monkeypatch):
    import spillguard.sources.postgres as pgsrc

    assert pgsrc.libpq_path() is not None  # here (Linux, psycopg's libpq loaded) rows are taken natively
    native, _ = _read_all(pg.url, "public.everything", False, partition_rows=50)
    monkeypatch.setattr(pgsrc, "libpq_path", lambda: None)  # elsewhere: psycopg's iteration, one row per call
    iterated, _ = _read_all(pg.url, "public.everything", False, partition_rows=50)
    assert [[t.to_pylist() for t in part] for part in native] == [[t.to_pylist() for t in part] for part in iterated]
    assert sum(t.num_rows for part in native for t in part) == PEOPLE


@pytest.mark.parametrize("native", [True, False])
def test_copy_rows_come_in_whole_rows_blocks_of_at_least_block_bytes(pg, tables, monkeypatch, native):
    """Blocks end after the row that reaches BLOCK_BYTES (the native reader writes rows straight into the block and
    puts those past its room aside, appended once the GIL is back): together they are the COPY's output, byte for
    byte, whether libpq is read natively or psycopg hands one row per call."""
    import psycopg

    import spillguard.sources.postgres as pgsrc
    from spillguard.sources.store import WatchedRead

    query = "COPY (SELECT * FROM public.everything) TO STDOUT"
    with psycopg.connect(pg.url) as conn, conn.cursor() as cur, cur.copy(query) as copy:
        expected = b"".join(bytes(chunk) for chunk in copy)
    if not native:
        monkeypatch.setattr(pgsrc, "libpq_path", lambda: None)
    for size in (700, 5000, 1 << 20):
        monkeypatch.setattr(pgsrc, "BLOCK_BYTES", size)
        watched = WatchedRead(lambda: None, 0.0)
        with psycopg.connect(pg.url) as conn, conn.cursor() as cur, cur.copy(query) as copy:
            blocks = [bytes(b) for b in pgsrc.copy_blocks(conn, copy, watched)]
        assert b"".join(blocks) == expected and len(expected) > 20_000
        assert all(b.endswith(b"\n") and len(b) >= size for b in blocks[:-1]) and watched.blocks == len(blocks) - 1
        if size == 700:  # each full block holds the rows up to the first that crosses 700 bytes, no more
            assert all(len(b) - len(b[:-1].rsplit(b"\n", 1)[-1]) - 1 < size for b in blocks[:-1] if b.count(b"\n") > 1)
        if size == 1 << 20:
            assert len(blocks) == 1


def test_json_object_lines_match_arrows_element_wise_join():
    """The native join of the jsonb columns into JSON lines against Arrow's element-wise join (its former path) on
    random values: nulls, empty values, sliced arrays (an offset into the validity bitmap), large strings."""
    import json
    import random

    import pyarrow.compute as pc

    from spillguard._native import json_object_lines

    rng = random.Random(15)
    for trial in range(200):
        rows = rng.randrange(0, 60)
        ncols = rng.randrange(1, 5)
        names = [rng.choice(["a", "devices", "x y", 'q"t', "é"]) + str(i) for i in range(ncols)]
        cols = []
        for _ in range(ncols):
            cut = rng.randrange(0, 9)
            vals = [None if rng.random() < 0.2 else rng.choice(["{}", "[]", '{"k":1}', '"s"', "", "[1,{\"z\":null}]"]) for _ in range(rows + cut)]
            arr = pa.array(vals, pa.large_string() if trial % 3 == 0 else pa.string()).slice(cut)
            cols.append(arr)
        prefixes = [(("{" if i == 0 else ",") + json.dumps(n) + ":").encode() for i, n in enumerate(names)]
        parts: list = []
        for p, arr in zip(prefixes, cols, strict=True):
            parts += [pa.scalar(p.decode()), pc.fill_null(arr.cast(pa.string()), "null")]
        want = b"".join(v.encode() for v in pc.binary_join_element_wise(*parts, pa.scalar("}\n"), "").to_pylist()) if rows else b""
        values = [(a.buffers()[1], a.buffers()[2], a.offset, len(a), pa.types.is_large_string(a.type), a.buffers()[0] if a.null_count else None)
                  for a in cols]
        assert json_object_lines(prefixes, values, rows) == want
    with pytest.raises(ValueError):
        json_object_lines([b"{"], [(pa.array(["x"]).buffers()[1], pa.array(["x"]).buffers()[2], 0, 1, False, None)], 2)
