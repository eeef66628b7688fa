"""The data map: one YAML file per client store, saying where a person's data is, whose each row is,
and what erasure does.

The vocabulary, used the same way throughout include/stores:
- A SQL store is a set of **tables**; each names its primary key and its **personal columns**, each
  with a data category. An **identity column** (email, phone, customer number, IP address) holds a
  value people are found by.
- A **reference** is a column of a child row holding a parent row's primary key (an order's
  customer_id). It is followed down: the parent's children are reached. With `owner: true` (the
  default) the parent's owner owns the child, and the reference is followed up too: an order found
  by its billing email reaches its account, then the account's other rows. `owner: false` marks a
  row that refers to another without belonging to its owner (a reply to someone's review). A
  reference may hold only `when` the row matches (a comment's post is an order only for order
  notes), and values listed in `none` (a guest order's customer_id 0) mean "no reference".
- A row's **owner** is the row its owner references lead up to; a row without one owns itself.
- A **key-value table** (entity id, key, value) names the keys that hold personal data; its other
  keys (an account's role) are not personal and never touched. A key's value may be an identity, or
  a reference to another table (a legacy order's `_customer_user`).
- **Erasure** per table, or per kind of row (`rows`): delete, mask (columns overwritten by a
  constant, NULL, a number or a per-row template such as `deleted-{ID}@site.invalid`), or retain
  under a named legal reason, with columns masked on the kept row if the map says so.
- `not_identities` lists values that are never a person's identity (a shop's system address).

A server-log store is a directory of combined-format logs, searched by the IP addresses found.
docs/data-map.md documents the format with worked examples; include/config/datamaps/templates/
holds ready maps for WooCommerce.
"""

from __future__ import annotations

import re
import string
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from include.common.identities import NORMALISERS
from include.common.models import StrictModel
from include.common.yamlfiles import DirectoryLoad, LoadedFile, load_yaml_dir, load_yaml_dir_each, load_yaml_file

NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"  # a SQL identifier we quote ourselves
STORE_ID = r"^[a-z0-9][a-z0-9-]{1,62}$"
LABEL = Field(default=None, min_length=1, max_length=200)

# The members are NORMALISERS' keys, so that the two never differ; mypy cannot list them.
IdentityKind = StrEnum("IdentityKind", {kind: kind for kind in NORMALISERS})  # type: ignore[misc]
Scalar = str | int | float | bool
Replacement = str | int | float | None  # what a masked value becomes


class ErasureAction(StrEnum):
    delete = "delete"  # the subject's rows go
    mask = "mask"  # the named columns are overwritten, the row stays (e.g. an account kept orders point at)
    retain = "retain"  # kept under a named legal reason (Art. 17(3)), and restricted; `mask` minimises it



def template_fields(replacement: Replacement) -> list[str]:
    """The columns a per-row template names: `deleted-{ID}@site.invalid` -> ["ID"] (ValueError, as
    the map's validation reports it, for a malformed one)."""
    if not isinstance(replacement, str):
        return []
    try:
        return [name for _, name, _, _ in string.Formatter().parse(replacement) if name is not None]
    except ValueError:
        raise ValueError("a mask template has an unmatched '{' or '}'") from None


class Condition(StrictModel):
    """`when`: column -> a value or a list of values the row's column must hold."""

    columns: dict[str, list[Scalar]]

    @classmethod
    def parse(cls, raw: dict | None) -> Condition | None:
        """The condition of a `when`; None for no `when`."""
        return cls.of(raw) if raw else None

    @classmethod
    def of(cls, raw: dict) -> Condition:
        return cls(columns={column: value if isinstance(value, list) else [value] for column, value in raw.items()})

    def holds(self, row: dict) -> bool:
        return all(_same_value(row.get(column), allowed) for column, allowed in self.columns.items())


def _same_value(value: object, allowed: list[Scalar]) -> bool:
    return value is not None and (value in allowed or str(value) in {str(a) for a in allowed})


class Reference(StrictModel):
    table: str = Field(pattern=NAME)
    owner: bool = True  # the parent's owner owns this row (followed up as well as down)
    when: dict[str, Scalar | list[Scalar]] = {}
    none: list[Scalar] = []  # values that mean "no reference" (NULL always does)

    @field_validator("when")
    @classmethod
    def _when_columns(cls, value: dict) -> dict:
        for column in value:
            if not re.match(NAME, column):
                raise ValueError(f"when names '{column}', which is not a column name")
        return value

    @property
    def condition(self) -> Condition | None:
        return Condition.parse(self.when)

    def target(self, row: dict, column: str) -> object | None:
        """The parent key this row holds, or None when it holds none (NULL, a `none` value, or the
        reference does not apply to this row)."""
        value = row.get(column)
        if value is None or _same_value(value, self.none) or (self.when and not Condition.of(self.when).holds(row)):
            return None
        return value


def _references(value: object) -> object:
    """`column: table` is short for `column: {table: table}`."""
    if isinstance(value, dict):
        return {column: {"table": target} if isinstance(target, str) else target for column, target in value.items()}
    return value


class Column(StrictModel):
    category: str = Field(min_length=1, max_length=64)
    identity: IdentityKind | None = None  # searched with (and adds to) the request's identities
    json_value: bool = Field(default=False, alias="json")  # parsed into the package, not left as a string
    free_text: bool = False  # may mention other people: their details are redacted


class KeyValue(StrictModel):
    key: str = Field(pattern=NAME)  # the column holding the key
    value: str = Field(pattern=NAME)  # the column holding the value
    personal_keys: dict[str, str] = Field(min_length=1)  # key -> data category; other keys are not personal
    identities: dict[str, IdentityKind] = {}  # key -> the identity its value is
    references: dict[str, Reference] = {}  # key -> the table whose primary key its value holds

    _refs = field_validator("references", mode="before")(lambda value: _references(value))


class Erasure(StrictModel):
    action: ErasureAction
    mask: dict[str, Replacement] = {}  # column (or key of a key-value table) -> replacement
    reason: str | None = Field(default=None, min_length=1, max_length=300)

    @model_validator(mode="after")
    def _complete(self) -> Erasure:
        if self.action == ErasureAction.mask and not self.mask:
            raise ValueError("mask names no column to overwrite")
        if self.action == ErasureAction.delete and self.mask:
            raise ValueError("mask is for action mask or retain, not delete")
        if self.action == ErasureAction.retain and not self.reason:
            raise ValueError("retain needs the legal reason the data is kept for")
        for replacement in self.mask.values():
            template_fields(replacement)
        return self


class RowRule(StrictModel):
    """What holds for the table's rows that match `when`, instead of the table's own settings."""

    when: dict[str, Scalar | list[Scalar]] = Field(min_length=1)
    instruction: str | None = Field(default=None, min_length=1, max_length=64)
    label: str | None = LABEL
    erasure: Erasure | None = None

    @property
    def condition(self) -> Condition:
        return Condition.of(self.when)


class Table(StrictModel):
    instruction: str = Field(min_length=1, max_length=64)  # the controller's instruction category for it
    primary_key: str = Field(pattern=NAME)
    # Plain words for the person ("Your customer account"); by default the table's name, capitalised.
    label: str | None = LABEL
    # Where the data came from ("you, when you registered"); by default the controller's records.
    source: str | None = LABEL
    when: dict[str, Scalar | list[Scalar]] = {}  # only rows matching are in the map (orders among posts)
    references: dict[str, Reference] = {}  # column -> the table whose primary key it holds
    columns: dict[str, Column] = {}
    key_value: KeyValue | None = None
    erasure: Erasure
    rows: list[RowRule] = []  # per kind of row, first match wins
    # The column with the date a row relates to (an order's date): when a kept row's period ends.
    dated_by: str | None = Field(default=None, pattern=NAME)

    _refs = field_validator("references", mode="before")(lambda value: _references(value))

    @property
    def scope(self) -> Condition | None:
        return Condition.parse(self.when)

    def rule(self, row: dict) -> tuple[int, RowRule | None]:
        """(1-based index, rule) of the first row rule the row matches, or (0, None)."""
        for index, rule in enumerate(self.rows, start=1):
            if rule.condition.holds(row):
                return index, rule
        return 0, None

    def erasure_of(self, row: dict) -> Erasure:
        _, rule = self.rule(row)
        return rule.erasure if rule and rule.erasure else self.erasure

    def instruction_of(self, row: dict) -> str:
        _, rule = self.rule(row)
        return rule.instruction if rule and rule.instruction else self.instruction

    def erasures(self) -> list[Erasure]:
        return [self.erasure, *(rule.erasure for rule in self.rows if rule.erasure)]

    def condition_columns(self) -> list[str]:
        """Columns `when` conditions read, which every query of the table must fetch."""
        names = [*self.when, *(c for ref in self.references.values() for c in ref.when),
                 *(c for rule in self.rows for c in rule.when)]
        return list(dict.fromkeys(names))


class LogDirectory(StrictModel):
    directory: str = Field(min_length=1)  # under GDPR_SERVER_LOG_ROOT
    pattern: str = "access.log*"
    instruction: str = Field(default="server_log", min_length=1, max_length=64)
    label: str | None = LABEL  # plain words for the person; the package's default says "server logs"
    source: str | None = LABEL  # where the lines came from; by default, the person's browser

    def path(self, log_root: Path) -> Path:
        return Path(log_root) / self.directory


class DataMap(StrictModel):
    store: str = Field(pattern=STORE_ID)
    controller: str = Field(min_length=1, max_length=64)
    kind: Literal["sql", "server_logs"]
    description: str = ""
    connection: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,250}$")  # an Airflow conn_id
    not_identities: dict[IdentityKind, list[str]] = {}  # values never taken as a person's identity
    tables: dict[str, Table] = {}
    logs: LogDirectory | None = None

    @model_validator(mode="after")
    def _fits_kind(self) -> DataMap:
        if self.kind == "sql" and (not self.connection or not self.tables):
            raise ValueError("a sql store needs a connection and at least one table")
        if self.kind == "server_logs" and (self.logs is None or self.tables):
            raise ValueError("a server_logs store needs logs and no tables")
        return self

    def identity_columns(self, table: str) -> dict[str, IdentityKind]:
        return {name: column.identity for name, column in self.tables[table].columns.items() if column.identity}

    def dated_from(self, table: str, seen: frozenset = frozenset()) -> str | None:
        """The table whose dated_by dates `table`'s rows: itself, or the nearest it references."""
        if self.tables[table].dated_by:
            return table
        for reference in self.tables[table].references.values():
            if reference.table not in seen and (found := self.dated_from(reference.table, seen | {table})):
                return found
        return None

    def children(self, table: str) -> list[tuple[str, str, Reference]]:
        """(child table, its column, the reference) for each column reference to `table`."""
        return [(name, column, reference) for name, spec in self.tables.items()
                for column, reference in spec.references.items() if reference.table == table]

    def value_references(self, table: str) -> list[tuple[str, str, Reference]]:
        """(key-value table, key, reference) for each key whose value references `table`."""
        return [(name, key, reference) for name, spec in self.tables.items() if spec.key_value
                for key, reference in spec.key_value.references.items() if reference.table == table]


def _check_references(loaded: LoadedFile[DataMap]) -> None:
    data_map = loaded.content
    tables = data_map.tables
    for name, table in tables.items():
        where = ("tables", name)
        known = {table.primary_key, *table.references, *table.columns, *table.condition_columns(),
                 *([table.dated_by] if table.dated_by else [])}
        refs: list[tuple[tuple[str, ...], Reference]] = [(("references", c), r) for c, r in table.references.items()]
        if table.key_value:
            refs += [(("key_value", "references", k), r) for k, r in table.key_value.references.items()]
            known |= {table.key_value.key, table.key_value.value}
        for path, reference in refs:
            if reference.table not in tables:
                raise loaded.error((*where, *path), f"references table '{reference.table}', which the map "
                                                    "does not describe")
        for index, erasure in enumerate(table.erasures()):
            erasure_path = (*where, "erasure") if index == 0 else (*where, "rows", index - 1, "erasure")
            _check_mask(loaded, erasure_path, table, erasure, known)
        kv = table.key_value
        if kv and (extra := sorted(kv.identities.keys() - kv.personal_keys.keys())):
            raise loaded.error((*where, "key_value", "identities", extra[0]),
                               f"key '{extra[0]}' is not in personal_keys")
        if not table.references and not data_map.identity_columns(name) and not (
                table.key_value and table.key_value.identities) and not data_map.value_references(name):
            raise loaded.error(where, "is never reached: it has no identity column and references no table")
    for name, table in tables.items():
        _erasure_consistent(loaded, name, table)


def _check_mask(loaded: LoadedFile[DataMap], path: tuple, table: Table, erasure: Erasure, known: set[str]) -> None:
    """A key-value table's mask overwrites personal keys; a table's may overwrite any of its columns
    (a password hash kept out of packages, yet blanked on erasure), which the live check confirms.
    Templates name columns of the row."""
    for column, replacement in erasure.mask.items():
        if table.key_value and column not in table.key_value.personal_keys:
            raise loaded.error((*path, "mask", column), f"masks key '{column}', which is not among the table's "
                                                        "personal_keys")
        if not table.key_value and not re.match(NAME, column):
            raise loaded.error((*path, "mask", column), f"masks '{column}', which is not a column name")
        for field in template_fields(replacement):
            if field not in known:
                raise loaded.error((*path, "mask", column), f"template names '{field}', which is not a column "
                                                            "the map gives for this table")


def _erasure_consistent(loaded: LoadedFile[DataMap], name: str, table: Table) -> None:
    """A kept row must not point at a deleted one, and a kept row must have a date its period runs from."""
    data_map = loaded.content
    if table.erasure.action == ErasureAction.delete and not table.key_value:
        for child, column, _ in data_map.children(name):
            if child != name and any(e.action != ErasureAction.delete for e in data_map.tables[child].erasures()):
                raise loaded.error(("tables", name, "erasure", "action"),
                                   f"deletes rows that table '{child}' keeps (through {child}.{column}): mask this "
                                   "table's personal columns instead")
    if any(e.action == ErasureAction.retain for e in table.erasures()) and data_map.dated_from(name) is None:
        raise loaded.error(("tables", name, "erasure"), "retain needs dated_by (the column with the date the "
                           "row relates to) on this table or on a table it references")


def load_data_map(path: Path) -> LoadedFile[DataMap]:
    """Parse and validate one store's map; InvalidInput names the file, the line and the field."""
    loaded = load_yaml_file(path, DataMap, "store, controller, kind and tables or logs")
    _check_references(loaded)
    return loaded


def load_data_maps(directory: Path) -> list[LoadedFile[DataMap]]:
    return load_yaml_dir(directory, load_data_map, what="data map", key="store")


def load_data_maps_each(directory: Path) -> DirectoryLoad[DataMap]:
    """Every map of the directory that loads, and each one that does not with its error."""
    return load_yaml_dir_each(directory, load_data_map, what="data map", key="store")
