"""pytest fixtures for testing DAGs against the bundled CLOVA Studio emulator, offline.

Registered as a ``pytest11`` entry point, so installing the provider makes these available:

* ``clova_emulator``: a running emulator (one per session, reset before each test);
* ``clova_emulator_factory``: start emulators with your own flags, stopped after the test;
* ``moto_server``: a local S3-compatible server (moto) for datasets, one per session;
* ``redis_server``: a real ``redis-server`` on loopback for the shared budget store
  (``extra.budget_store``), one per session, emptied before each test.

Each emulator is the real server, started as ``python -m airflow_provider_clova.testing.emulator
--port 0`` in a subprocess; the fixture waits for its "listening" line, never sleeps. This
module imports only the standard library at the top: it is loaded into every pytest run of
every project that installs the provider.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_clova.testing.servers import (
    ClovaEmulator,
    MotoServer,
    RedisServer,
    start_emulator,
    start_moto_server,
    start_redis_server,
)

__all__ = ["ClovaEmulator", "MotoServer", "RedisServer", "start_emulator", "start_moto_server", "start_redis_server"]


@pytest.fixture
def clova_emulator_factory() -> Iterator[Callable[..., ClovaEmulator]]:
    """Start emulators with custom flags: ``clova_emulator_factory(limits=..., time_scale=...)``.

    Keywords: ``limits``, ``time_scale`` (default 0.01), ``rate_window_seconds``, ``faults``,
    ``object_storage_endpoint``, ``accounts``, ``access_key``, ``secret_key``, ``api_key``,
    ``api_key_app_type``, ``seed``, ``max_dataset_bytes``, ``tunable_models``, ``extra_args``. Every emulator
    started is stopped after the test.
    """
    started: list[ClovaEmulator] = []

    def factory(**kwargs: Any) -> ClovaEmulator:
        emulator = start_emulator(**kwargs)
        started.append(emulator)
        return emulator

    yield factory
    for emulator in started:
        emulator.stop()


@pytest.fixture(scope="session")
def _clova_emulator_session() -> Iterator[ClovaEmulator]:
    emulator = start_emulator()
    yield emulator
    emulator.stop()


@pytest.fixture
def clova_emulator(_clova_emulator_session: ClovaEmulator) -> ClovaEmulator:
    """A running emulator with default flags (``--time-scale 0.01``), reset before each test."""
    _clova_emulator_session.reset()
    return _clova_emulator_session


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A moto S3 server on a free loopback port, for datasets: ``.endpoint``, ``.s3_client()``."""
    server = start_moto_server()
    yield server
    server.stop()


@pytest.fixture
def moto_bucket(moto_server: MotoServer) -> str:
    """A new, empty bucket on the session's moto server, so tests never see each other's objects."""
    name = f"clova-{uuid.uuid4().hex[:12]}"
    moto_server.s3_client().create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def _redis_server_session() -> Iterator[RedisServer]:
    server = start_redis_server(password="clova-test-redis-pw")
    yield server
    server.stop()


@pytest.fixture
def redis_server(_redis_server_session: RedisServer) -> RedisServer:
    """A running ``redis-server`` (password set) with no keys: ``.url`` goes in ``extra.budget_store``."""
    _redis_server_session.flush()
    return _redis_server_session
