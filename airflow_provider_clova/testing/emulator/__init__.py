"""A local CLOVA Studio emulator: a real HTTP server for this project's tests and users' DAG tests.

Start it with ``python -m airflow_provider_clova.testing.emulator`` (see
``docs/readme-emulator.md``), or in-process with :class:`ServerThread`. It authenticates,
validates, paces (QPM/TPM), trains (on a clock) and fails (on request) the way CLOVA Studio
does, as written in the project's API reference.
"""

from airflow_provider_clova.testing.emulator.app import Emulator, create_app
from airflow_provider_clova.testing.emulator.config import Account, EmulatorConfig, Timings, default_account
from airflow_provider_clova.testing.emulator.server import ServerThread

__all__ = ["Account", "Emulator", "EmulatorConfig", "ServerThread", "Timings", "create_app", "default_account"]
