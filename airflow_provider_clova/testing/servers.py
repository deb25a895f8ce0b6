"""Start the bundled CLOVA Studio emulator, a moto S3 server and Redis as real subprocesses.

Used by the pytest fixtures (``pytest_plugin``) and by ``make demo``; standard library only,
so importing it costs nothing. Each start waits for the server's ready line, never sleeps.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

READY_RE = re.compile(r"CLOVA Studio emulator listening on (http://\S+)")
MOTO_READY_RE = re.compile(r"Running on (http://[0-9a-zA-Z.\[\]:]+)")
REDIS_READY_RE = re.compile(r"(Ready to accept connections)")
DEFAULT_TIME_SCALE = 0.01
#: NAVER Cloud Object Storage's region name (``kr.object.ncloudstorage.com``).
OBJECT_STORAGE_REGION = "kr-standard"


def _pump(stream: IO[str], lines: queue.Queue[str | None], log: IO[str]) -> None:
    """Copy a child's output to its log file, handing each line to the starter too."""
    try:
        for line in stream:
            log.write(line)
            log.flush()
            lines.put(line)
    finally:
        lines.put(None)


def _start(
    argv: Sequence[str], pattern: re.Pattern[str], *, use_stderr: bool, timeout: float, env: Mapping[str, str]
) -> tuple[subprocess.Popen[str], str, Path]:
    """Start ``argv`` and wait until a line of its output matches ``pattern``; returns the match."""
    log_file = tempfile.NamedTemporaryFile("w", prefix="clova-fixture-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if not use_stderr else log_file,
        stderr=subprocess.PIPE if use_stderr else log_file,
        text=True,
        env=dict(env),
    )
    watched = process.stderr if use_stderr else process.stdout
    assert watched is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(watched, lines, log_file), daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(remaining, 0.01))
        except queue.Empty:
            line = ""
            if remaining <= 0:
                _kill(process)
                name = _name(argv)
                raise RuntimeError(f"{name} did not get ready in {timeout:.0f} s; log: {log_file.name}") from None
            continue
        if line is None:
            code = process.wait()
            log_tail = Path(log_file.name).read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{_name(argv)} exited with {code} before it was ready:\n{log_tail}")
        found = pattern.search(line)
        if found:
            return process, found.group(1), Path(log_file.name)


def _name(argv: Sequence[str]) -> str:
    """The module a ``python -m`` child runs, else the program."""
    return argv[2] if len(argv) > 2 and argv[1] == "-m" else Path(argv[0]).name


def _kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _call(url: str, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{method} {url}: {exc.code} {exc.read().decode(errors='replace')}") from None


@dataclass
class ClovaEmulator:
    """A running emulator: where it is, how to sign in, and its control endpoints."""

    url: str
    access_key: str
    secret_key: str = field(repr=False)
    api_key: str = field(repr=False)
    log_path: Path
    process: subprocess.Popen[str] = field(repr=False)

    def stats(self) -> dict[str, Any]:
        """``GET /_emulator/stats``: requests by route and status, tasks created, window maxima."""
        return dict(_call(f"{self.url}/_emulator/stats"))

    def set_faults(self, spec: Mapping[str, Any] | None = None, **routes: Any) -> dict[str, Any]:
        """Replace the faults in force: a full spec, or routes as keywords with dots as ``__``.

        ``set_faults({"seed": 3, "routes": {"tuning.create": {"sequence": ["504"]}}})`` or
        ``set_faults(tuning__create={"sequence": [{"kind": "drop", "when": "after"}]})``.
        """
        body = dict(spec or {})
        if routes:
            body.setdefault("routes", {}).update({k.replace("__", "."): v for k, v in routes.items()})
        return dict(_call(f"{self.url}/_emulator/faults", "POST", body))

    def clear_faults(self) -> None:
        _call(f"{self.url}/_emulator/faults", "DELETE")

    def reset(self) -> None:
        """Forget tasks, counters and budget windows; faults return to the startup spec."""
        _call(f"{self.url}/_emulator/reset", "POST")

    def _login_password(self, auth: str, extra: dict[str, Any]) -> tuple[str, str]:
        """login and password for ``auth``; an API key next to IAM keys goes into ``extra``."""
        if auth == "bearer":
            return "", self.api_key
        if auth == "apigw_v2+bearer":
            extra.setdefault("api_key", self.api_key)
        elif auth != "apigw_v2":
            raise ValueError(f"auth must be 'bearer', 'apigw_v2' or 'apigw_v2+bearer', got {auth!r}")
        return self.access_key, self.secret_key

    def conn_json(self, auth: str = "bearer", **extra: Any) -> str:
        """An Airflow connection as JSON (e.g. for ``AIRFLOW_CONN_CLOVA_STUDIO_DEFAULT``).

        ``auth="bearer"`` (default): the API key as password, which every API accepts.
        ``auth="apigw_v2"``: the NCP access/secret key pair, which only the tuning API accepts.
        ``auth="apigw_v2+bearer"``: both; the IAM keys sign the tuning API, the API key
        (``extra.api_key``) sends the rest.
        """
        login, password = self._login_password(auth, extra)
        conn: dict[str, Any] = {"conn_type": "clova_studio", "host": self.url, "password": password}
        if login:
            conn["login"] = login
        if extra:
            conn["extra"] = extra
        return json.dumps(conn)

    def connection_uri(self, auth: str = "bearer", **extra: Any) -> str:
        """The same connection as an Airflow URI (the host URL is percent-encoded whole)."""
        quote = urllib.parse.quote
        login, password = self._login_password(auth, extra)
        uri = f"clova-studio://{quote(login, safe='')}:{quote(password, safe='')}@"
        uri += quote(self.url, safe="")
        if extra:
            uri += "?__extra__=" + quote(json.dumps(extra), safe="")
        return uri

    def env(self, conn_id: str = "clova_studio_default", auth: str = "bearer", **extra: Any) -> dict[str, str]:
        """``{"AIRFLOW_CONN_<ID>": conn_json}``, ready for ``monkeypatch.setenv`` or ``os.environ``."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": self.conn_json(auth, **extra)}

    def stop(self) -> None:
        _kill(self.process)


@dataclass
class MotoServer:
    """A local S3-compatible endpoint (moto) and credentials it accepts (any)."""

    endpoint: str
    process: subprocess.Popen[str] = field(repr=False)
    log_path: Path
    access_key: str = "testing"
    secret_key: str = field(default="testing", repr=False)
    region: str = "us-east-1"

    def s3_client(self) -> Any:
        """A boto3 S3 client for this server (boto3 is imported only when asked)."""
        # lazy: boto3 loads only when a test or the emulator talks to S3
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def conn_json(self) -> str:
        """An Airflow ``aws`` connection to this server as JSON (e.g. for
        ``AIRFLOW_CONN_NCLOUD_OBJECT_STORAGE``): the S3Hook and ``ObjectStoragePath`` use it."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": self.access_key,
                "password": self.secret_key,
                "extra": {"endpoint_url": self.endpoint, "region_name": self.region},
            }
        )

    def create_bucket(self, name: str, region: str = OBJECT_STORAGE_REGION) -> None:
        """Create a bucket in ``region`` the way NAVER Cloud Object Storage needs it.

        Outside ``us-east-1`` S3 refuses a create without a matching location constraint
        (``IllegalLocationConstraintException``); NAVER's region is ``kr-standard``.
        """
        # lazy: boto3 loads only when a test or the emulator talks to S3
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )
        config = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        client.create_bucket(Bucket=name, **config)

    def reset(self) -> None:
        """Empty every bucket (moto's own reset API)."""
        _call(f"{self.endpoint}/moto-api/reset", "POST")

    def stop(self) -> None:
        _kill(self.process)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_emulator(
    *,
    limits: Mapping[str, Mapping[str, int]] | None = None,
    time_scale: float = DEFAULT_TIME_SCALE,
    rate_window_seconds: float = 60.0,
    faults: Mapping[str, Any] | None = None,
    object_storage_endpoint: str | None = None,
    accounts: Sequence[Mapping[str, Any]] | None = None,
    access_key: str = "AK",
    secret_key: str = "SK",
    api_key: str = "KEY",
    api_key_app_type: str = "test",
    seed: int = 0,
    max_dataset_bytes: int | None = None,
    tunable_models: Sequence[str] | None = None,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 60.0,
    port: int = 0,
) -> ClovaEmulator:
    """Start the emulator subprocess on loopback (``port=0``: a free port); returns once it accepts requests."""
    argv = [sys.executable, "-m", "airflow_provider_clova.testing.emulator", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--access-key", access_key, "--secret-key", secret_key, "--api-key", api_key]
    argv += ["--api-key-app-type", api_key_app_type, "--seed", str(seed)]
    argv += ["--time-scale", repr(time_scale), "--rate-window-seconds", repr(rate_window_seconds)]
    if limits:
        argv += ["--limits", json.dumps(limits)]
    if faults:
        argv += ["--faults", json.dumps(faults)]
    if object_storage_endpoint:
        argv += ["--object-storage-endpoint", object_storage_endpoint]
    if max_dataset_bytes is not None:
        argv += ["--max-dataset-bytes", str(max_dataset_bytes)]
    if tunable_models is not None:
        argv += ["--tunable-models", ",".join(tunable_models)]
    if accounts:
        with tempfile.NamedTemporaryFile("w", prefix="clova-accounts-", suffix=".json", delete=False) as fh:
            json.dump({"accounts": list(accounts)}, fh)
        argv += ["--accounts", fh.name]
    argv += list(extra_args)
    process, url, log_path = _start(argv, READY_RE, use_stderr=False, timeout=startup_timeout, env=_child_env())
    return ClovaEmulator(
        url=url, access_key=access_key, secret_key=secret_key, api_key=api_key, log_path=log_path, process=process
    )


def start_moto_server(startup_timeout: float = 60.0, port: int = 0) -> MotoServer:
    """Start ``python -m moto.server -p PORT`` on loopback (0: a free port); werkzeug logs the port it bound."""
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    process, url, log_path = _start(argv, MOTO_READY_RE, use_stderr=True, timeout=startup_timeout, env=_child_env())
    return MotoServer(endpoint=url, process=process, log_path=log_path)


@dataclass
class RedisServer:
    """A throwaway ``redis-server`` on loopback, for the shared budget store (``extra.budget_store``)."""

    host: str
    port: int
    process: subprocess.Popen[str] = field(repr=False)
    log_path: Path
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:PORT/0``, ready for ``extra.budget_store``."""
        auth = f":{urllib.parse.quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def command(self, *args: str) -> bytes:
        """Send one command (RESP over a plain socket) and return the raw first reply line."""
        with socket.create_connection((self.host, self.port), timeout=10) as sock:
            stream = sock.makefile("rwb")
            if self.password:
                _resp(stream, "AUTH", self.password)
            return _resp(stream, *args)

    def flush(self) -> None:
        """Forget every key (``FLUSHALL``): each test starts with empty budgets."""
        self.command("FLUSHALL")

    def stop(self) -> None:
        _kill(self.process)


def _resp(stream: Any, *args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode("utf-8")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    stream.write(b"".join(parts))
    stream.flush()
    line = bytes(stream.readline())
    if line.startswith(b"-"):
        raise RuntimeError(f"redis answered {line.decode(errors='replace').strip()}")
    return line


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis_server(*, password: str | None = None, startup_timeout: float = 30.0) -> RedisServer:
    """Start ``redis-server`` on a free loopback port, no persistence; returns once it is ready.

    The binary comes from ``$CLOVA_REDIS_SERVER`` or the PATH (``make test`` installs the
    Debian package when it is missing). redis-server cannot report a port it picked itself
    (``--port 0`` turns TCP off), so a free port is chosen here and a lost race is retried.
    """
    binary = os.environ.get("CLOVA_REDIS_SERVER") or shutil.which("redis-server")
    if not binary:
        raise RuntimeError(
            "redis-server is not installed; run 'make test' (it installs it), or 'apt-get install -y redis-server'"
        )
    for attempt in range(3):
        port = _free_port()
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--daemonize", "no", "--loglevel", "notice"]
        if password:
            argv += ["--requirepass", password]
        try:
            process, _, log_path = _start(
                argv, REDIS_READY_RE, use_stderr=False, timeout=startup_timeout, env=_child_env()
            )
        except RuntimeError as exc:
            if "Address already in use" in str(exc) and attempt < 2:
                continue
            raise
        return RedisServer(host="127.0.0.1", port=port, process=process, log_path=log_path, password=password)
    raise AssertionError("unreachable")  # pragma: no cover
