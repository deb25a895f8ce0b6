"""Running the emulator under uvicorn: as the CLI's foreground server or in a test's thread.

We bind the socket ourselves so ``--port 0`` works: the kernel picks a free port and we know
it before announcing. The announcement (``CLOVA Studio emulator listening on http://HOST:PORT``)
is printed only after uvicorn's startup has created the listening server, so a process that
waits for that line can connect at once, without sleeping.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType

import uvicorn

from airflow_provider_clova.testing.emulator.app import Emulator, create_app
from airflow_provider_clova.testing.emulator.config import EmulatorConfig

READY_MESSAGE = "CLOVA Studio emulator listening on {url}"


def bind(host: str, port: int) -> socket.socket:
    """A bound TCP socket (IPv4 or IPv6 by the host's form)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that calls back once it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            self._on_started()


def _uvicorn_config(
    config: EmulatorConfig, log_level: str, clock: Callable[[], float] = time.time
) -> tuple[uvicorn.Config, Emulator]:
    app = create_app(config, clock)
    return (
        uvicorn.Config(
            app,
            http="h11",  # the drop fault is verified against this protocol implementation
            lifespan="off",
            log_level=log_level,
            access_log=False,  # the app logs each request itself, without headers
            proxy_headers=False,
            timeout_graceful_shutdown=2,
        ),
        app.emulator,
    )


def serve(config: EmulatorConfig, host: str, port: int, *, log_level: str = "info") -> None:
    """Serve in the foreground until SIGINT/SIGTERM; print the ready line on stdout."""
    sock = bind(host, port)
    url = url_of(sock)
    uv_config, _ = _uvicorn_config(config, log_level)

    def announce() -> None:
        print(READY_MESSAGE.format(url=url), flush=True)

    _AnnouncingServer(uv_config, announce).run(sockets=[sock])
    sys.stdout.flush()


class ServerThread:
    """An in-process emulator on a free port, for tests: ``with ServerThread(config) as srv:``.

    ``srv.url`` is its base URL and ``srv.emulator`` its live state. ``clock`` (epoch seconds)
    is what training and signature checks read: a test that steps it sees every training
    step, however slowly the machine answers.
    """

    def __init__(
        self,
        config: EmulatorConfig,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sock = bind(host, port)
        self.url = url_of(self._sock)
        uv_config, self.emulator = _uvicorn_config(config, "warning", clock)
        self._started = threading.Event()
        self._server = _AnnouncingServer(uv_config, self._started.set)
        self._thread = threading.Thread(target=self._run, name="clova-emulator", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # surfaced to the starting thread
            self._error = exc
        finally:
            self._started.set()

    def start(self, timeout: float = 30.0) -> ServerThread:
        self._thread.start()
        if not self._started.wait(timeout) or self._error is not None or not self._server.started:
            raise RuntimeError(f"the emulator did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
