"""Placeholders stay silent as a class, real tokens are never taken for one, and the column path (Vectorscan
markers + a vectorised entropy window) decides exactly what the exact per-candidate check decides."""

from __future__ import annotations

import random
import re
import string

import numpy as np
import pyarrow as pa
import pytest

import spillguard
from spillguard.detect.engine import RuleSet
from spillguard.detect.placeholders import LONG, MARKERS, WINDOW, is_placeholder, low_entropy_prefix
from spillguard.detect.validators import shannon_entropy
from spillguard.rules import builtin_rules

RULES = builtin_rules()
BY_ID = {r.id: r for r in RULES}

PLACEHOLDERS = [
    "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "AKIAXXXXXXXXXXXXXXXX",
    "AKIAIOSFODNN7EXAMPLE",
    "xoxp-1234567890-1234567890-xxxxxxxxxxxxxxxx",
    "xoxb-XXXXXXXXXXXX-XXXXXXXXXXXXX-XXXXXXXXXXXXXXXXXXXXXXXX",
    "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
    "sk_live_abcdefghijklmnopqrstuvwx",
    "sk-proj-your-api-key-here-xxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "glpat-xxxxxxxxxxxxxxxxxxxx",
    "glpat-12345678901234567890",
    "hf_abababababababababababababababababab",
    "AIzaXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "dop_v1_ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "npm_000000000000000000000000000000000000",
    "Atza|IwEBxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
]
TEMPLATES = ["<your-token>", "${TOKEN}", "{{ api_key }}", "%(password)s", "$API_KEY", "process.env.API_KEY", "********", "…"]


@pytest.mark.parametrize("token", PLACEHOLDERS)
def test_placeholder_tokens_are_silent_whichever_rule_shape_they_take(token):
    assert is_placeholder(token)
    assert [m for m in spillguard.scan_value(token) if m.category == "secret"] == []
    assert [m for m in spillguard.scan_value(f"config: {{\"key\": \"{token}\"}}") if m.category == "secret"] == []


@pytest.mark.parametrize("text", TEMPLATES)
def test_templates_and_masks_are_placeholders_in_every_mode(text):
    assert is_placeholder(text, "token") and is_placeholder(text, "password")
    assert not is_placeholder(text, "off")


def test_passwords_are_judged_by_templates_and_words_only():
    for real in ("root", "123456", "hunter2!", "aaaaaaaa", "Summer2026!"):
        assert not is_placeholder(real, "password"), real  # weak, but somebody's password
    for filler in ("changeme", "null", "********", "<password>", "${DB_PASSWORD}", "incorrect"):
        assert is_placeholder(filler, "password"), filler


@pytest.mark.parametrize(
    ("alphabet", "length"),
    [(string.ascii_letters + string.digits + "-_", 400), (string.ascii_letters + string.digits, 36),
     ("0123456789abcdef", 64), ("0123456789abcdef", 32), (string.ascii_uppercase + "234567", 16)],
)
def test_random_tokens_are_never_placeholders(alphabet, length):
    """A real token taken for filler would be an under-count: none of 3,000 random tokens of each shape."""
    rng = random.Random(length)
    tokens = ["".join(rng.choice(alphabet) for _ in range(length)) for _ in range(3000)]
    assert [t for t in tokens if is_placeholder(t)] == []


def test_low_entropy_window_matches_the_exact_entropy():
    rng = random.Random(5)
    values = ["".join(rng.choice("ab" if i % 3 == 0 else string.ascii_letters) for _ in range(rng.randrange(0, 70))) for i in range(500)]
    values += ["x" * 40, "ab" * 30, "é" * 20, "ab" * 40, "abcd" * 4]
    arr = pa.array(values)
    idx = np.arange(len(values))
    vec = low_entropy_prefix(arr, idx)
    exact = [16 <= len(v.encode()) <= LONG and shannon_entropy(v.encode()[:WINDOW].decode("latin-1")) < 2.0 for v in values]
    assert vec.tolist() == exact
    assert low_entropy_prefix(arr.slice(7), idx[: len(values) - 7]).tolist() == exact[7:]


def test_markers_flag_every_token_filler_the_exact_check_rejects():
    """The fast path only sends marker-flagged (or low-entropy) values to the exact check: every structural
    filler the exact check rejects must carry a marker, or the two paths would disagree."""
    markers = re.compile(MARKERS)
    for token in PLACEHOLDERS:
        body = token.split("_", 1)[-1]
        assert markers.search("_" + body) or shannon_entropy(token[:WINDOW]) < 2.0, token


def test_column_path_decides_like_the_exact_path():
    """One column of real example tokens and their placeholder twins: the plain (fast) column scan flags exactly
    the values that scan_value (the exact path) flags."""
    ruleset = RuleSet(RULES)
    values: list[str] = []
    for rule in RULES:
        if rule.category == "secret" and rule.is_value_rule and rule.placeholder == "token" and not rule.requires_field:
            values += [e.value for e in rule.examples if e.field is None][:1]
            values += [e.value for e in rule.negative_examples if e.field is None]
    values += PLACEHOLDERS
    plan = ruleset.plan("value")
    hits = ruleset.scan_column(pa.array(values), plan)
    fast = {int(v) for rid, idx in hits.by_rule.items() if ruleset.rules[rid].category == "secret" for v in idx}
    exact = {i for i, v in enumerate(values) if any(m.category == "secret" for m in spillguard.scan_value(v))}
    assert fast == exact
    assert len(exact) >= 150


def test_a_column_of_real_tokens_takes_no_exact_path(monkeypatch):
    """Real tokens under a token column are final as matched: the exact check is not called per value."""
    ruleset = RuleSet(RULES)
    rng = random.Random(3)
    b64 = string.ascii_letters + string.digits + "-_"
    tokens = ["Atza|IwEB" + "".join(rng.choice(b64) for _ in range(400)) for _ in range(2000)]
    calls = []
    original = ruleset.resolve_value
    monkeypatch.setattr(ruleset, "resolve_value", lambda value, rids: calls.append(value) or original(value, rids))
    hits = ruleset.scan_column(pa.array(tokens), ruleset.plan("alexa.access_token"))
    assert hits.by_rule[RULES.index(BY_ID["lwa_access_token"])].size == 2000
    assert len(calls) < 20  # only the rare token with a marker-like run goes to the exact check


def test_a_single_selected_rule_still_rejects_placeholders_in_a_column():
    """`--only aws_access_key_id` compiles a one-rule database: the markers are compiled into it too."""
    from spillguard.rules import select_rules

    ruleset = RuleSet(select_rules(only=["aws_access_key_id"]))
    hits = ruleset.scan_column(pa.array(["AKIAXXXXXXXXXXXXXXXX", "AKIAZ3MHQ4WTLRD6K5VY", "AKIAIOSFODNN7EXAMPLE"]), ruleset.plan("key"))
    assert {r: v.tolist() for r, v in hits.by_rule.items()} == {0: [1]}


def test_placeholder_filler_and_words_equal_the_alternations() -> None:
    """The token-filler test (runs, x-runs, alphabet sequences) and the placeholder words, as a back-reference and
    substring searches, against the literal alternations they replaced, on tokens seeded with each kind."""
    import string

    from spillguard.detect import placeholders as ph
    from tests.detect import former

    rng = random.Random(13)
    seeds = ["a" * 8, "a" * 7, "7" * 8, "xxxxxx", "XXXXXX", "xXxXxX", "abcdefgh", "abcdefg", "76543210", "ABCDEFGH", "example",
             "EXAMPLE", "Example", "eXample", "your_", "lorem", "Lorem", "placeholder", "dummy"]
    alphabet = string.ascii_letters + string.digits + "-_|"
    for _ in range(6000):
        body = "".join(rng.choice(alphabet) for _ in range(rng.choice([10, 30, 63, 64, 65, 200, 400])))
        if rng.random() < 0.6:
            at = rng.randrange(len(body))
            body = body[:at] + rng.choice(seeds) + body[at:]
        assert ph._token_filler(body) == former.token_filler(body), body
        words = ph._WORDS_ALL if len(body) <= ph.LONG else ph._WORDS_LONG
        assert any(w in body for w in words) == former.placeholder_words(body), body
