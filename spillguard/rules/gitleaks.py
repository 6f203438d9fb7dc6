"""A gitleaks configuration (`[[rules]]` with id/regex/secretGroup/entropy/keywords/allowlists) as spillguard rules.

What carries over, and how:
- `regex` is the value pattern, closed by no boundary of its own (gitleaks regexes carry their own), with a leading
  `(?i)` turned into the rule's `ignore_case` and POSIX classes (`[[:alnum:]]`) spelled out for Python's `re`;
- `secretGroup` N (or, when unset, the first capturing group, as gitleaks takes it) becomes the named group
  `secret`: spans, fingerprints and `--secrets-out` digests cover that group only;
- `entropy` is the rule's `min_entropy`;
- allowlists (`[[rules.allowlists]]`, the older `[rules.allowlist]`, and the global `[allowlist]`/`[[allowlists]]`):
  `regexes` become the rule's `allow` (tested against the secret, gitleaks' default `regexTarget`), `stopwords`
  its stopwords. `paths` and `commits` describe files and git history, which a data scan does not have: ignored.
  `regexTarget = "match"` is tested against the secret too, `"line"` is skipped, and `condition = "AND"` is read
  as OR (any part allows): a translated allowlist may allow more than gitleaks would, never less.
- `keywords` are gitleaks' pre-filter for speed; the multi-pattern engine needs none, so they are not used.
- `[extend] useDefault`: spillguard's own built-in rules already cover the issuers of gitleaks' defaults.

A regex that Python's `re` or the scan engine (Vectorscan: no look-arounds, no back-references) cannot compile is
a UserError naming the rule id, raised when the file is loaded, before any scanning.
"""

from __future__ import annotations

import re
from typing import Any

from spillguard.errors import UserError
from spillguard.rules import NO_BOUNDARY  # gitleaks regexes close themselves (\b, terminator groups)

GITLEAKS_PROVIDER = "custom (gitleaks config)"
_POSIX = {
    "alnum": "A-Za-z0-9", "alpha": "A-Za-z", "digit": "0-9", "xdigit": "0-9A-Fa-f", "upper": "A-Z", "lower": "a-z",
    "space": "\\s", "word": "\\w", "punct": "!-/:-@\\[-`{-~", "blank": " \\t", "cntrl": "\\x00-\\x1f", "print": " -~",
    "graph": "!-~",
}


def _posix_classes(regex: str) -> str:
    return re.sub(r"\[:(\w+):\]", lambda m: _POSIX.get(m.group(1), m.group(0)), regex)


def _captures(regex: str, i: int) -> bool:
    """The group opening at `i` captures: plain `(`, or a named group (`(?P<n>`, `(?<n>`, not a look-behind)."""
    if not regex.startswith("(?", i) or regex.startswith("(?P<", i):
        return True
    return regex.startswith("(?<", i) and not regex.startswith(("(?<=", "(?<!"), i)


def _capturing_groups(regex: str) -> list[int]:
    """Positions of the '(' of each capturing group, in order (escapes and character classes skipped)."""
    found: list[int] = []
    i, in_class = 0, False
    while i < len(regex):
        ch = regex[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            if regex[i + 1 : i + 2] == "^":
                i += 1
            if regex[i + 1 : i + 2] == "]":
                i += 1  # a ']' first in a class is a literal
        elif ch == "(" and _captures(regex, i):
            found.append(i)
        i += 1
    return found


def _name_secret_group(regex: str, group: int, where: str) -> str:
    groups = _capturing_groups(regex)
    if group > len(groups):
        raise UserError(f"{where}: secretGroup {group} but the regex has {len(groups)} capturing group(s); fix secretGroup")
    at = groups[group - 1]
    if regex.startswith("(?P<", at):
        close = regex.index(">", at)
        return regex[:at] + "(?P<secret>" + regex[close + 1 :]
    if regex.startswith("(?<", at):
        close = regex.index(">", at)
        return regex[:at] + "(?P<secret>" + regex[close + 1 :]
    return regex[:at] + "(?P<secret>" + regex[at + 1 :]


def _allow_parts(tables: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    regexes: list[str] = []
    stopwords: list[str] = []
    for table in tables:
        if not isinstance(table, dict):
            continue
        if str(table.get("regexTarget", "secret")) == "line":
            continue  # a whole-line allowlist has no line to test in a structured value; see the module docstring
        regexes.extend(_posix_classes(str(r)) for r in table.get("regexes", []) or [])
        stopwords.extend(str(w) for w in table.get("stopwords", []) or [])
    return regexes, stopwords


def _tables(doc: dict[str, Any], single: str, many: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(doc.get(single), dict):
        out.append(doc[single])
    if isinstance(doc.get(many), list):
        out.extend(t for t in doc[many] if isinstance(t, dict))
    return out


def translate(doc: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """spillguard rule tables for the `[[rules]]` of a gitleaks configuration (loaded without examples: a
    gitleaks rule carries none)."""
    rules = doc.get("rules")
    if not isinstance(rules, list) or not rules:
        raise UserError(f"{source}: a gitleaks config needs [[rules]] tables")
    global_regexes, global_stop = _allow_parts(_tables(doc, "allowlist", "allowlists"))
    out: list[dict[str, Any]] = []
    for raw in rules:
        rid = raw.get("id") if isinstance(raw, dict) else None
        where = f"{source}: gitleaks rule {rid or '?'!r}"
        if not isinstance(raw, dict) or not isinstance(rid, str) or not rid:
            raise UserError(f"{where}: every [[rules]] table needs an 'id'")
        regex = raw.get("regex")
        if not isinstance(regex, str) or not regex:
            raise UserError(f"{where}: no 'regex' (a rule on file paths only has nothing to match in data); remove it or add a regex")
        ignore_case = False
        if regex.startswith("(?i)"):
            ignore_case, regex = True, regex[4:]
        if "(?i)" in regex:
            regex = regex.replace("(?i)", "")  # a mid-pattern global flag: Python refuses it; the whole rule goes caseless
            ignore_case = True
        regex = re.sub(r"\(\?<(?![=!])", "(?P<", _posix_classes(regex))  # Go's (?<name>...) in Python's spelling
        group = raw.get("secretGroup")
        if group is not None and (not isinstance(group, int) or group < 0):
            raise UserError(f"{where}: secretGroup must be a whole number")
        if group:
            regex = _name_secret_group(regex, int(group), where)
        elif "(?P<secret>" not in regex and _capturing_groups(regex):
            regex = _name_secret_group(regex, 1, where)
        regexes, stop = _allow_parts(_tables(raw, "allowlist", "allowlists"))
        table: dict[str, Any] = {
            "id": rid,
            "category": "secret",
            "provider": GITLEAKS_PROVIDER,
            "description": str(raw.get("description", "")) or f"gitleaks rule {rid}",
            "value": regex,
            "boundary": NO_BOUNDARY,
            "ignore_case": ignore_case,
            "specific": True,
            "priority": 94,  # above the built-in keyword rules, below issuer formats: the team wrote it for its data
            "allow": regexes + global_regexes,
            "stopwords": stop + global_stop,
        }
        if raw.get("entropy") is not None:
            try:
                table["min_entropy"] = float(raw["entropy"])
            except (TypeError, ValueError):
                raise UserError(f"{where}: entropy must be a number") from None
        out.append(table)
    return out


def check_engine(rules: list[Any], source: str) -> None:
    """Compile the translated rules as the scan will (one Vectorscan database); name the first rule it refuses."""
    from spillguard.detect.matcher import CompileError, compile_rules

    try:
        compile_rules(rules)
        return
    except CompileError:
        pass
    for rule in rules:
        try:
            compile_rules([rule])
        except CompileError as exc:
            raise UserError(
                f"{source}: gitleaks rule {rule.id!r}: regex not supported by the scan engine ({exc}); "
                "rewrite it without look-arounds or back-references, or remove the rule"
            ) from None
