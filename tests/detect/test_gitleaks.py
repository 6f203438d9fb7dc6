"""`--rules` accepts a gitleaks configuration: its rules are translated (secretGroup, entropy, allowlists,
POSIX classes, (?i)) and scan like built-in ones; a regex the engine cannot run is one line naming the rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import spillguard
from spillguard.detect.engine import RuleSet
from spillguard.errors import UserError
from spillguard.rules import load_rule_file, select_rules
from spillguard.rules.gitleaks import GITLEAKS_PROVIDER

CONFIG = Path(__file__).parent / "data" / "gitleaks.toml"
ROOT = Path(spillguard.__file__).parent.parent

PLANTED = {
    "acme-api-key": ("deploy used acme_8f3k2m9q1x7v4b6n0c5z8w2r7t1y3u9p yesterday", "acme_8f3k2m9q1x7v4b6n0c5z8w2r7t1y3u9p"),
    "acme-generic-credential": ("ACME_TOKEN = Qm8vT2pLx9RzW4kN7bYc3HdF", "Qm8vT2pLx9RzW4kN7bYc3HdF"),
    "acme-deploy-token": ("token acmedt_Z8q3Lm9Px2Rv7Tb4Nc6Wd1Yk end", "acmedt_Z8q3Lm9Px2Rv7Tb4Nc6Wd1Yk"),
    "acme-webhook": ("POST https://hooks.acme.example/v2/123456/Hq3vN7xZk2LmP9wR4tYb8cJ5dF1gS6aE", "Hq3vN7xZk2LmP9wR4tYb8cJ5dF1gS6aE"),
}
SILENT = [
    "acme_test_8f3k2m9q1x7v4b6n0c5z8w2r7t1y3u9p",  # global allowlist regex
    "ACME_TOKEN = ACME_TOKEN_VALUE",  # rule allowlist regex (and a constant's name)
    "acme_pw = example-value-123456",  # rule stopword
    "acme_key = aaaaaaaabbbbbbbb",  # below the rule's entropy
    "token acmedt_000000000000000000000000 end",  # old-style [rules.allowlist]
    "ACME_TOKEN = notasecret-Qm8vT2pLx9Rz",  # global stopword
]


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return RuleSet(select_rules([CONFIG], only=[r.id for r in load_rule_file(CONFIG)]))


def test_the_config_translates_rule_by_rule():
    rules = {r.id: r for r in load_rule_file(CONFIG)}
    assert set(rules) == {"acme-api-key", "acme-generic-credential", "acme-session", "acme-deploy-token", "acme-webhook"}
    assert all(r.category == "secret" and r.provider == GITLEAKS_PROVIDER for r in rules.values())
    assert rules["acme-api-key"].ignore_case and rules["acme-api-key"].min_entropy == 3.0
    assert all(r.secret_group for r in rules.values())  # secretGroup, or the first group as gitleaks takes it
    assert "[[:alnum:]]" not in (rules["acme-deploy-token"].value or "")


@pytest.mark.parametrize("rule_id", sorted(PLANTED))
def test_translated_rules_report_exactly_the_secret_group(ruleset, rule_id):
    text, secret = PLANTED[rule_id]
    matches = [m for m in spillguard.scan_value(text, rules=ruleset) if m.category == "secret"]
    assert [text[m.start : m.end] for m in matches] == [secret], matches
    assert matches[0].rule == rule_id


@pytest.mark.parametrize("text", SILENT)
def test_allowlists_stopwords_and_entropy_keep_their_meaning(ruleset, text):
    assert [m for m in spillguard.scan_value(text, rules=ruleset) if m.category == "secret"] == []


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", "from spillguard.cli import main; main()", *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_scan_with_a_gitleaks_config(tmp_path):
    data = tmp_path / "notes.jsonl"
    data.write_text("".join(json.dumps({"id": i, "note": text}) + "\n" for i, (text, _s) in enumerate(PLANTED.values())))
    proc = _cli("scan", str(data), "--rules", str(CONFIG), "--format", "json", "--fail-on", "never", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert {f["rule"] for f in doc["findings"]} >= set(PLANTED)
    assert not any(secret in proc.stdout for _t, secret in PLANTED.values())
    listing = _cli("rules", "--rules", str(CONFIG), "--category", "secret", "--format", "tsv")
    rows = [line.split("\t") for line in listing.stdout.splitlines()]
    assert [r[1] for r in rows if r[0] == GITLEAKS_PROVIDER] == sorted(PLANTED.keys() | {"acme-session"})


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("[[rules]]\nid = 'lookahead'\nregex = '''key_(?=[a-z]{8})[a-z]{8}'''\n", "gitleaks rule 'lookahead': regex not supported by the scan engine"),
        ("[[rules]]\nid = 'backref'\nregex = '''(a)\\1'''\nsecretGroup = 1\n", "gitleaks rule 'backref'"),
        ("[[rules]]\nid = 'files-only'\npath = '''\\.pem$'''\n", "gitleaks rule 'files-only': no 'regex'"),
        ("[[rules]]\nid = 'group'\nregex = '''k_([a-z]{8})'''\nsecretGroup = 3\n", "gitleaks rule 'group': secretGroup 3"),
        ("[[rules]]\nid = 'broken'\nregex = '''k_([a-z]{8}'''\n", "rule 'broken': invalid pattern"),
    ],
)
def test_a_rule_the_engine_cannot_run_is_one_line_naming_it(tmp_path, rule, message):
    path = tmp_path / "gitleaks.toml"
    path.write_text(rule)
    with pytest.raises(UserError, match=message):
        load_rule_file(path)


def test_the_cli_refuses_such_a_config_in_one_line(tmp_path):
    path = tmp_path / "gitleaks.toml"
    path.write_text("[[rules]]\nid = 'lookahead'\nregex = '''key_(?=[a-z]{8})[a-z]{8}'''\n")
    for args in (("rules", "--rules", str(path)), ("scan", str(tmp_path), "--rules", str(path))):
        proc = _cli(*args)
        assert proc.returncode == 2
        assert "gitleaks rule 'lookahead'" in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
