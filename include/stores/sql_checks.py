"""What `gdpr-admin datamap validate --live` checks of a SQL store against its data map: the tables
and columns the map names, the index each identity and reference needs for a request to stay
index-assisted on a large table, case-insensitive collations on MariaDB/MySQL, and UNIQUE columns
that a constant mask would break on the second erasure. Each finding names the map's file, line
and field; `searches` says in words what a request would search.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import inspect, text
from sqlalchemy.exc import SAWarning

from include.common.database import database_errors
from include.datamap.model import template_fields
from include.stores.identities import STRONG_KINDS
from include.stores.sql import SqlStore


@dataclass(frozen=True)
class Finding:
    where: str  # file:line: field
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def search_index(dialect: str, table: str, column: str, kind: str | None) -> str:
    """The index a store needs for a request to find `kind` in `column` without a scan."""
    name = f"ix_gdpr_{table}_{column}"[:60].lower()
    quote = "`" if dialect in ("mysql", "mariadb") else '"'  # WordPress's columns have capitals (comment_author_IP)
    table, column = f"{quote}{table}{quote}", f"{quote}{column}{quote}"
    if kind in STRONG_KINDS and dialect in ("postgresql", "sqlite"):
        fold = "lower" if kind == "email" else "upper"
        return f"CREATE INDEX {name} ON {table} ({fold}(trim({column})))"
    return f"CREATE INDEX {name} ON {table} ({column})"


def _flat(sql: str) -> str:
    """An index definition without casts, quotes and spaces, lower case, for comparison."""
    flat = re.sub(r"::[a-z ]+?(?=[),])|[\"`\s]", "", sql.lower())
    return flat.replace("btrim(", "trim(").replace("trim(bothfrom", "trim(")


class _Indexes:
    """The indexes of one table, as the backend reports them."""

    def __init__(self, store: SqlStore, conn, table: str) -> None:
        self.dialect = store.engine.dialect.name
        inspector = inspect(conn)
        with warnings.catch_warnings():  # expression indexes are read below, from the catalogue
            warnings.simplefilter("ignore", SAWarning)
            indexes = inspector.get_indexes(table)
            constraints = inspector.get_unique_constraints(table)
        self.plain = [[c for c in i["column_names"] if c] for i in indexes]
        self.plain.append(inspector.get_pk_constraint(table)["constrained_columns"])
        self.unique = [i["column_names"] for i in indexes if i.get("unique")]
        self.unique += [c["column_names"] for c in constraints]
        self.expressions: list[str] = []
        if self.dialect == "postgresql":
            self.expressions = [_flat(d) for d in conn.execute(text(
                "SELECT indexdef FROM pg_indexes WHERE tablename = :t AND schemaname = current_schema()"),
                {"t": table}).scalars()]
        elif self.dialect == "sqlite":
            self.expressions = [_flat(d) for d in conn.execute(text(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t AND sql IS NOT NULL"),
                {"t": table}).scalars()]

    def serves(self, column: str, kind: str | None) -> bool:
        if kind in STRONG_KINDS and self.dialect in ("postgresql", "sqlite"):
            fold = "lower" if kind == "email" else "upper"
            wanted = (f"{fold}(trim({column.lower()}))", f"{fold}(trim(({column.lower()})))")
            return any(w in e for e in self.expressions for w in wanted)
        return any(names and names[0] == column for names in self.plain)

    def is_unique(self, column: str) -> bool:
        return [column] in self.unique


def _python_type(sql_type) -> type | None:
    try:
        return sql_type.python_type
    except NotImplementedError:
        return None


def _type_findings(store: SqlStore, name: str, types: dict, at) -> list[Finding]:
    """Identities are compared as text; a kept row's date must be a date; a reference must hold what
    the key it names holds."""
    spec, findings = store.map.tables[name], []
    for column, col in spec.columns.items():
        if col.identity and _python_type(types[column]) is not str:
            findings.append(Finding(at("tables", name, "columns", column), (
                f"{name}.{column} has type {types[column]}, but a {col.identity} is compared as text: map a text "
                "column, or a view that casts it")))
    if spec.dated_by and _python_type(types[spec.dated_by]) not in (date, datetime, str):
        findings.append(Finding(at("tables", name, "dated_by"), f"{name}.{spec.dated_by} has type "
                                                                f"{types[spec.dated_by]}, not a date"))
    for column, reference in spec.references.items():
        target = store.map.tables[reference.table].primary_key
        parent = _python_type(store.tables[reference.table].c[target].type) if store.tables else None
        if parent and _python_type(types[column]) not in (parent, None):
            findings.append(Finding(at("tables", name, "references", column), (
                f"{name}.{column} has type {types[column]}, but the key it references, {reference.table}.{target}, "
                "holds another type")))
    return findings


def _collations(conn, table: str) -> dict[str, str | None]:
    return dict(conn.execute(text(
        "SELECT COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"), {"t": table}).all())


def check_store(store: SqlStore) -> list[Finding]:
    """Every problem of the map against the live store; StoreUnavailable if it cannot be reached."""
    loaded, data_map = store.loaded, store.map

    def at(*path) -> str:
        return f"{loaded.path}:{loaded.line_of(*path)}: " + ".".join(str(p) for p in path)
    with database_errors(f"store '{store.id}'", "checked"):
        findings = [Finding(*str(problem).split(": ", 1)) for problem in store.schema_problems()]
        if findings:
            return findings
        store.reflect()
        with store.engine.connect() as conn:
            dialect = store.engine.dialect.name
            for name, spec in data_map.tables.items():
                indexes = _Indexes(store, conn, name)
                collations = _collations(conn, name) if dialect in ("mysql", "mariadb") else {}
                findings += _type_findings(store, name, {c["name"]: c["type"] for c in inspect(conn).get_columns(name)},
                                           at)
                searched: list[tuple[str, str | None, tuple[str | int, ...]]] = [
                    (column, str(col.identity), ("columns", column)) for column, col in spec.columns.items()
                    if col.identity]
                if spec.key_value and spec.key_value.identities:
                    searched.append((spec.key_value.key, None, ("key_value", "key")))
                searched += [(column, None, ("references", column)) for column in spec.references]
                for column, kind, path in searched:
                    if not indexes.serves(column, kind):
                        findings.append(Finding(at("tables", name, *path), (
                            f"no index serves the search of {name}.{column}: every request reads the whole "
                            f"table; create one: {search_index(dialect, name, column, kind)}")))
                    collation = collations.get(column) or ""
                    if dialect in ("mysql", "mariadb") and kind in STRONG_KINDS and not collation.endswith("_ci"):
                        findings.append(Finding(at("tables", name, *path), (
                            f"{name}.{column} has the case-sensitive collation {collation or 'binary'}: "
                            "the same address in another case would be missed; give it a _ci collation")))
                for index, erasure in enumerate(spec.erasures()):
                    path = ("erasure",) if index == 0 else ("rows", index - 1, "erasure")
                    for column, replacement in erasure.mask.items():
                        if (not spec.key_value and indexes.is_unique(column) and replacement is not None
                                and not template_fields(replacement)):
                            findings.append(Finding(at("tables", name, *path, "mask", column), (
                                f"{name}.{column} is UNIQUE, so the constant mask {replacement!r} fails on the "
                                f"second erasure; use a per-row template such as "
                                f"'deleted-{{{spec.primary_key}}}@site.invalid', or null")))
    return findings


def searches(store: SqlStore) -> list[str]:
    """In words, what a request searches in the store, table by table."""
    lines = []
    for name, spec in store.map.tables.items():
        found_by = [f"{kind} in {column}" for column, kind in store.map.identity_columns(name).items()
                    if kind != "ip"]
        if spec.key_value:
            found_by += [f"{kind} under key {key}" for key, kind in spec.key_value.identities.items() if kind != "ip"]
        follows = [f"{column} -> {ref.table}{' (owner)' if ref.owner else ''}"
                   + (f" when {ref.when}" if ref.when else "") for column, ref in spec.references.items()]
        scope = f" (rows where {spec.when})" if spec.when else ""
        lines.append(f"{name}{scope}: " + "; ".join(filter(None, [
            "found by " + ", ".join(found_by) if found_by else "",
            "reached by " + ", ".join(follows) if follows else "",
            f"IP addresses in {', '.join(c for c, k in store.map.identity_columns(name).items() if k == 'ip')} "
            "are checked for sharing, never searched with" if "ip" in store.map.identity_columns(name).values()
            else "",
            f"erasure: {spec.erasure.action.value}" + (f" ({len(spec.rows)} kinds of row)" if spec.rows else "")])))
    return lines
