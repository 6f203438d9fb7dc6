"""Write spillguard/detect/data/given_names.txt: the given-name gazetteer of the free-text name finder.

    pip download --no-deps nomquamgender==0.1.4 -d /tmp/nqg     # MIT, Ian Van Buskirk: counts of given names
    python scripts/make_given_names.py /tmp/nqg/nomquamgender-0.1.4-py3-none-any.whl

Keeps a name seen by at least MIN_SOURCES of the package's public sources with at least MIN_COUNT people, spelt in
letters only, folded to lower case without accents (the package's own spelling), minus English function words.
The package is read once here, not at run time: its 22 MB table takes seconds and 300 MB to load.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

MIN_SOURCES = 3
MIN_COUNT = 50
OUT = Path(__file__).resolve().parent.parent / "spillguard" / "detect" / "data" / "given_names.txt"


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    from spacy.lang.en.stop_words import STOP_WORDS

    with zipfile.ZipFile(sys.argv[1]) as wheel:
        table = json.loads(wheel.read("nomquamgender/name_data.json"))
    names = sorted(
        f"{name}\t{sources}\t{count}" for name, (sources, count, *_rest) in table.items()
        if sources >= MIN_SOURCES and count >= MIN_COUNT and name.isascii() and name.isalpha() and len(name) >= 2
        and name not in STOP_WORDS
    )
    header = (f"# Given names: nomquamgender 0.1.4 (MIT, Copyright (c) 2022 Ian Van Buskirk), >= {MIN_SOURCES} sources "
              f"and >= {MIN_COUNT} people; written by scripts/make_given_names.py\n")
    OUT.write_text(header + "\n".join(names) + "\n", encoding="utf-8")
    print(f"{len(names):,} names -> {OUT}")


if __name__ == "__main__":
    main()
