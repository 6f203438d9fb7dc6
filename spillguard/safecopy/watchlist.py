"""`copy --watch-config spillguard.toml`: the destination joins the watch list, so `spillguard watch` alerts
within an interval when it loses its protection.

The entry is a `[[target]]` with the destination's URL as an outsider sees it (user and host, never a
password: watch audits as an outsider). The file is edited with tomlkit so the user's comments and layout
stay (the entry is appended to the text); an entry for the same store and path is not added twice. The file is checked (valid, writable)
before the copy starts and written atomically (same mode) after it committed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomlkit
from tomlkit.exceptions import TOMLKitError

from spillguard.config import parse_config
from spillguard.errors import UserError
from spillguard.outfiles import private_file
from spillguard.safecopy.destinations import Destination
from spillguard.targets import mask_url, store_key


def _same_place(a: str, b: str) -> bool:
    try:
        return store_key(a) == store_key(b) and urlsplit(a).path.rstrip("/") == urlsplit(b).path.rstrip("/")
    except (UserError, ValueError):
        return False


def _load(path: Path) -> tomlkit.TOMLDocument:
    if not path.exists():
        return tomlkit.document()
    try:
        doc = tomlkit.parse(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--watch-config {path}: cannot read it ({exc})") from None
    except TOMLKitError as exc:
        raise UserError(f"--watch-config {path}: not valid TOML ({exc})") from None
    parse_config(doc.unwrap(), str(path), base=path.parent)  # the watch must still read it: same checks
    return doc


def prepare_watch(path: str | Path, dest: Destination) -> Path:
    """Check, before the copy, that the destination can be watched and the file read and written."""
    p = Path(path)
    if dest.audit_url is None:
        raise UserError(f"--watch-config: {dest.target} is a local file or SQLite database; watch audits stores "
                        "reachable over the network, so there is nothing to add")
    if p.is_dir():
        raise UserError(f"--watch-config {p}: is a folder; name the spillguard.toml file")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"--watch-config {p}: folder {folder} does not exist")
    if (p.exists() and not os.access(p, os.W_OK)) or not os.access(folder, os.W_OK):
        raise UserError(f"--watch-config {p}: not writable; fix its permissions or choose another file")
    _load(p)
    return p


def add_to_watch(path: Path, dest: Destination) -> dict[str, Any]:
    """Add the destination as a [[target]] unless one for the same store and path is there already."""
    assert dest.audit_url is not None
    url = dest.audit_url
    doc = _load(path)
    targets = doc.get("target") or []
    if any(_same_place(str(t.get("url", "")), url) for t in targets if isinstance(t, dict)):
        return {"config": str(path), "url": mask_url(url), "added": False}
    entry = tomlkit.table()
    entry.add(tomlkit.comment("added by `spillguard copy --watch-config`: an analytics copy to keep protected"))
    entry.add("name", f"copy: {mask_url(url)}")
    entry.add("url", url)
    block = tomlkit.document()
    block.append("target", tomlkit.aot())
    block["target"].append(entry)
    # Appended as text: every byte the user wrote stays as it was ([[target]] may follow anything).
    original = path.read_text() if path.exists() else ""
    text = (original.rstrip("\n") + "\n\n" if original.strip() else "") + tomlkit.dumps(block)
    try:
        parse_config(tomlkit.parse(text).unwrap(), str(path), base=path.parent)
    except TOMLKitError as exc:
        raise UserError(f"--watch-config {path}: the destination cannot be added as a [[target]] ({exc}); add it by hand") from None
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o600
    with private_file(path) as fh:
        fh.write(text.encode())
    os.chmod(path, mode)
    return {"config": str(path), "url": mask_url(url), "added": True}
