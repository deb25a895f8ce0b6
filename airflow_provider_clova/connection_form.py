"""The ``clova_studio`` connection form, declared once for Airflow 3 and Airflow 2.11.

Airflow 3 renders the form from the provider info (``conn-fields``: a JSON schema per extra
field, ``ui-field-behaviour``); Airflow 2.11 asks the hook for WTForms widgets. Both are
generated from ``EXTRA_FIELDS`` below, so a new connection extra is one entry here (and one name
in ``client.config.KNOWN_EXTRA``, which a test checks against this list).

Standard library only: ``get_provider_info`` imports this while Airflow discovers providers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["choice", "text", "secret", "number", "integer", "boolean", "json"]


@dataclass(frozen=True)
class ExtraField:
    """One ``extra`` key of the connection as a form field."""

    name: str
    label: str
    kind: Kind
    description: str
    #: For ``choice``: value -> what the dropdown shows. Empty means "not set" (the documented default).
    choices: Mapping[str, str] = field(default_factory=dict)
    placeholder: str = ""
    #: What the form starts with; None leaves the field empty (the connection rules' default applies).
    default: Any = None


AUTH_HELP = (
    "Which credentials: an API key from the CLOVA Studio console (Bearer; the current scheme, every API) "
    "goes in Password with Access key empty. NCP IAM keys (API Gateway signature v2, tuning API only) go "
    "in Access key + Password, with the API key in 'API key next to IAM keys' for chat and embeddings. "
    "legacy_keys only for app keys issued before 2025 (v1 chat and token count only)."
)

EXTRA_FIELDS: tuple[ExtraField, ...] = (
    ExtraField(
        "auth_type",
        "Auth type",
        "choice",
        "Leave empty to choose from the fields: an Access key means signature v2, else Bearer. " + AUTH_HELP,
        choices={
            "bearer": "bearer: API key (Authorization: Bearer)",
            "apigw_v2": "apigw_v2: access key + secret key (signature v2)",
            "legacy_keys": "legacy_keys: CLOVA Studio key + API Gateway key",
        },
    ),
    ExtraField(
        "api_key",
        "API key next to IAM keys",
        "secret",
        "A CLOVA Studio API key (nv-...) for a connection whose Access key + Password are IAM keys: the IAM "
        "keys sign the tuning API, this key sends chat, token counts, embeddings and the OpenAI-compatible API. "
        "Leave empty when Password already is the API key.",
    ),
    ExtraField(
        "app_type",
        "App type",
        "choice",
        "test (the default when empty) or service: selects the QPM/TPM budgets and the legacy path prefix.",
        choices={"test": "test app", "service": "service app"},
    ),
    ExtraField(
        "apigw_api_key",
        "API Gateway key",
        "secret",
        "Only for auth type legacy_keys: the X-NCP-APIGW-API-KEY that goes with the CLOVA Studio key in Password.",
    ),
    ExtraField("timeout", "Request timeout (seconds)", "number", "Per request; empty means 60.", placeholder="60"),
    ExtraField(
        "max_retries",
        "Retries of a failed call",
        "integer",
        "Retries with backoff of a call that failed on 429, 5xx or the network; empty means 5.",
        placeholder="5",
    ),
    # A switch cannot show "empty", and an empty one looks like "off": start it on, as verification is.
    ExtraField(
        "verify",
        "Verify TLS",
        "boolean",
        "Check the server's TLS certificate (on unless you turn it off).",
        default=True,
    ),
    ExtraField(
        "limits",
        "Limits (QPM/TPM overrides)",
        "json",
        "Your account's budgets when they differ from the packaged table, per model, "
        'e.g. {"HCX-005": {"qpm": 120, "tpm": 90000}}.',
        placeholder='{"HCX-005": {"qpm": 120, "tpm": 90000}}',
    ),
    ExtraField(
        "models",
        "Model catalog overrides",
        "json",
        "Model facts that differ from the packaged catalog, e.g. a model NAVER opens to training later: "
        '{"HCX-005": {"tunable": true}}; a model the catalog lacks also needs "api" ("v1" or "v3").',
        placeholder='{"HCX-005": {"tunable": true}}',
    ),
    ExtraField(
        "pool_slots",
        "Slots of each CLOVA pool",
        "integer",
        "Slots the provider's pools were created with (python -m airflow_provider_clova.pools sync); "
        "a task paces at budget x its pool_slots / this. Empty means 4.",
        placeholder="4",
    ),
    ExtraField(
        "rate_window_seconds",
        "Budget window (seconds)",
        "number",
        "Length of the QPM/TPM window the limiter paces against; empty means 60. "
        "Change it only against the emulator run with a shortened window.",
        placeholder="60",
    ),
    ExtraField(
        "budget_store",
        "Shared budget store",
        "secret",
        "redis://[:password@]host:6379/0 (or rediss://, unix://): one QPM/TPM budget for every worker. "
        "Empty: each process paces on its own (with pools splitting the budget).",
    ),
    ExtraField(
        "budget_store_fallback",
        "When the store is unreachable",
        "choice",
        "error (the default when empty): a call fails; static: pace at the pool's static share until it is back.",
        choices={"error": "error: fail the call", "static": "static: pace at the pool's share"},
    ),
    ExtraField(
        "console_url",
        "Console link",
        "text",
        "Address of a tuning task in your console, with {task_id}; empty means the public CLOVA Studio console.",
    ),
)

# Port stays visible: the Test button of Airflow 3's connection list sends a connection stored
# without a port as port 0, and the API refuses that as "The host or port to test differs from the
# stored connection" (checked in Chromium, Airflow 3.3). With the port filled in, Test works; a
# port is added to a Base URL that has none and ignored when the URL has one.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema"],
    "relabeling": {
        "host": "Base URL",
        "login": "Access key (signature v2 only; empty for an API key)",
        "password": "API key, or the secret key with an Access key",
        "port": "Port (fill it for the Test button)",
    },
    "placeholders": {
        "host": "https://clovastudio.stream.ntruss.com",
        "login": "empty for an API key; NCP access key for signature v2",
        "password": "nv-... (CLOVA Studio API key), or the NCP secret key",
        "port": "443 for https, or the port in the Base URL",
        "extra": "{}",
    },
}


def _schema(spec: ExtraField) -> dict[str, Any]:
    """The JSON schema Airflow 3's form renders; every field may stay empty (``null``)."""
    schema = _type_schema(spec)
    if spec.default is not None:
        schema["default"] = spec.default
    return schema


def _type_schema(spec: ExtraField) -> dict[str, Any]:
    if spec.kind == "choice":
        # No ``null`` in the enum: the dropdown is clearable already, and a ``null`` option
        # would be shown as the literal text "null".
        return {"type": ["string", "null"], "enum": list(spec.choices), "values_display": dict(spec.choices)}
    if spec.kind == "secret":
        return {"type": ["string", "null"], "format": "password"}
    if spec.kind == "json":
        return {"type": ["object", "null"]}
    if spec.kind == "text":
        return {"type": ["string", "null"]}
    return {"type": [spec.kind, "null"]}


def conn_fields() -> dict[str, Any]:
    """``conn-fields`` of the provider info (Airflow 3)."""
    return {
        spec.name: {"label": spec.label, "description": spec.description, "schema": _schema(spec)}
        for spec in EXTRA_FIELDS
    }


def ui_field_behaviour() -> dict[str, Any]:
    """``get_ui_field_behaviour`` of the hook: the provider info's block with snake_case keys."""
    return {
        "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
        "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
        "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
    }


def wtforms_widgets() -> dict[str, Any]:
    """The Airflow 2.11 form's extra fields (Flask-AppBuilder / WTForms), from the same list.

    Airflow 2.11 accepts only StringField, PasswordField, IntegerField and BooleanField (a hook
    with any other class loses its whole form), so a choice is a text field whose help lists the
    values; an empty field takes the default.
    """
    # lazy: web-form libraries, loaded only when Airflow 2.11 draws the connection form
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import BooleanField, PasswordField, StringField
    from wtforms.validators import Optional

    widgets: dict[str, Any] = {}
    for spec in EXTRA_FIELDS:
        label = lazy_gettext(spec.label)
        help_text = spec.description
        if spec.kind == "choice":
            help_text = f"One of {', '.join(spec.choices)}. {help_text}"
        if spec.kind == "boolean":
            widgets[spec.name] = BooleanField(label, default=spec.default, description=lazy_gettext(help_text))
        elif spec.kind == "secret":
            widgets[spec.name] = PasswordField(
                label, description=lazy_gettext(help_text), widget=BS3PasswordFieldWidget()
            )
        else:
            widgets[spec.name] = StringField(
                label, description=lazy_gettext(help_text), validators=[Optional()], widget=BS3TextFieldWidget()
            )
    return widgets
