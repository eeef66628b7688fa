"""Reports for people: CSV through pandas, HTML through Jinja2 templates (dates as a UK reader writes
them, "24 November 2026"; counts with their noun, "1 value", "2 values"), PDF from that HTML through
WeasyPrint, JSON for machines.

Reports hold counts, rules, dates and opaque ids, never personal data (an access package, which
does, renders its files in memory and encrypts them before anything is written). Each file is
written atomically, so a reader never sees half a report.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from include.common.files import write_atomically

_templates = Environment(loader=PackageLoader("include", "templates"), undefined=StrictUndefined,
                         autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)


def uk_date(value: date | str) -> str:
    """A date (or an ISO date or timestamp) as a UK reader writes it: 24 November 2026."""
    day = value if isinstance(value, date) else datetime.fromisoformat(value)
    return f"{day.day} {day:%B %Y}"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`2 values`, `1 value`; nouns: the plural where adding "s" does not make it (`2 entries`)."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def natural_key(text: object) -> tuple:
    """Sorts as people count: record 2 before record 10 (as text, "10" sorts before "2")."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                 for part in re.split(r"(\d+)", str(text)) if part)


_templates.filters.update(uk_date=uk_date, plural=plural)


# A spreadsheet reads a cell starting with one of these as a formula (or, after a tab or carriage
# return, may): `=HYPERLINK(...)`, `+cmd|...`, `-2+3`, `@SUM(...)`. OWASP's list.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: object) -> object:
    """Text that a spreadsheet would take for a formula, prefixed with ' so it stays text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_bytes(rows: Sequence[dict], columns: Sequence[str] | None = None) -> bytes:
    """Rows as CSV (RFC 4180); nested values (a JSON column) become one column per leaf. The project's
    one CSV writer: text cells (and headers) that a spreadsheet would run as formulas are neutralised."""
    # Imported here: pandas takes half a second to load, and most tasks that import this module
    # write no CSV (on Celery each task is a new process, so that cost is paid per task).
    import pandas as pd

    buffer = io.StringIO()
    frame = pd.json_normalize(list(rows)) if columns is None else pd.DataFrame(list(rows), columns=list(columns))
    frame = frame.map(neutralise_cell)
    frame.columns = [neutralise_cell(str(c)) for c in frame.columns]
    # RFC 4180's CRLF: a cell holding a bare carriage return is then quoted too (with "\n" lines it
    # was not, and a spreadsheet began a new row there, whose first cell nothing had neutralised).
    frame.to_csv(buffer, index=False, lineterminator="\r\n")
    return buffer.getvalue().encode()


def json_bytes(data: object) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True, default=str, ensure_ascii=False).encode()


def html_bytes(template: str, **context) -> bytes:
    return _templates.get_template(template).render(**context).encode()


def pdf_bytes(html: bytes) -> bytes:
    """The HTML as a printable PDF (A4, by the page's own print styles), made in memory like the
    HTML. WeasyPrint is imported here: it loads pango, which only PDFs need."""
    from weasyprint import HTML

    pdf = HTML(string=html.decode()).write_pdf()
    assert pdf is not None  # write_pdf returns the bytes when given no target
    return pdf


def write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> Path:
    write_atomically(path, csv_bytes(rows, columns), mode=0o640)
    return path


def write_json(path: Path, data: object) -> Path:
    write_atomically(path, json_bytes(data), mode=0o640)
    return path


def write_html(path: Path, template: str, **context) -> Path:
    write_atomically(path, html_bytes(template, **context), mode=0o640)
    return path
