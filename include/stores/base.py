"""One interface for every store, as Fides' BaseConnector gives one for every database: search a
person's data; plan an erasure or a rectification from a search made before anything changes, and
apply the plan (a retried task applies the same plan, and applying it twice changes nothing); test
the connection. Plans and outcomes are typed and kept as JSON in the request's encrypted work files.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, NoReturn, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from include.common.errors import InvalidInput
from include.stores.identities import IdentitySet

if TYPE_CHECKING:
    from include.policies.instructions import InstructionBook

IN_CHUNK = 1000  # values in one IN (...) list


@dataclass(frozen=True)
class FoundRecord:
    store: str
    table: str
    key: str
    data: dict[str, Any]
    found_by: str  # the chain that led to it: identity -> row -> reference -> row
    section: str | None = None  # the kind of row, where a table holds several (order notes, reviews)
    instruction: str | None = None  # the controller's instruction category for the row


@dataclass(frozen=True)
class PossibleMatch:
    """A row reached only through a shared value, or belonging to another owner: held for staff to
    decide, never in a package, never acted on. The reason names no personal value."""

    store: str
    table: str
    key: str
    reason: str


@dataclass
class StoreResult:
    store: str
    kind: str
    records: list[FoundRecord] = field(default_factory=list)
    held: list[PossibleMatch] = field(default_factory=list)
    identities: IdentitySet = field(default_factory=IdentitySet)

    def to_json(self) -> dict:
        return {"store": self.store, "kind": self.kind, "identities": self.identities.to_json(),
                "records": [asdict(r) for r in self.records], "held": [asdict(h) for h in self.held]}

    @classmethod
    def from_json(cls, data: dict) -> StoreResult:
        return cls(data["store"], data["kind"], [FoundRecord(**r) for r in data["records"]],
                   [PossibleMatch(**h) for h in data["held"]], IdentitySet.from_json(data["identities"]))


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Done(BaseModel):
    table: str
    action: str
    records: int


class Kept(BaseModel):
    table: str
    key: str
    reason: str
    until: str | None


class Outcome(BaseModel):
    """What acting on one store did, for the confirmation."""

    done: list[Done] = []
    kept: list[Kept] = []
    held: list[PossibleMatch] = []  # possible matches left for staff


@dataclass(frozen=True)
class Acting:
    """Who acts on a store for which request, and when (for the audit log)."""

    controller_id: str
    request_id: str
    actor: str
    at: datetime
    book: InstructionBook | None = None  # the controllers' instructions, for what is kept and how long
    progress: Progress | None = None  # where a long rewrite (server logs) records each file done

    def instructions(self) -> InstructionBook:
        """The controllers' instructions, which planning an erasure follows."""
        if self.book is None:
            raise InvalidInput(f"request {self.request_id}: acting on a store needs the controllers' instructions")
        return self.book


class Progress(Protocol):
    def load(self, name: str) -> dict | None: ...

    def save(self, name: str, data: dict) -> None: ...


ErasurePlan = TypeVar("ErasurePlan", bound=Plan)
RectificationPlan = TypeVar("RectificationPlan", bound=Plan)


class Store(ABC, Generic[ErasurePlan, RectificationPlan]):
    """A store of a controller's data; each kind of store has its own kinds of plan."""

    id: str
    kind: str

    @abstractmethod
    def search(self, identities: IdentitySet) -> StoreResult:
        """The person's records, the possible matches held back, and the identities as the search
        left them. StoreUnavailable if the store cannot be searched (retried, never cut short)."""

    @abstractmethod
    def plan_erasure(self, identities: IdentitySet, acting: Acting) -> ErasurePlan: ...

    @abstractmethod
    def apply_erasure(self, plan: ErasurePlan, acting: Acting) -> Outcome: ...

    @abstractmethod
    def plan_rectification(self, identities: IdentitySet, old: dict[str, str], acting: Acting) -> RectificationPlan: ...

    @abstractmethod
    def apply_rectification(self, plan: RectificationPlan, new: dict[str, str], acting: Acting) -> Outcome: ...

    @abstractmethod
    def test_connection(self) -> None:
        """StoreUnavailable naming the store if it cannot be reached."""

    erasure_plan_type: type[ErasurePlan]
    rectification_plan_type: type[RectificationPlan] | None = None  # None: the store holds no value to rectify

    @classmethod
    def erasure_plan(cls, data: dict) -> ErasurePlan:
        """A kept erasure plan, read back."""
        return cls.erasure_plan_type.model_validate(data)

    @classmethod
    def rectification_plan(cls, data: dict) -> RectificationPlan:
        """A kept rectification plan, read back."""
        if cls.rectification_plan_type is None:
            cls.refuse_rectification()
        return cls.rectification_plan_type.model_validate(data)

    @classmethod
    def refuse_rectification(cls) -> NoReturn:
        raise InvalidInput(f"a {cls.kind} store holds no value to rectify")
