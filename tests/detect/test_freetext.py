"""Names, postal addresses and dates of birth in free text: positions, per-column gating, exact people counts,
accuracy on generated tickets and on a fixed sample of presidio-research's labelled data, and what a scan says
when the `text` extra is missing."""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

import pyarrow as pa
import pytest

import spillguard
from spillguard.detect import freetext
from spillguard.detect.engine import RuleSet
from spillguard.detect.state import DatasetState
from spillguard.rules import builtin_rules

DATA = Path(__file__).parent / "data"
RULES = RuleSet(builtin_rules())
TEXT_RULES = {"person_name_text", "postal_address_text", "date_of_birth_text"}

FIRST = ["Jane", "Tomás", "Aisha", "Pieter", "Mei", "Oluwaseun", "Giulia", "Henrik", "Priya", "Mateusz", "Sofía", "Kenji"]
LAST = ["Whitaker", "Herrera", "Okonkwo", "de Vries", "Lindqvist", "Kowalczyk", "Rossi", "Nakamura", "Patel", "Fischer"]
STREETS = [("12 Baker Street", "London", "NW1 6XE", "GB"), ("4521 Oak Avenue", "Seattle", "WA 98101", "US"),
           ("Hauptstraße 7", "Berlin", "10115", "DE"), ("18 rue de la Paix", "Paris", "75002", "FR"),
           ("77 Elm Road", "Manchester", "M1 2AB", "GB"), ("Kungsgatan 44", "Stockholm", "111 56", "SE")]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
          "December"]
# (template, categories) with {name}, {address}, {dob}; spans are computed from where each is put.
TEMPLATES = [
    ("Contact {name} at {address} about the late delivery.", ("person_name", "postal_address")),
    ("Hi, my name is {name} and the app will not let me log in.", ("person_name",)),
    ("The customer {name} asked us to send the invoice to {address} instead.", ("person_name", "postal_address")),
    ("Caller confirmed she was born {dob} before we reset the password.", ("date_of_birth",)),
    ("Please update the shipping address to {address}, thank you.", ("postal_address",)),
    ("Spoke with {name} today, DOB {dob}, and the refund is on its way.", ("person_name", "date_of_birth")),
    ("Camera offline after the update, customer rebooted it twice already.", ()),
    ("Night vision looks too dark, suggested moving the camera closer to the door.", ()),
]


def make_tickets(n: int, seed: int) -> tuple[list[str], list[str], list[dict[str, tuple[int, int]]]]:
    """(user ids, notes, per note the exact span of each category it holds). Users open up to three tickets."""
    rng = random.Random(seed)
    users, notes, spans = [], [], []
    for i in range(n):
        template, _cats = rng.choice(TEMPLATES)
        street, town, code, country = rng.choice(STREETS)
        address = f"{street}, {town} {code}" if country in ("GB", "US") else f"{street}, {code} {town}"
        day, month, year = rng.randrange(1, 29), rng.randrange(1, 13), rng.randrange(1940, 2006)
        dob = rng.choice([f"{day}th {MONTHS[month - 1]} {year}" if day > 3 else f"{MONTHS[month - 1]} {day}, {year}",
                          f"{day:02d}/{month:02d}/{year}"])
        parts = {"name": f"{rng.choice(FIRST)} {rng.choice(LAST)}", "address": address, "dob": dob}
        note, where = "", {}
        rest = template
        while "{" in rest:
            head, _, tail = rest.partition("{")
            key, _, rest = tail.partition("}")
            note += head
            where[{"name": "person_name", "address": "postal_address", "dob": "date_of_birth"}[key]] = (len(note), len(note) + len(parts[key]))
            note += parts[key]
        note += rest
        users.append(f"u{i % (n // 2)}")  # two tickets per user on average: people are counted once
        notes.append(note)
        spans.append(where)
    return users, notes, spans


@pytest.fixture(scope="module")
def text_model():
    pytest.importorskip("spacy", reason="the text extra is installed by scripts/bootstrap")
    return freetext.model()  # loaded once per process


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


# -- positions --------------------------------------------------------------------------------------------------
def test_the_issue_examples_are_found_with_their_positions(text_model):
    value = "Contact Jane Whitaker at 12 Baker Street, London NW1 6XE"
    got = {(m.rule, value[m.start : m.end]) for m in spillguard.scan_value(value)}
    assert got == {("person_name_text", "Jane Whitaker"), ("postal_address_text", "12 Baker Street, London NW1 6XE")}
    value = "Support note: customer was born 15th June 1991, verified by phone."
    [m] = spillguard.scan_value(value)
    assert (m.category, m.rule, value[m.start : m.end]) == ("date_of_birth", "date_of_birth_text", "born 15th June 1991")
    assert [m.rule for m in spillguard.scan_value("born 15th June 1991")] == ["date_of_birth_text"]


def test_generated_tickets_spans_precision_and_recall(text_model):
    _users, notes, truth = make_tickets(400, seed=3)
    plan = RULES.plan("note")
    hits = RULES.scan_column(pa.array(notes), plan, want_spans=True)
    for category in ("person_name", "postal_address", "date_of_birth"):
        rid = next(i for i, r in enumerate(RULES.rules) if r.category == category and r.id.endswith("_text"))
        found = set(hits.by_rule.get(rid, []).tolist())
        expected = {i for i, t in enumerate(truth) if category in t}
        assert found, category
        tp = found & expected
        precision, recall = len(tp) / len(found), len(tp) / len(expected)
        assert precision >= 0.98 and recall >= 0.98, (category, precision, recall, sorted(expected - found)[:5])
        exact = sum(hits.spans[(rid, i)] == truth[i][category] for i in tp)
        if category == "date_of_birth":  # the rule's span starts at its cue ("born", "DOB")
            assert all(hits.spans[(rid, i)][1] == truth[i][category][1] for i in tp)
        else:
            assert exact >= 0.98 * len(tp), (category, exact, len(tp))


# -- gating -----------------------------------------------------------------------------------------------------
def test_structured_columns_never_reach_the_model(text_model):
    before = text_model.calls  # texts the model has read in this process
    n = 300
    rng = random.Random(1)
    table = pa.table({
        "user_id": [f"usr_{i:05d}" for i in range(n)],
        "email": [f"person{i}@example.com" for i in range(n)],
        "full_name": [f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(n)],
        "address": [f"{s}, {t} {c}" for s, t, c, _ in (rng.choice(STREETS) for _ in range(n))],
        "device_name": [rng.choice(["Living room cam", "Front door", "Baby room"]) for _ in range(n)],
        "title": [rng.choice(["Camera Offline After Update", "Refund Request For Order 4411"]) for _ in range(n)],
        "created_at": [1575417600 + i for i in range(n)],
    })
    for name in table.column_names:
        RULES.scan_column(table.column(name).combine_chunks(), RULES.plan(name))
    assert text_model.calls == before  # names and addresses in their own columns are the field rules' job
    notes = make_tickets(50, seed=9)[1]
    RULES.scan_column(pa.array(notes + [None, ""]), RULES.plan("note"))
    assert text_model.calls == before + 50  # a free-text column: each non-empty value read once


def test_a_column_with_few_sentences_is_not_free_text():
    values = [f"usr_{i}" for i in range(95)] + ["Contact Jane Whitaker at 12 Baker Street, London NW1 6XE"] * 5
    assert freetext.free_text_values(pa.array(values)) is None
    values = values[:50] + values[-5:] * 10
    chosen = freetext.free_text_values(pa.array(values))
    assert chosen is not None and len(chosen) == 50  # identifiers without a space are never read


# -- counting ---------------------------------------------------------------------------------------------------
def test_people_are_counted_once_per_subject_and_records_exactly(text_model, tmp_path):
    users, notes, truth = make_tickets(300, seed=5)
    path = tmp_path / "tickets.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["ticket_id", "user_id", "note"])
        w.writerows([i, u, n] for i, (u, n) in enumerate(zip(users, notes, strict=True)))
    result = spillguard.scan([path], subject_field="user_id")
    assert result.complete, result.errors
    by_rule = {f.rule: f for f in result.findings if f.field == "note"}
    for category, rule in (("person_name", "person_name_text"), ("postal_address", "postal_address_text"),
                           ("date_of_birth", "date_of_birth_text")):
        rows = [i for i, t in enumerate(truth) if category in t]
        f = by_rule[rule]
        assert f.category == category and f.confidence in ("medium", "high")
        assert f.records_matched == f.values_matched == len(rows), rule
        assert f.subjects_matched == len({users[i] for i in rows}) < len(rows), rule
    summary = result.to_json()["summary"]
    assert summary["categories"]["person_name"]["subjects"] == by_rule["person_name_text"].subjects_matched


# -- without the extra --------------------------------------------------------------------------------------------
def _tickets_file(tmp_path: Path) -> Path:
    users, notes, _truth = make_tickets(60, seed=7)
    path = tmp_path / "tickets.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "note", "summary"])
        w.writerows([u, n, n] for u, n in zip(users, notes, strict=True))
    return path


def test_without_the_extra_free_text_is_reported_unchecked_once_and_the_scan_is_incomplete(tmp_path, monkeypatch, capsys):
    from spillguard.scan.cli import FailOn, Format, run_scan_command

    monkeypatch.setattr(freetext, "available", lambda: False)
    path = _tickets_file(tmp_path)
    (tmp_path / "users.jsonl").write_text('{"user_id": "u1", "email": "a@example.com"}\n')
    result = spillguard.scan([tmp_path], subject_field="user_id")
    unchecked = [e for e in result.errors if e.kind == "unchecked"]
    assert len(unchecked) == 1, result.errors  # said once, naming both fields
    message = unchecked[0].message
    assert "tickets.csv: note" in message and "tickets.csv: summary" in message and "120 free-text values" in message
    assert "spillguard[text]" in message and "Jane" not in message
    assert not result.complete and "free-text check skipped" in result.unscanned()
    assert result.to_json()["summary"]["complete"] is False
    assert {f.rule for f in result.findings} & TEXT_RULES == {"date_of_birth_text"}  # the rule needs no model
    code = run_scan_command([str(path)], fmt=Format.json, output=str(tmp_path / "out.json"), show_samples=False,
                            subject_field=None, rules=None, only=None, exclude=None, fail_on=FailOn.never,
                            subjects_out=None, progress=False, workers=1)
    assert code == 3
    assert "free-text check skipped" in capsys.readouterr().err
    # Skipping the free-text rules on purpose makes the scan complete again; structured data never warns.
    done = spillguard.scan([path], exclude=["person_name_text", "postal_address_text"])
    assert done.complete and not done.errors
    structured = spillguard.scan([tmp_path / "users.jsonl"])
    assert structured.complete and not structured.errors


def test_unchecked_fields_survive_the_state_file(tmp_path):
    from spillguard.scan.checkpoint import StateCodec

    state = DatasetState(target="t", dataset="tickets.csv")
    state.unchecked = {"note": 12}
    other = DatasetState(target="t", dataset="tickets.csv", unchecked={"note": 3, "body": 1})
    state.merge(other)
    assert state.unchecked == {"note": 15, "body": 1}
    codec = StateCodec(b"k" * 32)
    doc, blob = codec.encode(state, [])
    back, _ = codec.decode(doc, blob, "t")
    assert sorted(back.unchecked.values()) == [1, 15]


# -- other projects' labelled data -------------------------------------------------------------------------------
# presidio-research's synthetic dataset (data/synth_dataset_v2.json, MIT licence, see data/README.md): a fixed
# sample of 400 sentences. The thresholds are what this version measures on it, less a small margin (see
# docs/accuracy.md "Free text" for the whole dataset and the targets this does not reach).
PRESIDIO_FLOORS = {"person_name": (0.95, 0.90), "postal_address": (0.98, 0.95)}  # measured 0.965/0.915, 1.000/0.971


def test_presidio_research_sample_regression(text_model):
    records = json.loads((DATA / "presidio_synth_sample.json").read_text(encoding="utf-8"))
    found = text_model.find([r["full_text"] for r in records])
    gold_types = {"person_name": {"PERSON"}, "postal_address": {"STREET_ADDRESS"}}
    # A predicted address that covers a town or postcode the dataset labels separately is still an address.
    ok_types = {"person_name": {"PERSON"}, "postal_address": {"STREET_ADDRESS", "GPE", "ZIP_CODE"}}
    for kind, (min_p, min_r) in PRESIDIO_FLOORS.items():
        tp_p = fp = tp_r = fn = 0
        for record, spans in zip(records, found, strict=True):
            pred = [(s, e) for k, s, e in spans if k == kind]
            gold = [(g["start_position"], g["end_position"]) for g in record["spans"] if g["entity_type"] in gold_types[kind]]
            ok = [(g["start_position"], g["end_position"]) for g in record["spans"] if g["entity_type"] in ok_types[kind]]
            tp_p += sum(any(overlaps(p, g) for g in ok) for p in pred)
            fp += sum(not any(overlaps(p, g) for g in ok) for p in pred)
            tp_r += sum(any(overlaps(p, g) for p in pred) for g in gold)
            fn += sum(not any(overlaps(p, g) for p in pred) for g in gold)
        precision, recall = tp_p / (tp_p + fp), tp_r / (tp_r + fn)
        print(f"\npresidio-research sample {kind}: precision {precision:.3f} recall {recall:.3f}")
        assert precision >= min_p and recall >= min_r, (kind, precision, recall)


def test_unchecked_free_text_is_named_per_file_when_small_files_are_read_together(tmp_path, monkeypatch):
    monkeypatch.setattr(freetext, "available", lambda: False)
    _tickets_file(tmp_path)  # 60 tickets of prose in note and summary
    quiet = tmp_path / "quiet.csv"
    quiet.write_text("user_id,note,summary\n" + "".join(f"u{i},ok,done\n" for i in range(60)), encoding="utf-8")
    result = spillguard.scan([tmp_path])
    [unchecked] = [e for e in result.errors if e.kind == "unchecked"]
    assert "tickets.csv: note" in unchecked.message and "quiet.csv" not in unchecked.message


def test_given_name_gazetteer_is_loaded_and_folds_accents():
    names = freetext.given_names()
    assert len(names) > 40_000
    assert freetext.fold_name("Halldór") == "halldor" and freetext.fold_name("Łucja") == "lucja"
    assert {"hannah", "derek", "halldor"} <= names.keys()
    assert "discipline" not in names and "the" not in names


# (text, names expected exactly, words that must not be reported as names); sentences written for this test.
NAME_CASES = [
    ("We invited five guests: Hannah, Derek, Isabel, Teresa and Jodi.", ["Hannah", "Derek", "Isabel", "Teresa", "Jodi"], []),
    ("The quarterly report of Jones, Mitchell and Williams Partners is late.", [], ["Jones", "Mitchell", "Williams"]),
    ("Gunnar: Where were you last night?\nSigrid: At home, reading.", ["Gunnar", "Sigrid"], []),
    ("hello, my name is lena andersson and my card is blocked", ["lena andersson"], []),
    ("Capitalized words like Wisdom and Discipline are often mistaken for names.", [], ["Wisdom", "Discipline"]),
    ("The Credit Karma app and Entertainment Weekly both wrote about it.", [], ["Credit Karma", "Entertainment Weekly"]),
    ("We visited Victoria last summer and loved the harbour.", [], ["Victoria"]),
    ("I am so tired! said Oskar to Linda", ["Oskar", "Linda"], []),
    ("Please ask Derek whether the camera was reset.", ["Derek"], []),
    ("User asked us to reply to Yusuf.muller+cam78@example.org instead of the app.", [], ["Yusuf"]),
]


@pytest.mark.parametrize(("text", "names", "not_names"), NAME_CASES, ids=[c[0][:30] for c in NAME_CASES])
def test_names_from_lists_dialogue_cues_and_the_gazetteer(text_model, text, names, not_names):
    [spans] = text_model.find([text])
    found = [text[s:e] for k, s, e in spans if k == "person_name"]
    assert found == names
    assert not any(w in f for w in not_names for f in found)


def test_an_honorific_name_before_a_unit_is_a_name_and_the_address_starts_at_the_unit(text_model):
    text = "Mrs. Ingrid Solberg Apt. 12 4410 Storgata 5\nOslo 0155"
    [spans] = text_model.find([text])
    assert [(k, text[s:e]) for k, s, e in spans] == [
        ("person_name", "Ingrid Solberg"), ("postal_address", "Apt. 12"), ("postal_address", "4410 Storgata 5\nOslo 0155")]
    assert all(a[2] <= b[1] for a, b in zip(spans, spans[1:], strict=False))  # sorted and not overlapping


def test_names_inside_addresses_and_urls_are_not_people(text_model):
    """A first name inside an e-mail address or a URL belongs to that address: the e-mail rule reports it, and a
    name span there would overlap it (redaction then cut the address in two)."""
    found, _ = freetext.find_in_column(
        pa.array(["write to Jane.Doe@Example.COM or +44 20 7946 0958", "see https://example.org/Jane.Doe today",
                  "mail Jane Doe at the office"]), ("person_name",))
    idx, spans = found["person_name"]
    assert idx.tolist() == [2] and spans == [(5, 13)]
    kinds = [m.category for m in spillguard.scan_value("write to Jane.Doe@Example.COM or +44 20 7946 0958")]
    assert kinds == ["email", "phone"]


# -- name and address classes on generated sentences (templates and names written for this test) -------------------
# Given names and surnames from several languages; the recall floors below leave room for the few the gazetteers
# do not know.
GIVEN = ["Ingrid", "Matteo", "Oksana", "Baptiste", "Radka", "Tuomas", "Agnieszka", "Dragan", "Hilde", "Sebastián",
         "Leilani", "Ayumi", "Emeka", "Zofia", "Henrik", "Ilona", "Rafael", "Sanne", "Bogdan", "Yolanda"]
SURNAMES = ["Lindqvist", "Kowalczyk", "Brandt", "Nakamura", "Horvath", "Salonen", "Petrovic", "Okafor", "Moretti",
            "Vasquez", "Schreiber", "Dubois", "Jankowski", "Takahashi", "Novak", "Eriksen", "Castellano", "Huber"]
# class -> templates; {n} is a person's name (ground truth), {f}/{l} a given name / surname inside it.
NAME_CLASSES = {
    "full name, initial without a dot": ["Have you met {f} {i} {l} at the fair?", "The file was signed by {f} {i} {l} on Monday."],
    "full name with a particle": ["{f} van der {l} will give the talk in the afternoon.", "We wrote to {f} de {l} twice already."],
    "full name the model calls a place": ["I want to add {f} {l} as a beneficiary to my account.",
                                          "The {f} {l} recording sold a million copies."],
    "pair of surnames": ["Is this the best song of the year? {l} and {l2} were its engineers."],
    "kin possessive": ["It was a quiet party for {f}'s daughter and her friends.", "We met {f}'s husband at the door."],
    "vocative": ["{f}, could you send me the form again?", "Thanks for everything, {f}!"],
    "person verb": ["{f} lives on the third floor with two cats.", "'Too late,' said {f} and left the room."],
    "pronoun subject": ["{f} is very patient. You can always ask him for help."],
    "small letters": ["follow up with {fl} {ll} in a couple of weeks.", "the invoice went to {fl} {il} {ll} yesterday.",
                      "they invited four friends: {fl}, {fl2}, {fl3} and {fl4}."],
}
# Sentences with capitalised surnames that name firms and streets: no person in them.
DECOY_TEMPLATES = [
    "{l}, {l2} and {l3} is a law firm based in Leeds.",
    "{l} is a design agency with offices in three cities.",
    "I work for {l} since last spring.",
    "The parcel went to 5850 {f} {l} 894 by mistake.",
    "Celebrating its tenth year, {l} and Sons is a family company.",
]


def _fill(template: str, rng: random.Random) -> tuple[str, list[tuple[int, int]]]:
    """The sentence and the spans of the names in it (a name is a run of {f}, {i}, {l} fields and what joins them)."""
    given, last = rng.choice(GIVEN), rng.choice(SURNAMES)
    fills = {"f": given, "i": rng.choice("ABCDEHJKLMPRST"), "l": last, "l2": rng.choice(SURNAMES),
             "l3": rng.choice(SURNAMES), "fl": given.lower(), "il": rng.choice("abcdehjklmprst"), "ll": last.lower()}
    for k in ("fl2", "fl3", "fl4"):
        fills[k] = rng.choice(GIVEN).lower()
    text, spans, pos = "", [], 0
    for m in re.finditer(r"\{(\w+)\}", template):
        text += template[pos : m.start()]
        start = len(text)
        text += fills[m.group(1)]
        if spans and template[pos : m.start()] in (" ", " van der ", " de ") and m.group(1) not in ("l2", "fl2", "fl3", "fl4"):
            spans[-1] = (spans[-1][0], len(text))  # the next part of the same name
        else:
            spans.append((start, len(text)))
        pos = m.end()
    return text + template[pos:], spans


# Measured 2026-12-03 (seed 14, 30 sentences a class): recall 1.000 in every class but pairs of surnames (0.967),
# precision 1.000, no name in the 150 decoys. Before these mechanisms (main at 84164ec) seven classes were below
# the floor (pairs of surnames 0.000, small letters 0.000, a full name the model calls a place 0.567, ...) and 24 %
# of the decoys had a name (docs/accuracy.md, "Free text").
NAME_CLASS_FLOOR = 0.9


def name_class_scores(model: freetext.TextModel, seed: int = 14, per_class: int = 30) -> dict[str, tuple[float, float]]:
    """Per class of NAME_CLASSES: (recall, precision) of person names on generated sentences; plus "decoys":
    (share of decoy sentences without a name, 1.0)."""
    rng = random.Random(seed)
    scores = {}
    for cls, templates in NAME_CLASSES.items():
        filled = [_fill(rng.choice(templates), rng) for _ in range(per_class)]
        found = model.find([t for t, _g in filled])
        tp = total = wrong = npred = 0
        for (_text, gold), spans in zip(filled, found, strict=True):
            pred = [(s, e) for k, s, e in spans if k == "person_name"]
            total += len(gold)
            tp += sum(any(overlaps(p, g) for p in pred) for g in gold)
            npred += len(pred)
            wrong += sum(not any(overlaps(p, g) for g in gold) for p in pred)
        scores[cls] = (tp / total, 1 - wrong / max(npred, 1))
    decoys = [_fill(rng.choice(DECOY_TEMPLATES), rng)[0] for _ in range(5 * per_class)]
    clean = sum(not any(k == "person_name" for k, _s, _e in spans) for spans in model.find(decoys))
    scores["decoys"] = (clean / len(decoys), 1.0)
    return scores


def test_name_classes_on_generated_sentences_keep_their_recall(text_model):
    scores = name_class_scores(text_model)
    for cls, (recall, precision) in scores.items():
        print(f"\n{cls}: recall {recall:.3f} precision {precision:.3f}")
    low = {cls: rp for cls, rp in scores.items() if min(rp) < NAME_CLASS_FLOOR}
    assert not low, low


# Address shapes (sentences written for this test): small letters, town / state / postcode on their own lines,
# military post in small letters, a number before a PO box, a German street word apart, an Italian particle.
ADDRESS_CASES = [
    ("meet me at 2210 sørkedalsveien 14, oslo, norway", "2210 sørkedalsveien 14, oslo, norway"),
    ("Please update the billing address with 4511 Marlowe 27\nRidgefield\n, CT\n 06877 for this card.",
     "4511 Marlowe 27\nRidgefield\n, CT\n 06877"),
    ("may i have the statement sent to usns bergstrom\nfpo ae 44012?", "usns bergstrom\nfpo ae 44012"),
    ("Write to 90210 P.O. Box 512 from now on.", "90210 P.O. Box 512"),
    ("The shop is on Grazer Strasse 14 near the station.", "Grazer Strasse 14"),
    ("Our new office is at Via dei Mille 21 in the old town.", "Via dei Mille 21"),
]


@pytest.mark.parametrize(("text", "address"), ADDRESS_CASES, ids=[c[1][:24] for c in ADDRESS_CASES])
def test_address_shapes(text_model, text, address):
    [spans] = text_model.find([text])
    assert [text[s:e] for k, s, e in spans if k == "postal_address"] == [address]


def test_surname_gazetteer_and_the_copy_in_small_letters():
    names = freetext.surnames()
    assert len(names) > 90_000 and names["smith"] > 2_000_000
    assert "the" not in names and "and" not in names  # English function words are surnames in the census too
    text = "follow up with patricia desrosiers about the will in may, frank advice is welcome"
    cased = freetext._truecase(text)
    assert len(cased) == len(text)
    assert cased == "follow up with Patricia Desrosiers about the will in may, frank advice is welcome"


def test_free_text_columns_as_before_native_space_counts() -> None:
    """Which values of a column are read for names and addresses: spaces counted natively and lengths from the
    offsets give what Arrow's kernels gave, on prose, structured and mixed columns with nulls and slices."""
    import random

    import numpy as np
    import pyarrow as pa

    from spillguard.detect.freetext import free_text_values, spaces_per_value
    from tests.detect import former

    rng = random.Random(6)
    words = ["the", "at", "Anna", "Baker", "Street", "is", "x", "12", "é", "ünïcode", "", "  ", "call", "me", "ok."]
    for _ in range(300):
        share = rng.random()
        values = []
        for _ in range(rng.choice([1, 5, 40, 200])):
            if rng.random() < 0.1:
                values.append(None)
            elif rng.random() < share:
                values.append(" ".join(rng.choice(words) for _ in range(rng.choice([2, 4, 5, 6, 12]))))
            else:
                values.append(rng.choice(["tok_" + "a" * rng.choice([3, 20, 40]), "a b", "", "2019-12-04"]))
        arr = pa.array(values, pa.string())
        for column in (arr, arr.slice(len(arr) // 3), pa.array(values, pa.large_string())):
            new, old = free_text_values(column), former.free_text_values(column)
            assert (new is None) == (old is None) and (new is None or np.array_equal(new, old)), values
            want = [0 if v is None else v.count(" ") for v in column.to_pylist()]
            assert spaces_per_value(column).tolist() == want
