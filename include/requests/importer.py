"""Importing a backlog of requests from CSV, with their original received dates.

Columns: controller, reference, received_on (YYYY-MM-DD), email; optional: phone, customer_number,
kind (default access), identity_verified_on, fee_received_on. Every row is checked before any is
registered, so a bad file registers nothing; a reference already registered for its controller is
skipped, so importing a file twice registers each request once. Errors name the line and the column
and what is wrong, never a cell's value (a shifted row puts an email where a controller should be).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from difflib import get_close_matches
from pathlib import Path
from typing import TypedDict

import pandas as pd

from include.common.errors import GdprError, InvalidInput
from include.common.identities import NORMALISERS
from include.requests.kinds import KINDS
from include.requests.register import REFERENCE_MAX, register_request
from include.vault.store import Vault

REQUIRED = ("controller", "reference", "received_on", "email")
OPTIONAL = ("phone", "customer_number", "kind", "identity_verified_on", "fee_received_on")
MAX_ROWS = 100_000


@dataclass(frozen=True)
class ImportResult:
    rows: int
    request_ids: list[str]


class _Request(TypedDict):
    """One row's request, as register_request takes it."""
    controller_id: str
    reference: str
    kind: str
    received_on: date
    identity_verified_on: date | None
    fee_received_on: date | None
    identities: dict[str, list[str]]


def _date(value: str, where: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{where}: not a date (YYYY-MM-DD)") from None


def _optional_date(value: str, where: str) -> date | None:
    return _date(value, where) if value else None


def _column(index: int, header: object) -> str:
    """An unknown column by its position, with the known column its header looks like a typo of."""
    near = get_close_matches(str(header).strip().lower(), REQUIRED + OPTIONAL, n=1, cutoff=0.75)
    return f"column {index + 1}" + (f" (did you mean '{near[0]}'?)" if near else "")


def import_requests(vault: Vault, path: Path, *, actor: str, at: datetime) -> ImportResult:
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=MAX_ROWS + 1)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InvalidInput(f"{path}: not a readable CSV file ({type(exc).__name__})") from None
    if missing := [c for c in REQUIRED if c not in frame.columns]:
        raise InvalidInput(f"{path}:1: missing column(s) {', '.join(missing)}")
    if unknown := [i for i, c in enumerate(frame.columns) if c not in REQUIRED + OPTIONAL]:
        # A header is named only as the column it is: a file without one has a person's details there.
        raise InvalidInput(f"{path}:1: unknown column(s) {', '.join(_column(i, frame.columns[i]) for i in unknown)}; "
                           f"the columns are {', '.join(REQUIRED + OPTIONAL)} (the first line must name them)")
    if len(frame) > MAX_ROWS:
        raise InvalidInput(f"{path}: more than {MAX_ROWS:,} rows")
    controllers = set(vault.controller_ids())
    rows: list[tuple[int, _Request]] = []  # (line, request)
    for index, row in enumerate(frame.to_dict("records")):
        line = index + 2  # the header is line 1
        where = f"{path}:{line}"
        values = {k: (row.get(k) or "").strip() for k in REQUIRED + OPTIONAL}
        for column in REQUIRED:
            if not values[column]:
                raise InvalidInput(f"{where}: {column}: empty")
        if values["controller"] not in controllers:
            raise InvalidInput(f"{where}: controller: not a controller registered in the vault")
        kind = values["kind"] or "access"
        if kind not in KINDS:
            raise InvalidInput(f"{where}: kind: not one of {', '.join(KINDS)}")
        # Every row is checked before any is registered: a file is taken whole or not at all.
        if len(values["reference"]) > REFERENCE_MAX:
            raise InvalidInput(f"{where}: reference: longer than {REFERENCE_MAX} characters")
        identities = {k: [values[k]] for k in ("email", "phone", "customer_number") if values[k]}
        for k, (value,) in identities.items():
            try:
                NORMALISERS[k](value)
            except InvalidInput as exc:
                raise InvalidInput(f"{where}: {k}: {exc}") from None
        rows.append((line, {
            "controller_id": values["controller"], "reference": values["reference"], "kind": kind,
            "received_on": _date(values["received_on"], f"{where}: received_on"),  # required: checked above
            "identity_verified_on": _optional_date(values["identity_verified_on"], f"{where}: identity_verified_on"),
            "fee_received_on": _optional_date(values["fee_received_on"], f"{where}: fee_received_on"),
            "identities": identities}))
    ids = []
    for line, request in rows:
        try:
            ids.append(register_request(vault, actor=actor, at=at, **request))
        except GdprError as exc:
            raise type(exc)(f"{path}:{line}: {exc}") from None
    return ImportResult(len(rows), ids)
