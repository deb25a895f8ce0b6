"""The offline stack's env file: a POSIX shell sourcing it gets back exactly the connection JSON."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from airflow_provider_clova.testing.servers import ClovaEmulator, MotoServer
from airflow_provider_clova.testing.stack import connection_env, exports


def test_sourced_exports_round_trip_awkward_values(tmp_path: Path) -> None:
    emulator = ClovaEmulator(
        url="http://127.0.0.1:1",
        access_key="a",
        secret_key="s",
        api_key="it's $HOME `x`",
        log_path=tmp_path,
        process=None,  # type: ignore[arg-type]
    )
    storage = MotoServer(endpoint="http://127.0.0.1:2", process=None, log_path=tmp_path)  # type: ignore[arg-type]
    env = connection_env(emulator, storage, conn_id="my_clova", object_storage_conn_id="my_s3")
    (tmp_path / "stack.env").write_text(exports(env))
    script = '. ./stack.env; printf \'%s\\n\' "$AIRFLOW_CONN_MY_CLOVA" "$AIRFLOW_CONN_MY_S3"'
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    clova, s3 = (json.loads(line) for line in out.splitlines())
    assert clova == {"conn_type": "clova_studio", "host": "http://127.0.0.1:1", "password": "it's $HOME `x`"}
    assert s3["extra"] == {"endpoint_url": "http://127.0.0.1:2", "region_name": "kr-standard"}
