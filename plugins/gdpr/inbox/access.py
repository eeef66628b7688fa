"""Who may use the page, and who may act: Airflow's own login and auth manager decide.

Airflow mounts a plugin's FastAPI app without authentication, so every route here depends on `staff`:
the user comes from the JWT Airflow's login set (the `_token` cookie, or an `Authorization: Bearer`
header), read by Airflow's own `get_user`. Anyone allowed the "Privacy requests" view sees the
caseload; only those who may also start the request workflows' runs see a person's identities, open
a request's files and change requests. Forms sent with the login cookie must come from this site (`same_origin`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, HTTPException, Request, status

VIEW = "Privacy requests"  # the custom view an auth manager grants
# The workflows that fulfil requests, by kind of request ("rights": every other kind).
WORKFLOWS = {"access": "dsar_fulfilment", "rights": "subject_rights"}


@dataclass(frozen=True)
class Staff:
    username: str
    may_act: bool  # sees identities and changes requests

    @property
    def actor(self) -> str:
        """Who acted, in the audit log."""
        return f"staff:{self.username}"


def staff(user: GetUserDep) -> Staff:
    """The logged-in user, if allowed the page: 401 without a login, 403 without the view."""
    manager = get_auth_manager()
    if not manager.is_authorized_custom_view(method="GET", resource_name=VIEW, user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Your Airflow role does not include the privacy requests.")
    may_act = manager.is_authorized_custom_view(method="POST", resource_name=VIEW, user=user) and all(
        manager.is_authorized_dag(method="POST", access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id),
                                  user=user) for dag_id in WORKFLOWS.values())
    return Staff(user.get_name(), may_act)


StaffDep = Annotated[Staff, Depends(staff)]


def same_origin(request: Request) -> None:
    """A form sent with the login cookie comes from a page of this site (its Origin, or else its Referer,
    names this host), so another site cannot make a logged-in browser act. A caller sending its token in
    the Authorization header is not a browser led by another site: no browser adds that header for it."""
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    sender = request.headers.get("origin") or request.headers.get("referer") or ""
    if urlsplit(sender).netloc != request.headers.get("host"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "This form must be sent from the privacy requests page.")


def entrusted(who: StaffDep) -> Staff:
    """Staff who may see a person's identities and a request's files, and change requests."""
    if not who.may_act:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Your Airflow role lets you read the privacy requests, "
                                                        "not change them or open their files.")
    return who


EntrustedDep = Annotated[Staff, Depends(entrusted)]


def acting(who: EntrustedDep, _: Annotated[None, Depends(same_origin)]) -> Staff:
    """Staff who may change requests, sending a form from this site."""
    return who


ActingDep = Annotated[Staff, Depends(acting)]
