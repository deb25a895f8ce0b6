"""Test-wide set-up: a throw-away AIRFLOW_HOME so no test touches ~/airflow."""

from __future__ import annotations

import os
import tempfile

_home = tempfile.mkdtemp(prefix="clova-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _home)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_home}/airflow.db")
