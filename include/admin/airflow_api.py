"""A small client of Airflow's REST API, for code outside Airflow that must wake a workflow.

Recording an enquiry's outcome emits an Asset event, which schedules `enquiry_purge` within
minutes. Outside systems can post the same event themselves (see the README).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import httpx

ENQUIRY_OUTCOMES_URI = "gdpr://vault/enquiry-outcomes"


class AirflowUnreachable(Exception):
    """Airflow's API could not be reached or refused the call; the message says which step."""


@dataclass
class AirflowApi:
    base_url: str
    username: str
    password: str
    timeout: float = 10.0

    @classmethod
    def from_env(cls) -> AirflowApi:
        """AIRFLOW_API_URL/USERNAME/PASSWORD, else the standalone's generated password file."""
        username = os.environ.get("AIRFLOW_API_USERNAME", "admin")
        password = os.environ.get("AIRFLOW_API_PASSWORD")
        if password is None:
            home = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
            generated = home / "simple_auth_manager_passwords.json.generated"
            try:
                password = json.loads(generated.read_text()).get(username, "")
            except (OSError, ValueError):
                password = ""
        return cls(os.environ.get("AIRFLOW_API_URL", "http://localhost:8080").rstrip("/"),
                   username, password)

    def _call(self, client: httpx.Client, method: str, path: str, step: str, **kwargs) -> dict:
        try:
            response = client.request(method, f"{self.base_url}{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise AirflowUnreachable(f"{step}: Airflow at {self.base_url} is unreachable "
                                     f"({type(exc).__name__})") from None
        if response.status_code >= 400:
            raise AirflowUnreachable(f"{step}: Airflow answered HTTP {response.status_code}")
        return response.json()

    def emit_asset_event(self, uri: str, extra: dict) -> int:
        with httpx.Client(timeout=self.timeout) as client:
            token = self._call(client, "POST", "/auth/token", "signing in",
                               json={"username": self.username, "password": self.password})
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            assets = self._call(client, "GET", "/api/v2/assets", "finding the asset",
                                params={"uri_pattern": uri}, headers=headers)["assets"]
            matches = [a["id"] for a in assets if a["uri"] == uri]
            if not matches:
                raise AirflowUnreachable(f"finding the asset: Airflow knows no asset {uri} "
                                         "(is the enquiry_purge DAG parsed?)")
            event = self._call(client, "POST", "/api/v2/assets/events", "posting the event",
                               json={"asset_id": matches[0], "extra": extra}, headers=headers)
            return event["id"]
