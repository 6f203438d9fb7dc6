"""Every rule matches its own examples and none of its negative examples (rules test themselves)."""

from __future__ import annotations

import pytest

import spillguard
from spillguard.errors import UserError
from spillguard.model import CATEGORIES
from spillguard.rules import Rule, builtin_rules, load_rule_file, select_rules, spans_lines_of

RULES = builtin_rules()


def _ids(rule, kind):
    return [f"{rule.id}:{kind}:{i}" for i in range(len(getattr(rule, kind)))]


POSITIVE = [(r, e) for r in RULES for e in r.examples]
NEGATIVE = [(r, e) for r in RULES for e in r.negative_examples]


@pytest.mark.parametrize(("rule", "example"), POSITIVE, ids=[f"{r.id}:{e.value[:30]}" for r, e in POSITIVE])
def test_rule_matches_its_examples(rule, example):
    matches = spillguard.scan_value(example.value, example.field)
    assert rule.id in {m.rule for m in matches}, f"{rule.id} did not match {example}: got {matches}"


@pytest.mark.parametrize(("rule", "example"), NEGATIVE, ids=[f"{r.id}:{e.value[:30]}" for r, e in NEGATIVE])
def test_rule_rejects_its_negative_examples(rule, example):
    matches = spillguard.scan_value(example.value, example.field)
    assert rule.id not in {m.rule for m in matches}, f"{rule.id} matched negative {example}: {matches}"


def test_every_category_has_rules_and_every_rule_a_known_category():
    assert {r.category for r in RULES} == set(CATEGORIES)


def test_value_patterns_report_one_end_per_token():
    """Open-ended token patterns must be closed by a boundary, or Vectorscan fires once per character."""
    import pyarrow as pa

    from spillguard.detect.engine import RuleSet

    ruleset = RuleSet(RULES)
    for rule in RULES:
        if not rule.is_value_rule:
            continue
        for ex in rule.examples:
            rule_idx, _ = ruleset._raw_hits(pa.array([ex.value]))
            own = int((rule_idx == RULES.index(rule)).sum())
            # a few ends are fine (e.g. b.co and b.co.uk); one per character is not
            assert own <= 4, f"{rule.id}: {own} raw match ends for one example"


def test_user_rule_file_adds_a_rule(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text(
        '[[rule]]\nid = "acme_key"\ncategory = "secret"\nvalue = \'\'\'acme_[a-z0-9]{16}\'\'\'\nspecific = true\n'
        'examples = ["acme_7f3a9c1e5b2d8046"]\nnegative_examples = ["acme_short"]\n'
    )
    rules = select_rules([f])
    assert "acme_key" in {r.id for r in rules}
    from spillguard.detect.engine import RuleSet

    matches = spillguard.scan_value("key acme_7f3a9c1e5b2d8046", rules=RuleSet(rules))
    assert [m.rule for m in matches] == ["acme_key"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[[rule]]\nid='x'\ncategory='nope'\nvalue='a'\nexamples=['a']\n", "category 'nope'"),
        ("[[rule]]\nid='x'\ncategory='secret'\nexamples=['a']\n", "needs a 'value'"),
        ("[[rule]]\nid='x'\ncategory='secret'\nvalue='a'\n", "examples"),
        ("[[rule]]\nid='x'\ncategory='secret'\nvalue='('\nexamples=['a']\n", "invalid pattern"),
        ("[[rule]]\nid='x'\ncategory='secret'\nvalue='a'\nexamples=['a']\ncolour='red'\n", "unknown key"),
        ("[[rule]]\nid='x'\ncategory='secret'\nfield='key'\ncheck='vibes'\nexamples=['a']\n", "check 'vibes' is not one of blood_type, date"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_rule_files_are_user_errors(tmp_path, content, message):
    f = tmp_path / "bad.toml"
    f.write_text(content)
    with pytest.raises(UserError, match=message):
        load_rule_file(f)


def test_only_and_except_select_by_rule_or_category():
    assert {r.category for r in select_rules(only=["email"])} == {"email"}
    assert "email" not in {r.id for r in select_rules(exclude=["email"])}
    with pytest.raises(UserError, match="--only bogus"):
        select_rules(only=["bogus"])


def test_overlaps_resolve_to_the_most_specific_rule():
    # an e-mail is not also a name/url; an IP is not also a phone
    assert [m.category for m in spillguard.scan_value("Max.Power@Example.COM")] == ["email"]
    assert [m.category for m in spillguard.scan_value("192.168.100.200")] == ["ip_address"]
    assert [m.category for m in spillguard.scan_value("4111 1111 1111 1111")] == ["credit_card"]


def test_built_in_rules_parsed_once_then_read_from_the_cache(tmp_path, monkeypatch):
    """The built-in files' parsed tables are cached under a digest of their bytes (owner-only): a later start
    reads them without parsing TOML and gets the same rules; a damaged entry is parsed again and rewritten."""
    import stat
    import tomllib

    import orjson

    import spillguard.rules as rules_module

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    parsed = rules_module.builtin_rules()
    entries = list((tmp_path / "spillguard" / "rules").iterdir())
    assert len(entries) == 1 and stat.S_IMODE(entries[0].stat().st_mode) == 0o600
    direct = [
        rule
        for entry in sorted(rules_module.resources.files("spillguard.rules").iterdir(), key=lambda p: p.name)
        if entry.name.endswith(".toml")
        for rule in rules_module._rules_from_doc(tomllib.loads(entry.read_text("utf-8")), f"builtin:{entry.name}")
    ]
    assert parsed == direct

    def no_parsing(_text):
        raise AssertionError("parsed TOML although the cache holds the files")

    monkeypatch.setattr(rules_module.tomllib, "loads", no_parsing)
    assert rules_module.builtin_rules() == direct
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    entries[0].write_bytes(b'[["contact.toml", {"rule": [')  # cut short
    assert rules_module.builtin_rules() == direct
    files = sorted({rule.source.removeprefix("builtin:") for rule in direct})
    assert [name for name, _doc in orjson.loads(entries[0].read_bytes())] == files  # whole again
    assert len(list(entries[0].parent.iterdir())) == 1  # rewritten in place, nothing left aside


def test_an_edited_rule_file_is_parsed_again(tmp_path, monkeypatch):
    """The cache entry is named by the files' bytes: a changed file misses it and its new tables are used."""
    import shutil

    import spillguard.rules as rules_module

    package = tmp_path / "rules"
    package.mkdir()
    for entry in rules_module.resources.files("spillguard.rules").iterdir():
        if entry.name.endswith(".toml"):
            shutil.copyfile(str(entry), package / entry.name)
    monkeypatch.setattr(rules_module.resources, "files", lambda _package: package)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    before = {r.id: r.description for r in rules_module.builtin_rules()}
    contact = package / "contact.toml"
    text = contact.read_text("utf-8")
    first = next(r for r in rules_module.builtin_rules() if r.source == "builtin:contact.toml")
    edited = "x" * len(first.description)  # the same size: only the bytes tell the files apart
    contact.write_text(text.replace(first.description, edited, 1), "utf-8")
    assert contact.stat().st_size == len(text.encode())
    after = {r.id: r.description for r in rules_module.builtin_rules()}
    assert after[first.id] == edited != before[first.id]
    assert len(list((tmp_path / "cache" / "spillguard" / "rules").iterdir())) == 2  # one entry per version of the files


def test_which_rules_span_lines_is_kept_in_the_cache_as_read(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    rules = [*builtin_rules(), Rule(id="fax", category="phone", value=r"Fax:\s+[0-9]{6}"), Rule(id="n", category="phone", value="[0-9]{6}")]
    read = spans_lines_of(rules)
    assert read == [r.spans_lines() for r in rules] and read[-2:] == [True, False] and any(read[:-2])
    monkeypatch.setattr(Rule, "spans_lines", lambda self: pytest.fail("read again"))
    assert spans_lines_of(rules) == read  # loaded
