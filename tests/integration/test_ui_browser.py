"""The connection form and the console link in a real browser: Airflow 3's UI in headless Chromium.

``airflow api-server`` (simple auth manager, everyone admin, Test button enabled) serves an
AIRFLOW_HOME whose database already holds a finished tuning task, run by ``airflow dags test``
against the emulator while the server starts. The browser adds a ``clova_studio`` connection
through the form as a user would, presses Test against the emulator and reads the success toast,
then opens the tuning task's Details tab and finds the CLOVA Studio console link. Screenshots go
to ``.artifacts/`` (gitignored). Needs Debian's ``chromium`` and ``chromium-driver``
(``scripts/browser-deps.sh``, run by ``make test``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_clova._compat import AIRFLOW_V_3
from airflow_provider_clova.datasets import SAMPLE_DATASET
from airflow_provider_clova.links.console import ClovaStudioTuningConsoleLink, console_url
from airflow_provider_clova.testing.servers import ClovaEmulator, MotoServer
from airflow_provider_clova.testing.servers import _kill as stop_process
from airflow_provider_clova.testing.waiting import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.airflow3,
    pytest.mark.skipif(not AIRFLOW_V_3, reason="the React UI and api-server are Airflow 3"),
]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / ".artifacts"
AIRFLOW = Path(sys.executable).parent / "airflow"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
API_KEY = "nv-browser-test-api-key"
TUNING_DAG = """
from datetime import datetime

from airflow.sdk import DAG
from airflow_provider_clova.operators.tuning import ClovaStudioTuningOperator

with DAG("ui_tuning", start_date=datetime(2026, 1, 1), schedule=None):
    ClovaStudioTuningOperator(
        task_id="tune", model="HCX-003", dataset_bucket={bucket!r}, dataset_key="train.jsonl",
        object_storage_conn_id="ncloud_object_storage", poll_interval=0.5, deferrable=False,
    )
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def airflow_env(
    tmp_path: Path, clova_emulator_factory: Callable[..., ClovaEmulator], moto_server: MotoServer, moto_bucket: str
) -> Iterator[tuple[dict[str, str], ClovaEmulator]]:
    moto_server.s3_client().upload_file(SAMPLE_DATASET, moto_bucket, "train.jsonl")
    emulator = clova_emulator_factory(object_storage_endpoint=moto_server.endpoint, time_scale=0.001, api_key=API_KEY)
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "ui_tuning.py").write_text(TUNING_DAG.format(bucket=moto_bucket))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_HOME"))}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",  # disabled by default in Airflow 3
            "AIRFLOW_CONN_CLOVA_STUDIO_DEFAULT": json.dumps(
                {"conn_type": "clova_studio", "host": emulator.url, "password": API_KEY}
            ),
            "AIRFLOW_CONN_NCLOUD_OBJECT_STORAGE": json.dumps(
                {
                    "conn_type": "aws",
                    "login": moto_server.access_key,
                    "password": moto_server.secret_key,
                    "extra": {"endpoint_url": moto_server.endpoint, "region_name": moto_server.region},
                }
            ),
            "PYTHONWARNINGS": "ignore",
        }
    )
    migrate = subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, capture_output=True, text=True, check=False)
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
    yield env, emulator


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver: scripts/browser-deps.sh (make test runs it)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1200"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    ARTIFACTS.mkdir(exist_ok=True)
    yield driver
    driver.quit()


def test_connection_form_test_button_and_console_link(
    airflow_env: tuple[dict[str, str], ClovaEmulator], browser: Any
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    env, emulator = airflow_env
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(ARTIFACTS / "ui-api-server.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [str(AIRFLOW), "api-server", "-H", "127.0.0.1", "-p", str(port), "-w", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # A finished tuning task for the console link, run while the server starts.
        run = subprocess.run(
            [str(AIRFLOW), "dags", "test", "ui_tuning"],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
        (task,) = emulator.stats()["tuning_tasks_created"]
        wait_until(lambda: healthy(url), 120, interval=0.2, what="the api-server")

        def find(css: str, text: str | None = None) -> Any:
            def look(_: Any) -> Any:
                try:
                    for element in browser.find_elements(By.CSS_SELECTOR, css):
                        if text is None or text in element.text:
                            return element
                except (StaleElementReferenceException, WebDriverException):
                    return None
                return None

            return wait_until(lambda: look(None), 30, interval=0.2, what=f"{css} {text or ''}")

        def click(css: str, text: str | None = None) -> None:
            def attempt() -> bool:
                try:
                    find(css, text).click()
                    return True
                except StaleElementReferenceException:  # React re-rendered it; find it again
                    return False

            wait_until(attempt, 30, interval=0.2, what=f"a clickable {css} {text or ''}")

        # -- the form, filled as a user would ------------------------------------------------
        browser.get(f"{url}/connections")
        click("button", "Add Connection")
        find("input[name='connection_id']").send_keys("clova_browser")
        conn_type = find("input[role='combobox']")
        conn_type.send_keys("CLOVA Studio")
        find("[role='option']", "CLOVA Studio")
        conn_type.send_keys(Keys.ENTER)
        find("input[name='host']").send_keys(emulator.url)
        find("input[name='password']").send_keys(API_KEY)
        # A port makes the list's Test button send what is stored (it sends 0 for no port).
        find("input[name='port']").send_keys(emulator.url.rsplit(":", 1)[1])
        browser.save_screenshot(str(ARTIFACTS / "ui-1-standard-fields.png"))
        click("button", "Extra Fields")
        find("label", "Auth type")
        labels = (
            "App type",
            "Limits (QPM/TPM overrides)",
            "Console link",
            "Retries of a failed call",
            "Budget window (seconds)",
            "Slots of each CLOVA pool",
            "API Gateway key",
        )

        def missing() -> list[str]:
            # The section opens with an animation: text only counts once it is visible.
            text = browser.find_element(By.TAG_NAME, "body").text
            return [label for label in labels if label not in text]

        wait_until(lambda: not missing(), 30, interval=0.2, what="every extra field's label")
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "Bearer" in body  # the help that says which auth to choose
        auth = browser.find_element(By.CSS_SELECTOR, "input[name='element_auth_type']").find_element(
            By.XPATH, "preceding::input[@role='combobox'][1]"
        )
        auth.click()
        options = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "[role='option']")]
        browser.save_screenshot(str(ARTIFACTS / "ui-2-auth-type-dropdown.png"))
        assert any(o.startswith("bearer") for o in options), options
        assert "null" not in options, options
        click("[role='option']", "bearer")
        browser.save_screenshot(str(ARTIFACTS / "ui-3-extra-fields.png"))
        click("button", "Save")
        find("tbody tr", "clova_browser")

        # -- the Test button -----------------------------------------------------------------
        row = find("tbody tr", "clova_browser")
        row.find_element(By.CSS_SELECTOR, "button[aria-label='Test Connection']").click()
        toast = find("[role='status'], [role='region'] *", "Test Connection Successful")
        browser.save_screenshot(str(ARTIFACTS / "ui-4-test-connection.png"))
        assert f"API key (Bearer) at {emulator.url}: OK" in browser.find_element(By.TAG_NAME, "body").text, toast.text

        # -- the console link on the finished tuning task's Details tab ----------------------
        with sqlite3.connect(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")) as db:
            (run_id,) = db.execute("SELECT run_id FROM dag_run WHERE dag_id = 'ui_tuning'").fetchone()
        browser.get(f"{url}/dags/ui_tuning/runs/{run_id}/tasks/tune/details")
        link = find("a", ClovaStudioTuningConsoleLink.name)
        browser.save_screenshot(str(ARTIFACTS / "ui-5-console-link.png"))
        assert link.get_attribute("href") == console_url(task["id"])
    finally:
        stop_process(server)
        log.close()
