"""Airflow for the DAG tests: a metadata database (SQLite) migrated once per session."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT


@pytest.fixture(scope="session")
def airflow_db():
    result = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True,
                            text=True, env=os.environ.copy(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return os.environ["AIRFLOW_HOME"]


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
