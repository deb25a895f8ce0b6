"""A tiny loopback HTTP server for benchmarks: answers CLOVA Studio envelopes, nothing else.

Run it as a separate process so the benchmark measures the client, not a server sharing its
interpreter and GIL:

    python bench/_loopback_server.py --port 0      # prints "listening on http://127.0.0.1:PORT"

``serve()`` starts it as a subprocess and yields its base URL. Answers:

* ``GET /tuning/v2/tasks/{task_id}``: the seed's sample task (``seeds/001``), RUNNING, with that id
  (``airflow_provider_clova.testing.samples``).
* ``GET /tuning/v2/tasks``: one page with that task.

It checks nothing (no auth): both sides of a comparison get the same answer at the same cost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_provider_clova.testing.samples import ok_body, running_json

TASK = running_json()  # the seed's sample task, a quarter through its training
READY = "listening on "


def build_app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    def envelope(result: Any) -> bytes:
        return json.dumps(ok_body(result)).encode()

    async def get_task(request: Any) -> Response:
        body = envelope({**TASK, "id": request.path_params["task_id"]})
        return Response(body, media_type="application/json")

    async def list_tasks(request: Any) -> Response:
        page = {"content": [TASK], "totalPages": 1, "totalElements": 1, "size": 20, "number": 0}
        return Response(envelope(page), media_type="application/json")

    return Starlette(
        routes=[
            Route("/tuning/v2/tasks/{task_id}", get_task, methods=["GET"]),
            Route("/tuning/v2/tasks", list_tasks, methods=["GET"]),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(build_app(), log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    print(f"{READY}http://{host}:{port}", flush=True)
    server.run(sockets=[sock])


@contextlib.contextmanager
def serve(timeout: float = 30.0) -> Iterator[str]:
    """Start the server in a subprocess; yield its base URL; stop it on exit."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith(READY):
            raise RuntimeError(f"loopback server did not start: {line!r}")
        url = line[len(READY) :].strip()
        _wait_until_accepting(url, timeout)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_until_accepting(url: str, timeout: float) -> None:
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{url}/tuning/v2/tasks", timeout=2.0).raise_for_status()
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


if __name__ == "__main__":
    main()
