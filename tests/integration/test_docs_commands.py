"""Every command the README and docs/ show, run as written, and the README's first DAG run offline.

One throw-away working directory plays the reader's shell: an ``AIRFLOW_HOME`` with SQLite, the
README's stack command running (started from the README's own text), its env file sourced before
each command, and the files a reader is assumed to have (``train.jsonl``; the first DAG saved in the
DAGs folder as the README says). Adjustments, each for a stated reason:

* a command that serves until Ctrl-C (the emulator, the stack) passes once it prints its ready line;
  a fixed ``--port`` becomes ``--port 0`` so parallel test runs do not collide;
* ``python bench/X.py FLAGS`` (a benchmark of minutes) runs as ``--help``, and every flag shown
  must be one the benchmark has;
* ``make TARGET`` runs as ``make -n TARGET`` (the target exists and its recipe expands):
  ``make test`` is the CI itself and ``make demo`` has its own end-to-end test;
* ``pip install SPEC`` is resolved with ``uv pip install --dry-run --offline`` against this
  virtualenv (no network in tests, and uv venvs have no pip);
* the example DAGs poll every 2 s (``CLOVA_EXAMPLE_POLL_INTERVAL``), not the 30 s they default to.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_clova.datasets import SAMPLE_DATASET
from airflow_provider_clova.testing.stack import READY_LINE
from tests.docs_blocks import ROOT, all_blocks, under

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIN = Path(sys.executable).parent
SERVING = ("airflow_provider_clova.testing.stack", "airflow_provider_clova.testing.emulator")
READY = re.compile(r"CLOVA Studio emulator listening on|" + re.escape(READY_LINE))
OFFLINE = "Run your first DAG offline"
TIMEOUT = 300


def _uv() -> str | None:
    return shutil.which("uv") or next((str(p) for p in [Path.home() / ".local" / "bin" / "uv"] if p.exists()), None)


@dataclass
class Shell:
    """The reader's shell: a working directory and an environment."""

    cwd: Path
    env: dict[str, str]

    def run(
        self, script: str, *, cwd: Path | None = None, source_stack: bool = True
    ) -> subprocess.CompletedProcess[str]:
        prelude = ". ./clova-stack.env\n" if source_stack else ""
        if source_stack and cwd is not None:
            prelude = f". {self.cwd}/clova-stack.env\n"
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", prelude + script],
            cwd=cwd or self.cwd,
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=TIMEOUT,
            check=False,
        )

    def serve(self, command: str, timeout: float = 90) -> tuple[subprocess.Popen[str], list[str]]:
        """Start a command that serves until stopped; return once it printed its ready line."""
        process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=self.cwd,
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        seen: list[str] = []
        while True:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                stop(process)
                pytest.fail(f"{command!r} printed no ready line in {timeout} s:\n{''.join(seen)[-3000:]}")
            if line is None:
                pytest.fail(f"{command!r} exited with {process.wait()} before it was ready:\n{''.join(seen)[-3000:]}")
            seen.append(line)
            if READY.search(line):
                return process, seen


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(2)  # Ctrl-C, as the README says
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def stack_env(shell: Shell) -> dict[str, str]:
    text = (shell.cwd / "clova-stack.env").read_text()
    return dict(re.findall(r"^export (\w+)='(.*)'$", text, flags=re.M))


def emulator_stats(shell: Shell) -> dict[str, Any]:
    host = json.loads(stack_env(shell)["AIRFLOW_CONN_CLOVA_STUDIO_DEFAULT"])["host"]
    with urllib.request.urlopen(f"{host}/_emulator/stats", timeout=30) as response:
        return dict(json.loads(response.read()))


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shell]:
    cwd = tmp_path_factory.mktemp("reader")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_HOME"))}
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(cwd / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(cwd / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{cwd}/airflow.db",
            "CLOVA_EXAMPLE_POLL_INTERVAL": "2",
            "PYTHONWARNINGS": "ignore",
        }
    )
    (cwd / "dags").mkdir()
    # "Save this as support_bot_tuning.py in your DAGs folder", exactly as printed.
    (first_dag,) = under("A first DAG", "python")
    (cwd / "dags" / "support_bot_tuning.py").write_text(first_dag.code)
    shutil.copy(SAMPLE_DATASET, cwd / "train.jsonl")  # the reader's dataset in the validate examples
    reader = Shell(cwd, env)
    migrate = reader.run("airflow db migrate", source_stack=False)
    assert migrate.returncode == 0, migrate.stdout[-4000:]
    stack_command = under(OFFLINE, "sh")[0].commands()
    assert len(stack_command) == 1 and "testing.stack" in stack_command[0], stack_command
    process, _ = reader.serve(stack_command[0])
    yield reader
    stop(process)


def test_readme_first_dag_runs_offline_with_the_three_lines(shell: Shell) -> None:
    first_dag = under("A first DAG", "python")[0].code
    model = re.search(r'model="([^"]+)"', first_dag)
    assert model is not None
    run = shell.run(under(OFFLINE, "sh")[1].code, source_stack=False)  # ". ./clova-stack.env" + dags test
    assert run.returncode == 0, run.stdout[-8000:]
    stats = emulator_stats(shell)
    tuned = [task for task in stats["tuning_tasks_created"] if task["name"].startswith("support_bot_tuning")]
    assert [task["model"] for task in tuned] == [model.group(1)], stats["tuning_tasks_created"]
    assert stats["requests"].get("chat.tuned") == {"200": 1}
    # The stack's credentials are long enough for Airflow's masker: no "too short" warning.
    assert "Skipping masking" not in run.stdout
    assert "nv-offline-stack-api-key" not in run.stdout


COVERED = {  # run by the test above, with stronger checks
    *under(OFFLINE, "sh")[0].commands(),
    *under(OFFLINE, "sh")[1].commands(),
    # run by test_wheel_install.py, as written, from the installed wheel
    *(c for c in under(OFFLINE, "sh")[2].commands() if "clova_tuning_pipeline" in c),
}
COMMANDS = [
    (block.where, command)
    for block in all_blocks()
    if block.is_shell
    for command in block.commands()
    if command not in COVERED
]


def test_the_docs_show_commands() -> None:
    # The extraction finds what a reader sees; a Markdown change that hides them fails here.
    texts = [command for _, command in COMMANDS]
    assert any(text.startswith("python -m airflow_provider_clova.testing.emulator") for text in texts)
    assert any(text.startswith("python -m airflow_provider_clova.datasets validate") for text in texts)
    assert any(text.startswith("python -m airflow_provider_clova.pools sync") for text in texts)
    assert len(COVERED) == 4, COVERED


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[f"{w}: {c[:50]}" for w, c in COMMANDS])
def test_documented_command_runs_as_written(shell: Shell, where: str, command: str) -> None:
    words = command.split()
    if any(module in command for module in SERVING):
        process, _ = shell.serve(re.sub(r"--port \d+", "--port 0", command))
        stop(process)
        return
    if words[0] == "python" and words[1].startswith("bench/"):
        # A benchmark is a measurement of minutes, not a quick command: its flags must exist.
        run = shell.run(f"python {words[1]} --help", cwd=ROOT)
        flags = {word.split("=")[0] for word in words[2:] if word.startswith("--")}
        assert flags <= set(re.findall(r"--[\w-]+", run.stdout)), (flags, run.stdout[-3000:])
    elif words[0] == "make":
        run = shell.run(f"make -n {command[len('make ') :]}", cwd=ROOT)
    elif words[:2] == ["pip", "install"]:
        uv = _uv()
        if uv is None:
            pytest.skip("uv is not installed (make venv installs it)")
        spec = command[len("pip install ") :]
        constraint = re.search(r" --constraint (https://\S+)", spec)
        if constraint:
            # No network in tests: the constraints file is not fetched. Its address must name the
            # Airflow version of the README's tested-versions table and a supported Python.
            found = re.fullmatch(
                r"https://raw.githubusercontent.com/apache/airflow/constraints-(\d+\.\d+\.\d+)/constraints-3\.(\d+)\.txt",
                constraint.group(1),
            )
            assert found, constraint.group(1)
            assert f"| Apache Airflow | {found.group(1)} |" in (ROOT / "README.md").read_text()
            assert int(found.group(2)) >= 10
            spec = spec.replace(constraint.group(0), "")
        run = shell.run(f"{uv} pip install --dry-run --offline --python {sys.executable} {spec}", cwd=ROOT)
    else:
        run = shell.run(command)
    assert run.returncode == 0, f"{where}: {command}\n{run.stdout[-6000:]}"
