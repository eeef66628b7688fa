"""Registers the "Privacy requests" page (gdpr/inbox) with Airflow: its app, mounted by the API server,
and its entry in the navigation, shown inside the Airflow UI. Airflow imports every file of the plugins
folder as a plugin module; .airflowignore keeps it to this one, and gdpr/ is imported as a package."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from gdpr.inbox import URL_PREFIX, PageApp


class PrivacyRequestsPlugin(AirflowPlugin):
    name = "privacy_requests"
    fastapi_apps = [{"app": PageApp(), "url_prefix": URL_PREFIX, "name": "Privacy requests"}]
    external_views = [{"name": "Privacy requests", "href": f"{URL_PREFIX}/", "destination": "nav",
                       "url_route": "privacy-requests", "icon": f"{URL_PREFIX}/static/icon.svg"}]
