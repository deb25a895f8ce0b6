"""get_provider_info: valid for Airflow's schema, consistent with the hook and the connection rules."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_clova._compat import AIRFLOW_V_3
from airflow_provider_clova.client.config import KNOWN_EXTRA, config_from_connection
from airflow_provider_clova.get_provider_info import get_provider_info
from airflow_provider_clova.hooks.clova_studio import EXTRA_PREFIX, ClovaStudioHook, _extra_dict


def airflow_schema(name: str) -> dict[str, Any]:
    import airflow

    path = Path(airflow.__file__).parent / name
    if not path.exists():
        pytest.skip(f"{name} not shipped by this Airflow")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def info() -> dict[str, Any]:
    return get_provider_info()


def test_valid_against_airflows_provider_info_schema(info: dict[str, Any]) -> None:
    import jsonschema

    jsonschema.validate(info, airflow_schema("provider_info.schema.json"))


def test_package_and_version(info: dict[str, Any]) -> None:
    from airflow_provider_clova import __version__

    assert info["package-name"] == "airflow-provider-clova"
    assert info["versions"][0] == __version__


def test_connection_type_points_at_the_hook(info: dict[str, Any]) -> None:
    (conn_type,) = info["connection-types"]
    assert conn_type["connection-type"] == "clova_studio" == ClovaStudioHook.conn_type
    module_name, _, class_name = conn_type["hook-class-name"].rpartition(".")
    assert getattr(importlib.import_module(module_name), class_name) is ClovaStudioHook
    assert conn_type["hook-name"] == ClovaStudioHook.hook_name


def test_ui_behaviour_is_valid_once_airflow_converts_it(info: dict[str, Any]) -> None:
    import jsonschema

    behaviour = info["connection-types"][0]["ui-field-behaviour"]
    converted = {  # what ProvidersManager does with the kebab-case keys
        "hidden_fields": behaviour.get("hidden-fields", []),
        "relabeling": behaviour.get("relabeling", {}),
        "placeholders": behaviour.get("placeholders", {}),
    }
    jsonschema.validate(converted, airflow_schema("customized_form_field_behaviours.schema.json"))
    jsonschema.validate(
        ClovaStudioHook.get_ui_field_behaviour(), airflow_schema("customized_form_field_behaviours.schema.json")
    )
    widgets = ClovaStudioHook.get_connection_form_widgets()
    if AIRFLOW_V_3:
        assert widgets == {}  # Airflow 3 builds the form from the provider info's conn-fields
    else:
        assert set(widgets) == {"api_key", "auth_type", "app_type", "apigw_api_key"}  # the 2.11 form


def test_every_ui_field_is_a_known_extra(info: dict[str, Any]) -> None:
    # A field the form offers must never be refused by the connection rules as unknown.
    fields = info["connection-types"][0]["conn-fields"]
    assert set(fields) <= KNOWN_EXTRA
    for name, spec in fields.items():
        assert "label" in spec and "schema" in spec, name
    assert fields["apigw_api_key"]["schema"].get("format") == "password"
    assert fields["api_key"]["schema"].get("format") == "password"


def test_ui_saved_extras_are_accepted(info: dict[str, Any]) -> None:
    # The form stores its fields under the extra__clova_studio__ prefix, with empties as "" or None.
    fields = info["connection-types"][0]["conn-fields"]
    saved = {f"{EXTRA_PREFIX}{name}": None for name in fields}
    saved.update({f"{EXTRA_PREFIX}app_type": "service", f"{EXTRA_PREFIX}timeout": "30", f"{EXTRA_PREFIX}verify": ""})
    conn = type("Conn", (), {"extra": json.dumps(saved)})()
    extra = _extra_dict(conn)
    config = config_from_connection(host=None, login=None, password="nv-key-abcdef", extra=extra)
    assert (config.app_type, config.timeout, config.verify) == ("service", 30.0, True)


def test_listed_modules_exist(info: dict[str, Any]) -> None:
    from importlib.util import find_spec

    for section in ("hooks", "operators", "triggers", "sensors"):
        for entry in info.get(section, []):
            for module in entry["python-modules"]:
                assert find_spec(module) is not None, module
    for link in info.get("extra-links", []):
        module_name, _, class_name = link.rpartition(".")
        assert hasattr(importlib.import_module(module_name), class_name), link


def test_get_provider_info_does_not_import_airflow() -> None:
    code = (
        "import sys, json\n"
        "from airflow_provider_clova.get_provider_info import get_provider_info\n"
        "get_provider_info()\n"
        "print(json.dumps([m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
