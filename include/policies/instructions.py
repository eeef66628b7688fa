"""Controllers' documented instructions (Art. 28(3)(a)): what we may process, why, and for how long.

The model alone: include/vault/instructions.py records them in the vault and reads them back.

One YAML file per controller (see docs/instructions.md), which also gives the controller's legal
name and region: loading a file registers a controller new to the vault, or records its new name or
region. Each category's instructions form a history: a new instruction is added with a later
`given_on`, and the one in effect on a day is the latest given on or before it. Loading records
every instruction in the vault, where the history stays even if a file is later edited; rewriting
an instruction already recorded is refused. Processing a category that no instruction of its
controller covers is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, field_validator, model_validator

from include.common.errors import InvalidInput
from include.common.models import StrictModel
from include.common.yamlfiles import DirectoryLoad, LoadedFile, load_yaml_dir, load_yaml_dir_each, load_yaml_file
from include.policies.rules import FinancialYearEnd, RetentionRule

# A controller's region picks the bank holidays of its requests' deadlines (they differ by UK region).
Region = Literal["england-and-wales", "scotland", "northern-ireland"]
REGIONS: tuple[str, ...] = get_args(Region)

# The start of a request's case reference (OAK-2026-0007, include/vault/schema.py case_reference).
CASE_PREFIX = r"^[A-Z0-9]{1,8}$"


def default_case_prefix(controller_id: str) -> str:
    """A controller's case prefix when its file gives none: the first word of its id, upper-cased,
    at most 8 characters (oak-home -> OAK)."""
    return controller_id.split("-")[0].upper()[:8]


class LegalBasis(StrEnum):
    """Art. 6(1) GDPR."""

    consent = "consent"
    contract = "contract"
    legal_obligation = "legal_obligation"
    vital_interests = "vital_interests"
    public_task = "public_task"
    legitimate_interests = "legitimate_interests"


class LogAction(StrEnum):
    anonymise = "anonymise"  # IPv4 to /24, IPv6 to /48
    drop = "drop"  # the whole line


def _checked_by(parse, value: str) -> str:
    """Run the core's parser as a pydantic check: its InvalidInput becomes the field's error."""
    try:
        parse(value)
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None
    return value



class InstructionEntry(StrictModel):
    category: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    purpose: str = Field(min_length=3, max_length=200)
    legal_basis: LegalBasis
    retention: str
    given_by: str = Field(min_length=2, max_length=100)
    given_on: date
    log_action: LogAction | None = None

    @field_validator("retention")
    @classmethod
    def _rule(cls, value: str) -> str:
        return _checked_by(RetentionRule.parse, value)

    @model_validator(mode="after")
    def _log_action_for_logs(self) -> InstructionEntry:
        if (self.category == "server_log") != (self.log_action is not None):
            raise ValueError("log_action (anonymise or drop) is given for category server_log, "
                             "and for no other")
        return self


class ServerLogLocation(StrictModel):
    directory: str = Field(min_length=1, description="relative to the server-log root, or absolute")
    pattern: str = Field(default="access.log*", min_length=1)

    def path(self, log_root: Path) -> Path:
        directory = Path(self.directory)
        return directory if directory.is_absolute() else Path(log_root) / directory


class ReviewGates(StrictModel):
    """Where the controller wants a person to decide first: the requester's identity checked before a
    request is worked on, an access package reviewed before it is delivered, an erasure confirmed
    before anything is erased. None by default."""

    identity: bool = False
    package: bool = False
    erasure: bool = False


class InstructionFile(StrictModel):
    controller: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)  # the controller's legal name
    region: Region  # picks the bank holidays of its requests' deadlines
    # Who answers the person (the access package names it) and the processor's records (Art. 30(2)).
    contact: str | None = Field(default=None, max_length=300)
    case_prefix: str | None = Field(default=None, pattern=CASE_PREFIX)  # default_case_prefix(controller)
    financial_year_end: str = "03-31"
    instructions: list[InstructionEntry] = Field(min_length=1)
    server_logs: list[ServerLogLocation] = []
    review: ReviewGates = ReviewGates()

    @property
    def prefix(self) -> str:
        return self.case_prefix or default_case_prefix(self.controller)

    @field_validator("name")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if value != value.strip() or "\n" in value:
            raise ValueError("the controller's legal name is one line, without spaces around it")
        return value

    @field_validator("financial_year_end")
    @classmethod
    def _year_end(cls, value: str) -> str:
        return _checked_by(FinancialYearEnd.parse, value)

    @model_validator(mode="after")
    def _one_per_day(self) -> InstructionFile:
        seen = set()
        for index, entry in enumerate(self.instructions):
            key = (entry.category, entry.given_on)
            if key in seen:
                raise ValueError(f"instructions.{index}: a second instruction for '{entry.category}' "
                                 f"given on {entry.given_on}; a replacement needs a later given_on")
            seen.add(key)
        return self


def load_instruction_file(path: Path) -> LoadedFile[InstructionFile]:
    """Parse and validate one file; InvalidInput names the file, the line and the field."""
    return load_yaml_file(path, InstructionFile, "controller and instructions")


def load_instruction_dir(directory: Path) -> list[LoadedFile[InstructionFile]]:
    """Every file of the directory, for the workflows: the first bad file's error is raised."""
    return load_yaml_dir(directory, load_instruction_file, what="instructions", key="controller")


def load_instruction_dir_each(directory: Path) -> DirectoryLoad[InstructionFile]:
    """Every file of the directory that loads, and each one that does not with its error."""
    return load_yaml_dir_each(directory, load_instruction_file, what="instructions", key="controller")


def instructions_in_code(controller_id: str, rules: dict[str, str], *, given_on: date, name: str,
                         region: Region, given_by: str = "in code", legal_basis: LegalBasis = LegalBasis.contract,
                         log_action: LogAction | None = None) -> LoadedFile:
    """Instructions given in code rather than a file (benchmarks, tests): category -> rule."""
    content = InstructionFile(controller=controller_id, name=name, region=region, instructions=[
        InstructionEntry(category=category, purpose=f"{category} processing", legal_basis=legal_basis,
                         retention=rule, given_by=given_by, given_on=given_on,
                         log_action=log_action if category == "server_log" else None)
        for category, rule in rules.items()])
    return LoadedFile(Path(f"{controller_id}-in-code.yaml"), content, {})


# -- the recorded history ----------------------------------------------------------------------

@dataclass(frozen=True)
class Instruction:
    controller_id: str
    category: str
    given_on: date
    purpose: str
    legal_basis: str
    retention: RetentionRule
    given_by: str
    year_end: FinancialYearEnd
    log_action: str | None
    source: str
    recorded_at: datetime

    @classmethod
    def from_row(cls, row) -> Instruction:
        return cls(row.controller_id, row.category, row.given_on, row.purpose, row.legal_basis,
                   RetentionRule.parse(row.retention), row.given_by,
                   FinancialYearEnd.parse(row.financial_year_end), row.log_action, row.source,
                   row.recorded_at)


class InstructionBook:
    """Every recorded instruction, to answer 'which one is in effect for this on that day?'."""

    def __init__(self, instructions: Iterable[Instruction]) -> None:
        self._history: dict[tuple[str, str], list[Instruction]] = {}
        for item in sorted(instructions, key=lambda i: i.given_on):
            self._history.setdefault((item.controller_id, item.category), []).append(item)

    def history(self, controller_id: str, category: str) -> list[Instruction]:
        return list(self._history.get((controller_id, category), []))

    def categories(self, controller_id: str) -> list[str]:
        return sorted(cat for c, cat in self._history if c == controller_id)

    def in_effect(self, controller_id: str, category: str, at: datetime | date) -> Instruction | None:
        day = at.astimezone(UTC).date() if isinstance(at, datetime) else at
        current = None
        for item in self._history.get((controller_id, category), []):
            if item.given_on <= day:
                current = item
        return current

    def require(self, controller_id: str, category: str, at: datetime | date, where: str = "") -> Instruction:
        found = self.in_effect(controller_id, category, at)
        if found is None:
            raise InvalidInput(
                f"{where}controller '{controller_id}' has no instruction covering category "
                f"'{category}' in effect on {at:%Y-%m-%d}: processing refused (Art. 28(3)(a))")
        return found
