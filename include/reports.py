"""Reports for people: CSV through pandas, HTML through Jinja2 templates, JSON for machines.

Reports hold counts, rules, dates and opaque ids, never personal data. Each file is written
atomically, so a reader never sees half a report.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from include.files import write_atomically

_templates = Environment(loader=PackageLoader("include", "templates"), undefined=StrictUndefined,
                         autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)


def write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> Path:
    buffer = io.StringIO()
    pd.DataFrame(list(rows), columns=list(columns)).to_csv(buffer, index=False)
    write_atomically(path, buffer.getvalue().encode(), mode=0o640)
    return path


def write_json(path: Path, data: object) -> Path:
    write_atomically(path, json.dumps(data, indent=2, sort_keys=True, default=str).encode(), mode=0o640)
    return path


def write_html(path: Path, template: str, **context) -> Path:
    write_atomically(path, _templates.get_template(template).render(**context).encode(), mode=0o640)
    return path
