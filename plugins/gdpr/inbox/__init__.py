"""The "Privacy requests" page of the Airflow UI, where the agency's staff run the caseload: the register
of data subjects' requests, each request's page with its actions, the complaints, and a dashboard by
controller. A FastAPI app (app.py) that Airflow's API server mounts under URL_PREFIX
(plugins/gdpr_inbox_plugin.py), behind Airflow's own login (access.py); every change goes through the
core (include/requests) and is audited with the acting user's name.
"""

from __future__ import annotations

from typing import Any

URL_PREFIX = "/privacy-requests"


class PageApp:
    """The page's app, built when the API server first serves it. Every task's process loads the plugins
    too (for their macros and listeners) and has no use for a web app: it skips the imports (FastAPI,
    Airflow's API models) that would cost each task seconds."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self.app is None:
            from gdpr.inbox.app import create_app

            self.app = create_app()
        await self.app(scope, receive, send)
