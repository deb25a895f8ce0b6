"""Answer a human-in-the-loop step the way a person in the UI does: through Airflow's REST API.

Run as ``python approve.py DAG_ID TASK_ID OPTION TIMEOUT`` with the environment of the
``airflow dags test`` it answers (same metadata DB). The core API app is served in-process
(FastAPI's test client: no port, no api-server to start); it authenticates like any client,
with a token from the simple auth manager (``simple_auth_manager_all_admins``), waits until
the step asks, then PATCHes ``.../taskInstances/{task_id}/-1/hitlDetails`` with the option.
Prints one line ``APPROVED <json>`` with the request the step showed.
"""

from __future__ import annotations

import json
import sys
import time


def main(dag_id: str, task_id: str, option: str, timeout: float) -> int:
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    client = TestClient(create_app(apps="core"))
    token = client.get("/auth/token").json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.get(
            f"/api/v2/dags/{dag_id}/dagRuns/~/hitlDetails",
            params={"task_id": task_id, "response_received": False},
            headers=headers,
        )
        found.raise_for_status()
        waiting = list(found.json()["hitl_details"])
        if waiting:
            detail = waiting[0]
            run_id = detail["task_instance"]["dag_run_id"]
            answer = client.patch(
                f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
                json={"chosen_options": [option]},
                headers=headers,
            )
            answer.raise_for_status()
            shown = {key: detail[key] for key in ("subject", "body", "options")}
            print("APPROVED " + json.dumps({**shown, "response": answer.json()["chosen_options"]}), flush=True)
            return 0
        time.sleep(0.5)
    print(f"no {task_id} step asked within {timeout}s", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
