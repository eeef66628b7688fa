"""Connectors: find one person's data in a store, generic over the data map.

Every connector takes the identities known so far and returns the records it found, each with the
identity or reference that led to it, and the further identities those records hold (an account's
phone number, the IP addresses an order came from). No table or column name is written here: they
all come from the map.

- SQL stores (PostgreSQL, MariaDB/MySQL, SQLite) through SQLAlchemy: tables with identity columns
  are searched with the identities of their kinds; the rows found lead, through the map's
  references, to the rows that hang off them, to any depth.
- The vault: blind-index lookups, never a scan; fields are decrypted with the subject's key.
- Server logs (combined format, plain or gzipped): the lines whose client address is one found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import phonenumbers
from sqlalchemy import Engine, MetaData, Table, and_, inspect, or_, select
from sqlalchemy.exc import DBAPIError

from include.datamap.model import DataMap
from include.errors import InvalidInput, StoreUnavailable
from include.identities import NORMALISERS
from include.serverlogs import lines_from_hosts
from include.vault.keystore import chunks
from include.vault.store import Vault
from include.yamlfiles import LoadedFile

SEARCHED_KINDS = ("email", "phone", "customer_number")  # an IP is shared: it finds only log lines
IN_CHUNK = 1000


@dataclass
class IdentitySet:
    """Normalised identities by kind, each with where it came from."""

    sources: dict[str, dict[str, str]] = field(default_factory=lambda: {kind: {} for kind in NORMALISERS})
    spellings: dict[str, dict[str, list[str]]] = field(default_factory=lambda: {kind: {} for kind in NORMALISERS})

    def add(self, kind: str, value: object, source: str) -> bool:
        """Add a value found in a store; one that is not a valid identity of its kind is skipped.
        The value as written is kept too: a store may hold it so (an address in capitals)."""
        try:
            normalised = NORMALISERS[kind](value)
        except InvalidInput:
            return False
        written = self.spellings[kind].setdefault(normalised, [])
        if str(value).strip() not in written:
            written.append(str(value).strip())
        if normalised in self.sources[kind]:
            return False
        self.sources[kind][normalised] = source
        return True

    def values(self, kind: str) -> list[str]:
        return list(self.sources[kind])

    def merge(self, other: IdentitySet) -> bool:
        grew = False
        for kind, values in other.sources.items():
            for value, source in values.items():
                for written in other.spellings[kind].get(value, [value]):
                    grew |= self.add(kind, written, source)
        return grew

    def written(self, kind: str, value: str) -> list[str]:
        """Every way a store may have written the identity: as given or found, and canonical forms."""
        forms = [value, *self.spellings[kind].get(value, [])]
        if kind == "phone":
            number = phonenumbers.parse(value)
            canonical = [phonenumbers.format_number(number, f) for f in (
                phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.NATIONAL,
                phonenumbers.PhoneNumberFormat.INTERNATIONAL)]
            forms += canonical + [f.replace(" ", "") for f in canonical]
        return list(dict.fromkeys(forms))

    def describe(self, kind: str, value: str) -> str:
        return f"{kind} {value} ({self.sources[kind][value]})"

    def to_json(self) -> dict:
        return {kind: {"sources": values, "spellings": self.spellings[kind]}
                for kind, values in self.sources.items() if values}

    @classmethod
    def from_json(cls, data: dict) -> IdentitySet:
        found = cls()
        for kind, values in data.items():
            found.sources[kind].update(values["sources"])
            found.spellings[kind].update(values["spellings"])
        return found


@dataclass(frozen=True)
class FoundRecord:
    store: str
    table: str
    key: str
    data: dict[str, Any]
    led_by: str


@dataclass
class StoreResult:
    store: str
    kind: str
    records: list[FoundRecord] = field(default_factory=list)
    identities: IdentitySet = field(default_factory=IdentitySet)

    def to_json(self) -> dict:
        return {"store": self.store, "kind": self.kind, "identities": self.identities.to_json(),
                "records": [r.__dict__ for r in self.records]}

    @classmethod
    def from_json(cls, data: dict) -> StoreResult:
        return cls(data["store"], data["kind"], [FoundRecord(**r) for r in data["records"]],
                   IdentitySet.from_json(data["identities"]))


def _plain(value: Any) -> Any:
    """A store's value as JSON can hold it."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class SqlConnector:
    """One SQL store described by a data map, reached through a SQLAlchemy engine."""

    def __init__(self, loaded: LoadedFile[DataMap], engine: Engine) -> None:
        if loaded.content.kind != "sql":
            raise InvalidInput(f"{loaded.path}: store '{loaded.content.store}' is not a sql store")
        self.loaded = loaded
        self.map = loaded.content
        self.engine = engine
        self.tables: dict[str, Table] = {}

    def reflect(self) -> None:
        """The map's tables as the store has them; a table or column the store lacks is named with
        the map's file and line."""
        if self.tables:
            return
        inspector = inspect(self.engine)
        existing = set(inspector.get_table_names())
        metadata = MetaData()
        for name, spec in self.map.tables.items():
            if name not in existing:
                raise self.loaded.error(("tables", name), f"table '{name}' is not in store '{self.map.store}'")
            table = Table(name, metadata, autoload_with=self.engine)
            needed = {spec.primary_key: ("primary_key",), **{c: ("references", c) for c in spec.references},
                      **{c: ("columns", c) for c in spec.columns},
                      **({spec.dated_by: ("dated_by",)} if spec.dated_by else {})}
            if spec.key_value:
                needed |= {spec.key_value.key: ("key_value", "key"), spec.key_value.value: ("key_value", "value")}
            for column, where in needed.items():
                if column not in table.c:
                    raise self.loaded.error(("tables", name, *where),
                                            f"column '{column}' is not in table '{name}' of store '{self.map.store}'")
            self.tables[name] = table

    def _columns(self, name: str) -> list:
        spec, table = self.map.tables[name], self.tables[name]
        names = [spec.primary_key, *spec.references, *spec.columns, *([spec.dated_by] if spec.dated_by else [])]
        if spec.key_value:
            names += [spec.key_value.key, spec.key_value.value]
        return [table.c[n] for n in dict.fromkeys(names)]

    def found_rows(self, identities: IdentitySet) -> tuple[dict[str, dict[Any, tuple[dict, str]]], IdentitySet]:
        """The person's rows as stored, {table: {primary key: (row, what led to it)}}, and every
        identity known once they were found. StoreUnavailable if the store cannot be searched."""
        try:
            self.reflect()
            known = IdentitySet()
            known.merge(identities)
            found: dict[str, dict[Any, tuple[dict, str]]] = {name: {} for name in self.map.tables}
            searched: set[tuple[str, str]] = set()
            with self.engine.connect() as conn:
                while True:
                    new_rows = self._search(conn, known, searched, found)
                    new_rows += self._follow(conn, found)
                    if not self._discover(found, known) and not new_rows:
                        break
        except DBAPIError as exc:
            raise StoreUnavailable(f"store '{self.map.store}' cannot be searched: {type(exc.orig).__name__}") from None
        return found, known

    def gather(self, identities: IdentitySet) -> StoreResult:
        found, known = self.found_rows(identities)
        result = StoreResult(self.map.store, "sql")
        for name, rows in found.items():
            for key, (row, led_by) in sorted(rows.items(), key=lambda item: str(item[0])):
                data = self._personal(name, row)
                if data is not None:
                    result.records.append(FoundRecord(self.map.store, name, str(key), data, led_by))
        result.identities = known
        return result

    def _search(self, conn, known: IdentitySet, searched: set, found: dict) -> int:
        """Rows of tables with identity columns whose value is a known identity not searched yet."""
        added = 0
        for kind in SEARCHED_KINDS:
            fresh = [v for v in known.values(kind) if (kind, v) not in searched]
            searched.update((kind, v) for v in fresh)
            if not fresh:
                continue
            spelled = {s: v for v in fresh for s in known.written(kind, v)}
            for name, spec in self.map.tables.items():
                table = self.tables[name]
                columns = [c for c, col in spec.columns.items() if col.identity == kind]
                conditions = [table.c[c].in_(list(spelled)) for c in columns]
                if spec.key_value and (keys := [k for k, i in spec.key_value.identities.items() if i == kind]):
                    conditions.append(and_(table.c[spec.key_value.key].in_(keys),
                                           table.c[spec.key_value.value].in_(list(spelled))))
                if not conditions:
                    continue
                for row in conn.execute(select(*self._columns(name)).where(or_(*conditions))).mappings():
                    hit = next((row[c] for c in columns if row[c] in spelled), None)
                    if hit is None:  # matched through the key-value table's value column
                        hit = row[spec.key_value.value]
                    key = row[spec.primary_key]
                    if key not in found[name]:
                        found[name][key] = (dict(row), known.describe(kind, spelled[hit]))
                        added += 1
        return added

    def _follow(self, conn, found: dict) -> int:
        """Rows that reference rows found, to any depth."""
        added = 0
        frontier = {name: set(rows) for name, rows in found.items() if rows}
        while frontier:
            following: dict[str, set] = {}
            for parent, keys in frontier.items():
                for child, column in self.map.children(parent):
                    table = self.tables[child]
                    for part in chunks(sorted(keys, key=str), IN_CHUNK):
                        for row in conn.execute(select(*self._columns(child))
                                                .where(table.c[column].in_(part))).mappings():
                            key = row[self.map.tables[child].primary_key]
                            if key not in found[child]:
                                found[child][key] = (dict(row), f"{child}.{column} = {parent} #{row[column]}")
                                following.setdefault(child, set()).add(key)
                                added += 1
            frontier = following
        return added

    def _discover(self, found: dict, known: IdentitySet) -> bool:
        grew = False
        for name, rows in found.items():
            spec = self.map.tables[name]
            for key, (row, _) in rows.items():
                for column, col in spec.columns.items():
                    if col.identity and row.get(column) is not None:
                        grew |= known.add(col.identity, row[column], f"{self.map.store} {name}.{column} #{key}")
                if spec.key_value and row.get(spec.key_value.key) in spec.key_value.identities:
                    kind = spec.key_value.identities[row[spec.key_value.key]]
                    grew |= known.add(kind, row[spec.key_value.value],
                                      f"{self.map.store} {name} {row[spec.key_value.key]} #{key}")
        return grew

    def _personal(self, name: str, row: dict) -> dict | None:
        """The row as the package shows it; None for a key-value row whose key is not personal."""
        spec = self.map.tables[name]
        data = {spec.primary_key: _plain(row[spec.primary_key])}
        data |= {column: _plain(row[column]) for column in spec.references}
        for column, col in spec.columns.items():
            value = row[column]
            if col.json_value and isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    pass  # shown as stored
            data[column] = value if col.json_value else _plain(value)
        if spec.key_value:
            key = row[spec.key_value.key]
            if key not in spec.key_value.personal_keys:
                return None
            data |= {spec.key_value.key: key, spec.key_value.value: _plain(row[spec.key_value.value]),
                     "category": spec.key_value.personal_keys[key]}
        return data


class LogConnector:
    """A directory of combined-format server logs, searched by the IP addresses found."""

    def __init__(self, loaded: LoadedFile[DataMap], log_root: Path) -> None:
        self.map = loaded.content
        self.directory = self.map.logs.path(log_root)
        self.loaded = loaded

    def gather(self, identities: IdentitySet) -> StoreResult:
        if not self.directory.is_dir():
            raise StoreUnavailable(f"store '{self.map.store}': log directory {self.directory} does not exist")
        result = StoreResult(self.map.store, "server_logs")
        hosts = identities.values("ip")
        for path in sorted(p for p in self.directory.glob(self.map.logs.pattern) if p.is_file()):
            for number, (host, line) in enumerate(lines_from_hosts(path, hosts)):
                result.records.append(FoundRecord(self.map.store, path.name, f"{path.name}:{number}",
                                                  {"line": line}, identities.describe("ip", host)))
        return result


class VaultConnector:
    """The agency's own encrypted vault, searched by blind index only."""

    store = "vault"

    def __init__(self, vault: Vault, controller_id: str) -> None:
        self.vault = vault
        self.controller_id = controller_id

    def subjects(self, identities: IdentitySet) -> dict[str, str]:
        """{subject id: the identity that led to them} for the identities (blind-index lookups)."""
        subjects: dict[str, str] = {}
        try:
            for kind in SEARCHED_KINDS:
                for value in identities.values(kind):
                    for subject_id in self.vault.find_subjects(self.controller_id, kind, value):
                        subjects.setdefault(subject_id, identities.describe(kind, value))
        except DBAPIError as exc:
            raise StoreUnavailable(f"the vault cannot be searched: {type(exc.orig).__name__}") from None
        return subjects

    def gather(self, identities: IdentitySet) -> StoreResult:
        result = StoreResult(self.store, "vault")
        subjects = self.subjects(identities)
        try:
            for subject_id, led_by in subjects.items():
                for view in self.vault.read_records(self.vault.subject_record_ids(subject_id)):
                    data = {"category": view.category, "purpose": view.purpose, "source": view.source,
                            "created_at": view.created_at.isoformat(),
                            "retention_end": view.retention_end.isoformat() if view.retention_end else None,
                            **view.fields}
                    result.records.append(FoundRecord(self.store, view.category, view.id, data, led_by))
                    for kind in SEARCHED_KINDS:
                        if kind in view.fields:
                            result.identities.add(kind, view.fields[kind], f"vault {view.category} {view.id}")
        except DBAPIError as exc:
            raise StoreUnavailable(f"the vault cannot be searched: {type(exc.orig).__name__}") from None
        result.identities.merge(identities)
        return result
