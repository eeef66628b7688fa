"""Review gates: the decisions a controller wants a person to take (its instruction file's `review`),
asked as Airflow human-in-the-loop tasks that wait under Browse > Required Actions, one per request:

- identity (`review: {identity: true}`): the controller's requests are registered awaiting the
  requester's identity, their clock stopped. Verified: the clock runs from the day of the answer and
  the request is worked on. Refused: nothing more is done.
- erasure (`review: {erasure: true}`): nothing is changed in any store until a person confirms the
  erasure.
- package (`review: {package: true}`): an access package is made and held out of the outbox; released,
  it is delivered and the request completed. The rows the searches held back (possible matches) are
  decided at this review.

A refusal's reason is chosen from a fixed list (REFUSAL_REASONS), never typed, and its letter goes to
the controller's outbox (include/requests/decisions.py). Airflow keeps every question and answer in
its database (hitl_detail): a gate names the request by its case reference and gives the controller's
id, dates and counts, never a person's values. A decision is audited under the Airflow user who took it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import BaseOperator, Context, Param, XComArg
from airflow.sdk.exceptions import AirflowSkipException

from gdpr.operators.base import BaseVaultOperator, GdprOperator
from gdpr.operators.requests import lease_holder, request_settings
from include.common.clock import utcnow

if TYPE_CHECKING:
    from include.requests.register import Request
    from include.vault.store import Vault

REFUSE = "Refuse the request"
REASON = "reason"  # the form's one field: why, if the request is refused


def decided_by(answer: dict) -> str:
    """Who answered, as the audit log names an actor: the Airflow user's id (in the audit's alphabet)."""
    user = answer.get("responded_by_user") or {}
    return "airflow-user:" + re.sub(r"[^A-Za-z0-9_.:+-]", "_", str(user.get("id") or "unknown"))[:80]


def _heading(request: Request, *, due: bool = True) -> str:
    from include.common.reports import uk_date
    from include.requests.kinds import RIGHT_LABELS

    kind = {"access": "Access", **RIGHT_LABELS}.get(request.kind, request.kind)
    dates = f"received {uk_date(request.received_on)}" + (f", due {uk_date(request.due_on)}" if due else "")
    return f"**{kind} request {request.case_reference}** to {request.controller_id}, {dates}."


class ReviewGate(GdprOperator, HITLOperator):
    """Asks a person about one request, then acts on the answer. Mapped over the requests of a run that
    wait at the gate (`steps`); a request decided elsewhere meanwhile (gdpr-admin, the Privacy requests
    page) is not asked about, and an answer that comes after such a decision changes nothing.

    :param request_id: the request.
    :param case_reference: how the question names it (OAK-2026-0007).
    """

    finding: ClassVar[str]  # the task id of the step that finds the requests waiting at the gate
    asking: ClassVar[str]  # the gate's task id
    question: ClassVar[str]  # the subject, naming the case: "Identity of {case} checked?"
    approve: ClassVar[str]  # the option that lets the request go on
    reasons: ClassVar[tuple[str, ...]]  # the refusal reasons offered, the likeliest first (the form's default)
    before_work: ClassVar[bool]  # asked before any store is touched; else once the answer is made

    template_fields: Sequence[str] = (*GdprOperator.template_fields, *HITLOperator.template_fields)

    def __init__(self, *, request_id: str, case_reference: str, **kwargs: Any) -> None:
        from include.requests.register import REFUSAL_REASONS

        kwargs.pop("params", None)  # the workflow's form: never part of the question (Airflow merges it in again)
        reason = Param(self.reasons[0], type="string", enum=list(self.reasons), title="If you refuse: the reason",
                       values_display={code: REFUSAL_REASONS[code].capitalize() for code in self.reasons})
        super().__init__(subject=self.question.format(case=case_reference), options=[self.approve, REFUSE],
                         params={REASON: reason}, **kwargs)
        self.request_id = request_id
        self.case_reference = case_reference
        self.answer: dict | None = None

    @classmethod
    def steps(cls, request_ids: XComArg) -> list[BaseOperator]:
        """The gate in a workflow: find the run's requests waiting at it, then ask about each."""
        # none_failed: the gate before this one may have had nobody to ask about (its task skipped).
        find = FindRequestsAtGateOperator(task_id=cls.finding, request_ids=request_ids, gate=cls,
                                          trigger_rule="none_failed")
        ask = cls.partial(task_id=cls.asking, map_index_template="{{ task.case_reference }}",
                          ).expand_kwargs(find.output)
        return [find, ask]  # type: ignore[list-item]  # a mapped operator sits in a chain as any task

    @classmethod
    def waits(cls, vault: Vault, request: Request) -> bool:
        """Whether the request waits for this gate's decision."""
        raise NotImplementedError

    @classmethod
    def comes_to(cls, vault: Vault, request: Request) -> bool:
        """Whether the request waits at this gate now or may come to it later in the run, once the gates
        before it are passed: asked by the step before the gate (gdpr.operators.requests.GatedStepOperator)."""
        return cls.waits(vault, request)

    def describe(self, vault: Vault, request: Request) -> str:
        """What the person needs to decide (Markdown): case reference, dates, counts; the choices."""
        raise NotImplementedError

    def go_on(self, vault: Vault, request: Request, *, actor: str, answered: datetime) -> None:
        """The approval's effect on the request."""
        raise NotImplementedError

    def run(self, context: Context) -> Any:
        from include.requests.register import get_request

        with self.hook.get_conn() as vault:
            request = get_request(vault, self.request_id)
            if self.answer is not None:
                return self.decide(vault, request, self.answer)
            if not self.waits(vault, request):
                raise AirflowSkipException(f"Case {request.case_reference} no longer waits here ({request.status})")
            self.body = self.describe(vault, request)
        HITLOperator.execute(self, context)  # writes the question; the task waits for the answer

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        self.answer = super().execute_complete(context, event)  # checked against the options and the form
        return self.execute(context)  # run() once more, with the answer: errors retried or failed as every task's

    def decide(self, vault: Vault, request: Request, answer: dict) -> dict:
        from include.requests.decisions import refuse

        outcome = {"request_id": request.id, "case_reference": request.case_reference}
        if not self.waits(vault, request):
            self.log.info("Case %s was decided meanwhile (%s): this answer changes nothing", request.case_reference,
                          request.status)
            return {**outcome, "decision": None}
        actor = decided_by(answer)
        if answer["chosen_options"] == [self.approve]:
            self.go_on(vault, request, actor=actor, answered=answer["responded_at"])
            decision = "approved"
        else:
            decision = self.params[REASON]  # the form as answered (its default when the answer gave none)
            refuse(vault, request.id, request_settings(self.workflow), reason=decision, actor=actor, at=utcnow())
        self.log.info("Case %s (request %s): %s by %s", request.case_reference, request.id, decision, actor)
        return {**outcome, "decision": decision}


class IdentityGate(ReviewGate):
    finding = "find_identities_to_check"
    asking = "check_identity"
    question = "Identity of {case} checked?"
    approve = "Identity verified"
    reasons = ("identity_not_verified", "manifestly_unfounded", "manifestly_excessive")
    before_work = True

    @classmethod
    def waits(cls, vault: Vault, request: Request) -> bool:
        return request.status == "awaiting_id"

    def describe(self, vault: Vault, request: Request) -> str:
        return (f"{_heading(request, due=False)}\n\nThe controller has each requester's identity checked before a "
                "request is worked on; the request's clock is stopped until you answer.\n\n"
                f"- **{self.approve}**: the clock runs from today and the request is worked on.\n"
                f"- **{REFUSE}**: choose the reason; a refusal letter goes to the controller's outbox and "
                "nothing more is done.")

    def go_on(self, vault: Vault, request: Request, *, actor: str, answered: datetime) -> None:
        from include.requests.register import verify_identity

        verify_identity(vault, request.id, on=answered.date(), actor=actor, at=utcnow())


class ErasureGate(ReviewGate):
    finding = "find_erasures_to_confirm"
    asking = "confirm_erasure"
    question = "Erasure of {case} confirmed?"
    approve = "Confirm the erasure"
    reasons = ("manifestly_unfounded", "manifestly_excessive", "identity_not_verified")
    before_work = True

    @classmethod
    def waits(cls, vault: Vault, request: Request) -> bool:
        return request.status == "received" and cls.comes_to(vault, request)

    @classmethod
    def comes_to(cls, vault: Vault, request: Request) -> bool:
        from include.requests.caseload import review_gates

        # One awaiting its requester's identity comes here once verified, at the gate before this one.
        return (request.kind == "erase" and request.status in ("received", "awaiting_id")
                and review_gates(vault, request.controller_id).erasure)

    def describe(self, vault: Vault, request: Request) -> str:
        return (f"{_heading(request)}\n\nThe controller has each erasure confirmed by a person: nothing is "
                "erased in any store until you confirm it.\n\n"
                f"- **{self.approve}**: every store is acted on as its data map says, and the confirmation "
                "goes to the controller's outbox.\n"
                f"- **{REFUSE}**: choose the reason; a refusal letter goes to the controller's outbox and "
                "nothing is erased.")

    def go_on(self, vault: Vault, request: Request, *, actor: str, answered: datetime) -> None:
        from include.requests.register import confirm_erasure

        # Confirmed, under the name of the person who confirmed: the workflow's plan step goes on from here.
        confirm_erasure(vault, request.id, actor=actor, at=utcnow())


class PackageGate(ReviewGate):
    finding = "find_packages_to_review"
    asking = "review_package"
    question = "Package of {case} ready to release?"
    approve = "Release the package"
    reasons = ("package_rejected", "manifestly_unfounded", "manifestly_excessive", "identity_not_verified")
    before_work = False

    @classmethod
    def waits(cls, vault: Vault, request: Request) -> bool:
        return request.status == "awaiting_review"

    def describe(self, vault: Vault, request: Request) -> str:
        from include.common.reports import plural
        from include.requests.pipeline import held_dir
        from include.requests.register import possible_matches

        held = held_dir(request_settings(self.workflow)) / str(request.package)
        matches = len(possible_matches(vault, request.id))
        if matches:
            held_back = (f"The searches held back {plural(matches, 'possible match', 'possible matches')}, "
                         "linked to the requester only by a value other people share too (a household phone, a "
                         "shared IP address). Decide them before you release the package: "
                         f"`gdpr-admin request matches {request.case_reference}`, or the Privacy requests page.")
        else:
            held_back = "The searches held nothing back: no possible match waits for a decision."
        return (f"{_heading(request)}\n\nIts package is made and held back for your review: nothing has gone "
                f"to the controller. Open it with `gdpr-admin package open {held} --out DIRECTORY`.\n\n"
                f"{held_back}\n\n"
                f"- **{self.approve}**: it goes to the controller's outbox and the request is completed.\n"
                f"- **{REFUSE}**: choose the reason; the package is destroyed and a refusal letter goes to the "
                "controller's outbox.")

    def go_on(self, vault: Vault, request: Request, *, actor: str, answered: datetime) -> None:
        from include.requests.decisions import release

        release(vault, request.id, request_settings(self.workflow), actor=actor, at=utcnow())


class FindRequestsAtGateOperator(BaseVaultOperator):
    """The run's requests that wait at a gate, for its questions to map over: their ids and case
    references, leased to the run (a request another run holds is that run's to ask about).

    :param request_ids: the run's requests, from its first task.
    :param gate: the gate.
    """

    template_fields: Sequence[str] = (*BaseVaultOperator.template_fields, "request_ids")

    def __init__(self, *, request_ids: list[str] | XComArg, gate: type[ReviewGate], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.request_ids: Any = request_ids  # a list once rendered
        self.gate = gate

    def execute_on_vault(self, vault: Vault, context: Context) -> list[dict]:
        from include.requests.register import get_request, lease_requests

        waiting = [request for request in (get_request(vault, request_id) for request_id in self.request_ids or [])
                   if self.gate.waits(vault, request)]
        held = set(lease_requests(vault, [request.id for request in waiting], holder=lease_holder(context),
                                  at=utcnow()))
        self.log.info("%d request(s) wait for a person at %s: %s", len(held), self.gate.asking,
                      ", ".join(str(request.case_reference) for request in waiting if request.id in held) or "none")
        return [{"request_id": request.id, "case_reference": request.case_reference}
                for request in waiting if request.id in held]
