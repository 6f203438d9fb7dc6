"""Precision and recall of spillguard's detection, per category, on labelled data of its own and of other projects.

    python bench/accuracy.py                      # every dataset whose sample is in tests/detect/peer/
    python bench/accuracy.py --json figures.json  # also write the figures
    python bench/accuracy.py extract --presidio MIRROR --presidio-research MIRROR --stdnum MIRROR

Datasets (docs/accuracy.md explains the method):
- demo: the IoT company generator (spillguard.demo), field level, ground truth from the generator;
- people: a 40+ column tabular people dataset with decoys (spillguard.demo.people), field level;
- presidio-tests: the text cases of Presidio's own recognizer tests (positions and must-not-match cases);
- presidio-research: the labelled synthetic sentences of presidio-research (synth_dataset_v2.json), span level;
- stdnum: check-digit-valid numbers from python-stdnum's tests, under a field naming their type, value level;
- fakename (with --presidio-research MIRROR): the 3,000-row FakeNameGenerator table presidio-research ships, field
  level, read from the mirror at run time (not kept here: its data comes from fakenamegenerator.com).

`extract` reads the peer projects from local git mirrors (`git show`) and writes the fixed samples kept under
tests/detect/peer/ (the regression tests read the same files).
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEER = HERE.parent / "tests" / "detect" / "peer"

# Presidio recognizer test file -> spillguard category (the files whose entity spillguard reports).
PRESIDIO_TESTS = {
    "test_email_recognizer.py": "email",
    "test_credit_card_recognizer.py": "credit_card",
    "test_iban_recognizer.py": "iban",
    "test_ip_recognizer.py": "ip_address",
    "test_mac_recognizer.py": "mac_address",
    "test_phone_recognizer.py": "phone",
    "test_us_ssn_recognizer.py": "national_id",
    "test_uk_nino_recognizer.py": "national_id",
}
# presidio-research entity type -> spillguard category (types spillguard's structured rules cover).
RESEARCH_TYPES = {
    "EMAIL_ADDRESS": "email",
    "CREDIT_CARD": "credit_card",
    "IBAN_CODE": "iban",
    "IP_ADDRESS": "ip_address",
    "PHONE_NUMBER": "phone",
    "US_SSN": "national_id",
}


def _git_show(repo: Path, path: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{path}"], check=True, capture_output=True, text=True).stdout


def _git_head(repo: Path) -> str:
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


def _presidio_cases(source: str) -> Iterable[tuple[str, int, list[tuple[int, int]]]]:
    """(text, expected count, expected spans) from every parametrize list whose columns include text and expected_len."""
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "parametrize" and len(node.args) >= 2):
            continue
        try:
            names = [n.strip() for n in ast.literal_eval(node.args[0]).split(",")]
        except (ValueError, SyntaxError, AttributeError):
            continue
        text_col = "text" if "text" in names else "iban" if "iban" in names else None
        # Presidio's phone "leniency" cases expect different counts for one text depending on a knob of its own.
        if text_col is None or "expected_len" not in names or "leniency" in names or not isinstance(node.args[1], ast.List):
            continue
        pos_col = next((i for i, n in enumerate(names) if n in ("expected_positions", "expected_res")), None)
        for elt in node.args[1].elts:
            try:
                row = ast.literal_eval(elt)
            except ValueError:
                continue
            text, count = row[names.index(text_col)], row[names.index("expected_len")]
            spans = [tuple(p) for p in row[pos_col]] if pos_col is not None and pos_col < len(row) else []
            if isinstance(text, str) and isinstance(count, int):
                yield text, count, [(int(s), int(e)) for s, e in spans]


def extract_presidio(repo: Path) -> dict:
    cases = []
    for name, category in PRESIDIO_TESTS.items():
        for text, count, spans in _presidio_cases(_git_show(repo, f"presidio-analyzer/tests/{name}")):
            cases.append({"file": name, "category": category, "text": text, "count": count, "spans": spans})
    return {"source": "https://github.com/microsoft/presidio (presidio-analyzer/tests)", "commit": _git_head(repo),
            "licence": "MIT, Copyright (c) Presidio Contributors", "cases": cases}


def extract_research(repo: Path, negatives: int = 300, seed: int = 7) -> dict:
    rows = json.loads(_git_show(repo, "data/synth_dataset_v2.json"))
    keep, rest = [], []
    for row in rows:
        spans = [{"type": s["entity_type"], "start": s["start_position"], "end": s["end_position"]} for s in row["spans"]]
        item = {"text": row["full_text"], "spans": spans}
        (keep if any(s["type"] in RESEARCH_TYPES for s in spans) else rest).append(item)
    keep += random.Random(seed).sample(rest, min(negatives, len(rest)))
    return {"source": "https://github.com/microsoft/presidio-research (data/synth_dataset_v2.json)", "commit": _git_head(repo),
            "licence": "MIT, Copyright (c) Microsoft Corporation", "note": f"every sentence with a span of {sorted(RESEARCH_TYPES)} "
            f"plus {negatives} sentences without (seed {seed})", "sentences": keep}


def _national_id_fields() -> dict[str, str]:
    """stdnum module -> a field name its rule recognises (the rule's first example field)."""
    from spillguard.rules import builtin_rules

    out: dict[str, str] = {}
    for rule in builtin_rules():
        if rule.validator and rule.validator.startswith("stdnum:") and rule.examples and rule.examples[0].field:
            out[rule.validator.split(":", 1)[1]] = rule.examples[0].field or ""
    out.update({"us.ssn": "ssn", "se.personnummer": "personnummer", "it.codicefiscale": "codice_fiscale", "pl.pesel": "pesel",
                "nl.bsn": "bsn", "in_.aadhaar": "aadhaar", "gb.nhs": "nhs_number", "es.dni": "dni", "de.idnr": "steuer_id"})
    return out


def extract_stdnum(repo: Path, per_module: int = 40, seed: int = 3) -> dict:
    """Valid numbers from python-stdnum's own test files (tests/test_<module>.doctest) of the id types spillguard maps."""
    import re

    rng = random.Random(seed)
    numbers: dict[str, list[str]] = {}
    for module in sorted(_national_id_fields()):
        path = f"tests/test_{module.replace('_.', '.').replace('.', '_').rstrip('_')}.doctest"
        try:
            src = _git_show(repo, path)
        except subprocess.CalledProcessError:
            continue
        found: list[str] = []
        # a block of numbers followed by the check that none of them is invalid: the test's list of valid numbers
        for block, check in re.findall(r">>> numbers = \'\'\'\n(.*?)\n\.\.\. \'\'\'\n>>> (.*)", src, re.S):
            if "not" in check and ("is_valid" in check or "validate" in check):
                found += [line[4:].strip() for line in block.splitlines() if line.startswith("... ") and line[4:].strip()]
        if found:
            numbers[module] = sorted(rng.sample(found, min(per_module, len(found))))
    return {"source": "https://github.com/arthurdejong/python-stdnum (tests/*.doctest)", "commit": _git_head(repo),
            "licence": "LGPL-2.1-or-later (the numbers are facts; only a sample of them is kept)", "numbers": numbers}


def _mutate(number: str) -> str:
    """The number with its last digit changed: a check digit that no longer fits."""
    for i in range(len(number) - 1, -1, -1):
        if number[i].isdigit():
            return number[:i] + str((int(number[i]) + 1) % 10) + number[i + 1 :]
    return number


def stdnum_scores(doc: dict, rules: object = None) -> dict[str, Score]:
    """Per id type: its test numbers under a field naming it (recall) and the same numbers with a wrong last digit
    (when python-stdnum itself rejects them) as must-not-match cases (false positives). `rules`: a RuleSet
    (default: every built-in rule)."""
    import importlib

    import spillguard

    fields = _national_id_fields()
    scores: dict[str, Score] = {}
    for module, numbers in doc["numbers"].items():
        validate = importlib.import_module(f"stdnum.{module}").is_valid
        score = Score()
        for number in numbers:
            hit = any(m.category == "national_id" for m in spillguard.scan_value(number, fields[module], rules=rules))
            score.tp += hit
            score.fn += not hit
            if not hit:
                score.misses.append(number)
            wrong = _mutate(number)
            if not validate(wrong) and any(m.category == "national_id" for m in spillguard.scan_value(wrong, fields[module], rules=rules)):
                score.fp += 1
                score.false.append(wrong)
        scores[f"{module} ({fields[module]})"] = score
    return scores


def _national_id_labels() -> dict[str, str]:
    """stdnum module -> the label its text rule knows it by (the text before ": " in the rule's first example)."""
    from spillguard.rules import builtin_rules

    out: dict[str, str] = {}
    for rule in builtin_rules():
        if rule.validator and rule.validator.startswith("stdnum:") and rule.before and rule.examples:
            out.setdefault(rule.validator.split(":", 1)[1], rule.examples[0].value.split(": ", 1)[0])
    return out


def stdnum_text_scores(doc: dict, rules: object = None) -> dict[str, Score]:
    """Per id type: its test numbers in a sentence after the label the type goes by ("... my CPF: 390.533.447-05,
    thanks"), no field name; the same numbers with a wrong last digit are the must-not-match cases."""
    import importlib

    import spillguard

    labels = _national_id_labels()
    scores: dict[str, Score] = {}
    for module, numbers in doc["numbers"].items():
        if module not in labels:
            continue
        validate = importlib.import_module(f"stdnum.{module}").is_valid
        score = Score()
        for number in numbers:
            text = f"Please update my file, {labels[module]}: {number}, thanks"
            span = (text.index(number), text.index(number) + len(number))
            hit = any(m.category == "national_id" and (m.start, m.end) == span for m in spillguard.scan_value(text, rules=rules))
            score.tp += hit
            score.fn += not hit
            if not hit:
                score.misses.append(number)
            wrong = _mutate(number)
            bad = f"Please update my file, {labels[module]}: {wrong}, thanks"
            if not validate(wrong) and any(m.category == "national_id" for m in spillguard.scan_value(bad, rules=rules)):
                score.fp += 1
                score.false.append(wrong)
        scores[f"{module} ({labels[module]})"] = score
    return scores


# -- scoring ----------------------------------------------------------------------------------------------------

@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    misses: list[str] = field(default_factory=list)
    false: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def row(self) -> dict:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": round(self.precision, 4),
                "recall": round(self.recall, 4), "f1": round(self.f1, 4)}


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def score_spans(items: Iterable[tuple[str, list[tuple[str, int, int]]]], categories: set[str]) -> dict[str, Score]:
    """Span level: an expected span is found when a match of its category overlaps it; a match of a scored category
    that overlaps no expected span of that category is a false positive."""
    import spillguard

    scores: dict[str, Score] = defaultdict(Score)
    for text, expected in items:
        matches = [m for m in spillguard.scan_value(text) if m.category in categories]
        for cat, s, e in expected:
            hit = any(m.category == cat and _overlaps((m.start, m.end), (s, e)) for m in matches)
            if hit:
                scores[cat].tp += 1
            else:
                scores[cat].fn += 1
                scores[cat].misses.append(text[max(0, s - 20): e + 20])
        for m in matches:
            if not any(c == m.category and _overlaps((m.start, m.end), (s, e)) for c, s, e in expected):
                scores[m.category].fp += 1
                scores[m.category].false.append(f"{m.rule}: {text[max(0, m.start - 20): m.end + 20]}")
    return scores


def score_presidio_tests(doc: dict) -> tuple[dict[str, Score], Score]:
    """Per test file: spans of expected cases; and the must-not-match cases (count 0) as one score."""
    import spillguard

    per_file: dict[str, Score] = {}
    must_not = Score()
    for name, category in PRESIDIO_TESTS.items():
        cases = [c for c in doc["cases"] if c["file"] == name]
        positives = [(c["text"], [(category, s, e) for s, e in c["spans"]]) for c in cases if c["count"] > 0 and c["spans"]]
        # cases that expect matches without positions: count the matches
        score = score_spans(positives, {category})[category]
        for c in cases:
            if c["count"] > 0 and not c["spans"]:
                got = len([m for m in spillguard.scan_value(c["text"]) if m.category == category])
                score.tp += min(got, c["count"])
                score.fn += max(0, c["count"] - got)
                if got < c["count"]:
                    score.misses.append(c["text"])
            if c["count"] == 0:
                got = [m for m in spillguard.scan_value(c["text"]) if m.category == category]
                if got:
                    must_not.fp += 1
                    must_not.false.append(f"{name}: {c['text']}")
                    score.fp += len(got)
                    score.false.append(c["text"])
                else:
                    must_not.tp += 1
        per_file[name] = score
    return per_file, must_not


def score_research(doc: dict) -> dict[str, Score]:
    items = []
    for row in doc["sentences"]:
        spans = [(RESEARCH_TYPES[s["type"]], s["start"], s["end"]) for s in row["spans"] if s["type"] in RESEARCH_TYPES]
        items.append((row["text"], spans))
    return score_spans(items, set(RESEARCH_TYPES.values()))


def _field_scores(predicted: set[tuple[str, str, str]], expected: set[tuple[str, str, str]]) -> tuple[Score, dict[str, Score]]:
    total = Score(tp=len(predicted & expected), fp=len(predicted - expected), fn=len(expected - predicted))
    total.false = sorted(map(str, predicted - expected))
    total.misses = sorted(map(str, expected - predicted))
    per: dict[str, Score] = defaultdict(Score)
    for _d, _f, c in predicted & expected:
        per[c].tp += 1
    for _d, _f, c in predicted - expected:
        per[c].fp += 1
    for _d, _f, c in expected - predicted:
        per[c].fn += 1
    return total, per


def score_scan(folder: Path, expected: set[tuple[str, str, str]]) -> tuple[Score, dict[str, Score]]:
    import spillguard

    result = spillguard.scan([folder], subject_field="user_id")
    predicted = {(f.dataset, f.field, f.category) for f in result.findings if f.confidence in ("high", "medium")}
    return _field_scores(predicted, expected)


def score_demo(users: int = 400) -> tuple[Score, dict[str, Score]]:
    from spillguard.demo import generate

    with tempfile.TemporaryDirectory() as tmp:
        truth = generate(tmp, users=users, seed=11)
        return score_scan(Path(tmp), truth.expected_pairs())


def score_people(rows: int = 2000) -> tuple[Score, dict[str, Score]]:
    from spillguard.demo.people import generate_people

    with tempfile.TemporaryDirectory() as tmp:
        truth = generate_people(Path(tmp), rows=rows, seed=5)
        return score_scan(Path(tmp), truth.expected_pairs())


# FakeNameGenerator table shipped with presidio-research: column -> category (None: not personal data on its own).
# Read from a local mirror at run time, never stored here (its data comes from fakenamegenerator.com).
FAKENAME_CSV = "presidio_evaluator/data_generator/raw_data/FakeNameGenerator.com_3000.csv"
FAKENAME_COLUMNS: dict[str, str | None] = {
    "Number": None, "Gender": None, "NameSet": None, "Title": None, "GivenName": "person_name", "MiddleInitial": None,
    "Surname": "person_name", "StreetAddress": "postal_address", "City": "postal_address", "State": None, "StateFull": None,
    "ZipCode": "postal_address", "Country": None, "CountryFull": None, "EmailAddress": "email", "Username": None,
    "Password": "password", "TelephoneNumber": "phone", "TelephoneCountryCode": None, "MothersMaiden": "person_name",
    "Birthday": "date_of_birth", "Age": None, "CCType": None, "CVV2": None, "CCExpires": None,
    "NationalID": "national_id", "Occupation": None, "Company": None, "Domain": None,
    # CCNumber is left out: a spreadsheet rewrote its values as 5.54563E+15, no card number is left in them.
}


def score_fakename(repo: Path) -> tuple[Score, dict[str, Score]]:
    import csv
    import io

    import spillguard

    text = _git_show(repo, FAKENAME_CSV).lstrip("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text)))
    keep = [c for c in FAKENAME_COLUMNS if c in rows[0]]
    with tempfile.TemporaryDirectory() as tmp:
        with open(Path(tmp) / "fakename.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, keep, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        result = spillguard.scan([tmp])
    predicted = {(f.dataset, f.field, f.category) for f in result.findings if f.confidence in ("high", "medium") and f.field in keep}
    # a column with no value at all (NationalID is mostly empty) can be found by nothing: scored only if it has values
    filled = {c for c in keep if any(r.get(c) for r in rows)}
    expected = {("fakename.csv", c, cat) for c, cat in FAKENAME_COLUMNS.items() if cat is not None and c in filled}
    total, per = _field_scores(predicted, expected)
    # value level: of the values in a personal column, how many does scan_value find under that column's name
    values: dict[str, Score] = {}
    for column, category in FAKENAME_COLUMNS.items():
        if category is None or column not in filled:
            continue
        score = values[f"{column} ({category})"] = Score()
        for row in rows:
            if row[column]:
                found = any(m.category == category for m in spillguard.scan_value(row[column], column))
                score.tp += found
                score.fn += not found
                if not found and len(score.misses) < 10:
                    score.misses.append(row[column])
    per.update(values)
    return total, per


# -- output -----------------------------------------------------------------------------------------------------

def _table(title: str, scores: dict[str, Score]) -> str:
    lines = [f"### {title}", "", "| category | tp | fp | fn | precision | recall | F1 |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in sorted(scores):
        s = scores[name]
        lines.append(f"| {name} | {s.tp} | {s.fp} | {s.fn} | {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    out: dict[str, dict] = {}
    text: list[str] = []
    total, per = score_demo()
    out["demo"] = {"field_level": total.row(), "per_category": {k: v.row() for k, v in per.items()}}
    text.append(_table(f"demo generator, field level (F1 {total.f1:.4f})", {**per, "all fields": total}))
    total, per = score_people()
    out["people"] = {"field_level": total.row(), "per_category": {k: v.row() for k, v in per.items()}}
    text.append(_table(f"people table, 40+ columns, field level (F1 {total.f1:.4f})", {**per, "all fields": total}))
    if args.verbose:
        text.append(f"people misses: {total.misses}\npeople false: {total.false}\n")
    if args.presidio_research:
        total, per = score_fakename(args.presidio_research)
        out["fakename"] = {"field_level": total.row(), "per_category": {k: v.row() for k, v in per.items()}}
        text.append(_table(f"presidio-research FakeNameGenerator table (3,000 rows), field level (F1 {total.f1:.4f})",
                           {**per, "all fields": total}))
        if args.verbose:
            text.append(f"fakename misses: {total.misses}\nfakename false: {total.false}\n")
    pt = PEER / "presidio_recognizer_cases.json"
    if pt.exists():
        per_file, must_not = score_presidio_tests(json.loads(pt.read_text()))
        out["presidio-tests"] = {"per_file": {k: v.row() for k, v in per_file.items()}, "must_not_match": must_not.row()}
        text.append(_table(f"Presidio recognizer tests (must-not-match cases passed: {must_not.tp} of {must_not.tp + must_not.fp}"
                           f" = {must_not.recall:.3f})", per_file))
        if args.verbose:
            for k, v in per_file.items():
                text.append(f"{k} misses: {v.misses}\n{k} false: {v.false}\n")
    rs = PEER / "presidio_research_sample.json"
    if rs.exists():
        scores = score_research(json.loads(rs.read_text()))
        out["presidio-research"] = {k: v.row() for k, v in scores.items()}
        text.append(_table("presidio-research synthetic sentences, span level", scores))
        if args.verbose:
            for k, v in scores.items():
                text.append(f"{k} misses: {v.misses[:30]}\n{k} false: {v.false[:30]}\n")
    sn = PEER / "stdnum_numbers.json"
    if sn.exists():
        scores = stdnum_scores(json.loads(sn.read_text()))
        total = Score(sum(s.tp for s in scores.values()), sum(s.fp for s in scores.values()), sum(s.fn for s in scores.values()))
        out["stdnum"] = {**{k: v.row() for k, v in scores.items()}, "all": total.row()}
        text.append(_table("python-stdnum test numbers under a field naming their type (fp: wrong check digit reported)",
                           {**scores, "all id types": total}))
        if args.verbose:
            for k, v in scores.items():
                if v.misses or v.false:
                    text.append(f"{k} misses: {v.misses}\n{k} false: {v.false}\n")
        scores = stdnum_text_scores(json.loads(sn.read_text()))
        total = Score(sum(s.tp for s in scores.values()), sum(s.fp for s in scores.values()), sum(s.fn for s in scores.values()))
        out["stdnum_text"] = {**{k: v.row() for k, v in scores.items()}, "all": total.row()}
        text.append(_table("python-stdnum test numbers after their label in a sentence, no field (fp: wrong check digit reported)",
                           {**scores, "all id types": total}))
        if args.verbose:
            for k, v in scores.items():
                if v.misses or v.false:
                    text.append(f"{k} misses: {v.misses}\n{k} false: {v.false}\n")
    print("\n".join(text))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command")
    ex = sub.add_parser("extract", help="write the fixed samples from local git mirrors of the peer projects")
    ex.add_argument("--presidio", type=Path)
    ex.add_argument("--presidio-research", type=Path)
    ex.add_argument("--stdnum", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--presidio-research", type=Path, help="a git mirror of presidio-research: also score its FakeNameGenerator table")
    ap.add_argument("-v", "--verbose", action="store_true", help="list every miss and false positive")
    args = ap.parse_args()
    if args.command == "extract":
        PEER.mkdir(parents=True, exist_ok=True)
        if args.presidio:
            (PEER / "presidio_recognizer_cases.json").write_text(json.dumps(extract_presidio(args.presidio), indent=1, ensure_ascii=False) + "\n")
        if args.presidio_research:
            (PEER / "presidio_research_sample.json").write_text(json.dumps(extract_research(args.presidio_research), indent=1, ensure_ascii=False) + "\n")
        if args.stdnum:
            (PEER / "stdnum_numbers.json").write_text(json.dumps(extract_stdnum(args.stdnum), indent=1, ensure_ascii=False) + "\n")
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
