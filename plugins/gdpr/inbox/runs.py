"""The Airflow runs that worked on a request, for links from its page to the Airflow UI.

The request workflows pass request ids through XCom (never a person's values), so a run whose XCom
names the request's id worked on it. Read from Airflow's metadata database, which the API server
serving this page has open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from airflow.models.dagrun import DagRun
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
from sqlalchemy import String, cast, select

from gdpr.inbox.access import WORKFLOWS
from include.requests.kinds import ACCESS

SHOWN = 20  # the newest runs listed; the workflow's runs page has the rest


@dataclass(frozen=True)
class RunLink:
    dag_id: str
    run_id: str
    state: str | None
    run_after: datetime
    href: str  # the run's page in the Airflow UI


def workflow_of(kind: str) -> str:
    """The workflow (DAG id) that fulfils a request of this kind."""
    return WORKFLOWS["access" if kind == ACCESS else "rights"]


def runs_page(ui_root: str, dag_id: str) -> str:
    return f"{ui_root}/dags/{quote(dag_id)}/runs"


def runs_naming(request_id: str, ui_root: str) -> list[RunLink]:
    """The newest runs whose XCom holds the request's id, newest first; ui_root: where the Airflow UI is."""
    # XCom values are JSON; compared as text, a request id (32 hex digits) names no other request.
    query = (select(DagRun.dag_id, DagRun.run_id, DagRun.state, DagRun.run_after)
             .where(DagRun.id.in_(select(XComModel.dag_run_id).where(
                 cast(XComModel.value, String).contains(request_id, autoescape=True))))
             .order_by(DagRun.run_after.desc()).limit(SHOWN))
    with create_session() as session:
        rows = session.execute(query).all()
    return [RunLink(row.dag_id, row.run_id, row.state, row.run_after,
                    f"{ui_root}/dags/{quote(row.dag_id)}/runs/{quote(row.run_id, safe='')}") for row in rows]
