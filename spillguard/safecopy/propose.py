"""`spillguard policy init`: a commented policy proposed from what a scan found, for a person to review.

Secrets and passwords dropped, direct identifiers (e-mail, phone, MAC, SSID, device names, the subject
id) pseudonymised with HMAC, IPs and locations generalised, dates of birth to the year, health data
and other special categories dropped, free text with personal data inside redacted, the rest kept.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from spillguard.safecopy.plan import leaf_paths
from spillguard.sources import open_target

DROP = {
    "secret": "a credential: copies hold no secrets",
    "password": "a password or hash: copies hold no secrets",
    "health": "health data (GDPR Art. 9): dropped unless you keep it explicitly",
    "credit_card": "payment card number",
    "iban": "bank account number",
    "national_id": "national id number",
    "person_name": "a person's name: no analytic use (hmac it to count people)",
    "postal_address": "a postal address (generalise to a region in the source query if needed)",
}
PSEUDONYMISE = {"email", "phone", "mac_address", "wifi_ssid", "device_name"}
_FREE_TEXT = re.compile(r"(^|[._\[\]])(body|text|message|notes?|comments?|description|content|subject|details?)($|[._\[\]])", re.I)


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _destination_name(dataset: str) -> str:
    base = dataset.rsplit("/", 1)[-1]
    for ext in (".gz", ".zst", ".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    return base.rsplit(".", 1)[-1].lower().replace(" ", "_") or "dataset"


def propose_field(path: str, fam: str | None, categories: dict[str, str], subject: bool) -> tuple[str, str]:
    """(TOML value, comment) for one field, from the categories found in it (category -> confidence)."""
    cats = set(categories)
    found = ", ".join(f"{c} ({conf})" for c, conf in sorted(categories.items()))
    for cat in ("secret", "password"):
        if cat in cats:
            return '"drop"', DROP[cat]
    if len(cats) > 1 or (cats and _FREE_TEXT.search(path) and fam == "text"):
        return '"redact"', f"free text holding {found}: detected values replaced by [category]"
    if subject:
        return '"hmac"', "the subject id: keyed pseudonym, still joins across tables"
    if "health" in cats:
        return '"drop"', DROP["health"]
    if cats & PSEUDONYMISE:
        return '"hmac"', f"{found}: keyed pseudonym (same value, same key -> same pseudonym)"
    if "ip_address" in cats:
        return '{ transform = "generalise", to = "network" }', f"{found}: IPv4 to /24, IPv6 to /48"
    if "geolocation" in cats:
        if fam in ("number", "integer"):
            return '{ transform = "generalise", grid = 0.1 }', f"{found}: coordinates to a 0.1 degree grid (~11 km)"
        return '"drop"', f"{found}: location as text"
    if "date_of_birth" in cats:
        return '{ transform = "generalise", to = "year" }', f"{found}: year of birth only"
    for cat in sorted(cats):
        if cat in DROP:
            return '"drop"', DROP[cat]
    if cats:
        return '"drop"', f"{found}"
    return '"keep"', ""


def _findings(scan: dict[str, Any]) -> tuple[dict[tuple[str, str], dict[str, str]], dict[str, str | None]]:
    by_field: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    rank = {"low": 0, "medium": 1, "high": 2}
    for f in scan.get("findings", []):
        if rank.get(f.get("confidence", "low"), 0) < 1:
            continue
        key = (f["dataset"], f["field"])
        prev = by_field[key].get(f["category"])
        if prev is None or rank[f["confidence"]] > rank[prev]:
            by_field[key][f["category"]] = f["confidence"]
    subjects = {d["dataset"]: d.get("subject_field") for d in scan.get("datasets", [])}
    return by_field, subjects


def propose_policy(source: str, scan: dict[str, Any] | None = None, *, key_env: str = "SPILLGUARD_COPY_KEY",
                   datasets: Iterable[str] | None = None, **source_options: Any) -> str:
    """The proposed policy as TOML text. Without `scan`, the source is scanned first (same rules as `scan`)."""
    if scan is None:
        import spillguard

        scan = spillguard.scan([source], **source_options).to_json()
    by_field, subjects = _findings(scan)
    wanted = set(datasets) if datasets else None
    src = open_target(source, **source_options)
    lines = [
        "# spillguard copy policy, proposed by `spillguard policy init` from a scan. REVIEW IT before copying.",
        "# Every field must be named here: a field that appears later stops the copy (privacy by default).",
        "# Transforms: keep, drop, null, hmac, mask, generalise, fpe, redact (see docs/copy.md).",
        "version = 1",
        "",
        "[keys.main]",
        f"env = {_q(key_env)}   # hex, >= 128 bits: openssl rand -hex 32. Only the key id is recorded in copies.",
    ]
    try:
        for reader in src.datasets():
            if wanted is not None and reader.name not in wanted:
                continue
            from spillguard.safecopy.run import first_table

            table = first_table(reader, reader.partitions())
            schema = table.schema if table is not None else None
            if schema is None:
                lines += ["", f"# {reader.name}: no records, nothing to propose"]
                continue
            paths = leaf_paths(schema)
            subject = subjects.get(reader.name) or reader.subject_field
            lines += ["", f"[datasets.{_q(reader.name)}]", f"to = {_q(_destination_name(reader.name))}",
                      f"[datasets.{_q(reader.name)}.fields]"]
            for path, fam in paths.items():
                value, comment = propose_field(path, fam, by_field.get((reader.name, path), {}), path == subject)
                lines.append(f"{_q(path)} = {value}" + (f"   # {comment}" if comment else ""))
            lines += [f"[datasets.{_q(reader.name)}.types]   # a change of type stops the copy"]
            lines += [f"{_q(path)} = {_q(fam)}" for path, fam in paths.items() if fam is not None]
    finally:
        src.close()
    return "\n".join(lines) + "\n"
