"""Writes the signature table of docs/architecture.md and docs/serving.md from the registry
(captioning/export/signatures.py), between the table's marker comments; tests/export/test_signatures.py fails
while a page's table differs.

    .venv/bin/python scripts/signature_table.py
"""

import pathlib
import sys

from captioning.export.signatures import markdown_table

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
PAGES = (DOCS / "architecture.md", DOCS / "serving.md")
BEGIN = "<!-- signature table: written by scripts/signature_table.py from captioning/export/signatures.py -->\n"
END = "<!-- end of the signature table -->\n"


def table_in(text: str) -> str:
    """The table between the markers of a page's text."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end]


def main() -> int:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        written = text.replace(BEGIN + table_in(text) + END, BEGIN + markdown_table() + END)
        page.write_text(written, encoding="utf-8")
        print(f"{page.name}: the signature table {'was already' if written == text else 'is now'} the registry's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
