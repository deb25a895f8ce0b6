"""Fuzz tests: the envelope parser and every parameter checker raise only the provider's typed
errors, whatever they are fed.

Every checker gets at least ``FUZZ_INPUTS`` inputs (default 10,000, the issue's bar). Drawing a
rich value costs hypothesis far more than checking it, so each drawn value is put through the
checker in every position it can take (every field of the table, every message shape, every
connection field, every status code and route of an answer): each such call is one input,
counted in ``RAN`` and printed by the last test (``-s`` shows it). Generation only, no example
database, so the counts are exact. ``FUZZ_INPUTS=100000 FUZZ_RANDOM=1`` searches longer and afresh.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from airflow_provider_clova.client import calls
from airflow_provider_clova.client.client import ClovaStudioClient
from airflow_provider_clova.client.config import config_from_connection
from airflow_provider_clova.client.envelope import parse_retry_after
from airflow_provider_clova.client.errors import ClovaStudioApiError, ClovaStudioBudgetError, ClovaStudioConfigError
from airflow_provider_clova.client.limits import validate_overrides
from airflow_provider_clova.client.params import (
    CHAT_V1_FIELDS,
    CHAT_V3_FIELDS,
    TUNING_FIELDS,
    normalize,
    normalize_chat_params,
)

from .conftest import make_config

INPUTS = int(os.environ.get("FUZZ_INPUTS", "10000"))
#: The same inputs on every run by default, so CI cannot fail on a draw it never saw before;
#: ``FUZZ_RANDOM=1`` explores new ones (do that after changing a parser or a checker).
DERANDOMIZE = os.environ.get("FUZZ_RANDOM", "") != "1"
#: inputs run per checker, checked and printed by the last test of this module
RAN: dict[str, int] = {}


def fuzz(inputs_per_example: int) -> Any:
    """Settings giving at least ``INPUTS`` inputs when each example makes ``inputs_per_example``."""
    return settings(
        max_examples=-(-INPUTS // inputs_per_example),
        derandomize=DERANDOMIZE,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )


def only_typed(
    name: str, fn: Callable[[], Any], allowed: tuple[type[BaseException], ...] = (ClovaStudioConfigError,)
) -> None:
    """Run ``fn``; a value or an ``allowed`` error passes, anything else fails the test. Counts it."""
    RAN[name] = RAN.get(name, 0) + 1
    try:
        fn()
    except allowed as exc:
        assert str(exc)  # every typed error says something
    # any other exception propagates: hypothesis shrinks the input and the test fails


# -- what hostile input looks like ---------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["nan", "NaN", "inf", "-Infinity", "1e308", "1e999", "²", "٣", "9" * 5000, " 5 ", "0x10", ""]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)

# -- the envelope parser -------------------------------------------------------------------

nested = st.integers(min_value=1, max_value=200_000).map(lambda n: b'{"result":' + b"[" * n + b"]" * n + b"}")
json_bodies = st.builds(
    lambda body: json.dumps(body, allow_nan=True).encode(),
    st.one_of(
        values,
        st.fixed_dictionaries({"status": st.fixed_dictionaries({"code": values, "message": values}), "result": values}),
        st.fixed_dictionaries({"error": st.fixed_dictionaries({"errorCode": values, "message": values})}),
    ),
)
bodies = st.one_of(json_bodies, st.binary(max_size=64), nested)
retry_after = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.sampled_from(["1e308", "inf", "nan", "-1", "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 99 Foo 0000 99:99:99 GMT"]),
)
STATUSES = (200, 201, 204, 302, 400, 401, 403, 404, 408, 413, 429, 500, 503, 504)
ROUTES = (
    calls.get_tuning_task("czf9fbky"),
    calls.list_tuning_tasks_page(0, 10),
    calls.create_tuning_task({"model": "HCX-005"}),
    calls.chat_completion([{"role": "user", "content": "hi"}], model="HCX-005", task_id=None, params={}, prefix=""),
    calls.chat_completion([{"role": "user", "content": "hi"}], model="HCX-003", task_id=None, params={}, prefix=""),
    calls.count_tokens([{"role": "user", "content": "hi"}], model="HCX-005"),
)


def _response(status: int, body: bytes, header: str | None) -> httpx.Response:
    headers = {"Retry-After": header} if header is not None and header.isascii() and "\n" not in header else {}
    request = httpx.Request("GET", "https://clovastudio.test/tuning/v2/tasks/czf9fbky")
    return httpx.Response(status, content=body, headers=headers, request=request)


@pytest.fixture(scope="module")
def client() -> Any:
    with ClovaStudioClient(make_config()) as c:
        yield c


@fuzz(len(STATUSES) * len(ROUTES))
@given(body=bodies, header=retry_after)
def test_envelope_and_result_parsers_raise_only_typed_errors(
    client: ClovaStudioClient, body: bytes, header: str | None
) -> None:
    """The whole path an answer takes, for every status and route: envelope, then result parser."""
    for status in STATUSES:
        for route in ROUTES:
            response = _response(status, body, header)
            only_typed(
                "envelope+result",
                lambda: client._finish(route, client._metering(route), response, "req-fuzz"),  # noqa: B023
                (ClovaStudioApiError,),
            )


CAPS = (None, 0.5, 4.0, 60.0, 600.0)


@fuzz(len(CAPS))
@given(header=retry_after)
def test_retry_after_is_a_bounded_finite_number_or_none(header: str | None) -> None:
    for cap in CAPS:
        RAN["retry-after"] = RAN.get("retry-after", 0) + 1
        seconds = parse_retry_after(header, cap=cap, now=1_700_000_000.0)
        assert seconds is None or (0 <= seconds <= (cap if cap is not None else float("inf")) and seconds == seconds)


# -- every parameter checker ----------------------------------------------------------------

CHECKERS: dict[str, tuple[Callable[[dict[str, Any]], Any], list[str]]] = {
    "tuning.params": (lambda p: calls.tuning_body("HCX-005", None, p), [*TUNING_FIELDS, "train_epochs", "lora_r"]),
    "chat.v1.params": (
        lambda p: normalize_chat_params(p, api="v1", max_output_tokens=4096),
        [*CHAT_V1_FIELDS, "max_tokens", "top_k"],
    ),
    "chat.v3.params": (
        lambda p: normalize_chat_params(p, api="v3", max_output_tokens=32768),
        [*CHAT_V3_FIELDS, "max_completion_tokens", "tool_choice"],
    ),
}
SMALLEST = min(len(names) for _, names in CHECKERS.values()) + 1


@fuzz(SMALLEST)
@given(value=values, name=st.text(max_size=10))
def test_parameter_checkers_take_any_value_in_any_field(value: Any, name: str) -> None:
    for checker, (check, names) in CHECKERS.items():
        for field in [*names, name]:
            only_typed(checker, lambda: check({field: value}))  # noqa: B023


#: A drawn combination feeds six checks only; a few hundred cover the interplay of fields.
COMBINATIONS = int(os.environ.get("FUZZ_COMBINATIONS", "300"))


@settings(
    max_examples=COMBINATIONS,
    derandomize=DERANDOMIZE,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    fields=st.dictionaries(
        st.one_of(st.sampled_from(sorted({*TUNING_FIELDS, *CHAT_V1_FIELDS, *CHAT_V3_FIELDS})), st.text(max_size=6)),
        values,
        max_size=4,
    )
)
def test_parameter_checkers_take_any_combination(fields: dict[str, Any]) -> None:
    for checker, (check, _) in CHECKERS.items():
        only_typed(checker + ".combined", lambda: check(fields))  # noqa: B023
    for table in (TUNING_FIELDS, CHAT_V1_FIELDS, CHAT_V3_FIELDS):
        only_typed("normalize.combined", lambda: normalize(fields, table, where="fuzz"))  # noqa: B023


def message_shapes(value: Any) -> list[Any]:
    return [
        value,
        [value],
        [{"role": "user", "content": value}],
        [{"role": "system", "content": value}, {"role": "user", "content": "hi"}],
        [{"role": "assistant", "content": "a", "toolCalls": value}],
        [{"role": value, "content": "x"}],
        [{"role": "user", "content": [{"type": "text", "text": value}]}],
        [{"role": "user", "content": "x", "extra": value}],
    ]


MODELS = ("HCX-005", "HCX-003", "HCX-DASH-002")


@fuzz(len(message_shapes(None)) * len(MODELS))
@given(value=values)
def test_chat_requests_take_any_message(value: Any) -> None:
    for messages in message_shapes(value):
        for model in MODELS:

            def build() -> None:
                call = calls.chat_completion(messages, model=model, task_id=None, params={}, prefix="")  # noqa: B023
                json.dumps(call.json, allow_nan=False)  # what httpx does: a request that passed is encodable

            only_typed("chat.request", build, (ClovaStudioConfigError, ClovaStudioBudgetError))


EXTRA_FIELDS = (
    "auth_type", "app_type", "apigw_api_key", "timeout", "verify", "limits", "rate_window_seconds", "pool_slots",
    "max_retries", "console_url", "bogus",
)  # fmt: skip


@fuzz(len(EXTRA_FIELDS) + 4)
@given(value=values)
def test_connection_fields_take_any_value(value: Any) -> None:
    text = value if isinstance(value, str) else None
    for field in EXTRA_FIELDS:
        only_typed(
            "connection",
            lambda: config_from_connection(host=None, login=None, password="KEY", extra={field: value}),  # noqa: B023
        )
    for kwargs in ({"extra": value}, {"host": text}, {"login": text}, {"password": text}):
        fields = {"host": None, "login": None, "password": "KEY", "extra": None, **kwargs}
        only_typed("connection", lambda: config_from_connection(**fields))  # noqa: B023


LIMIT_MODELS = ("HCX-005", "HCX-003", "HCX-DASH-002", "no-such-model")


def limit_shapes(value: Any) -> list[Any]:
    shapes: list[Any] = [value]
    for model in LIMIT_MODELS:
        shapes += [{model: value}, {model: {"qpm": value}}, {model: {"tpm": value}}, {model: {"qpm": 60, "x": value}}]
    return shapes


@fuzz(len(limit_shapes(None)))
@given(value=values)
def test_limit_overrides_take_any_value(value: Any) -> None:
    for overrides in limit_shapes(value):
        only_typed("limits", lambda: validate_overrides(overrides))  # noqa: B023


def test_zz_every_fuzzer_ran_its_inputs() -> None:
    """Runs last in this module: prints the counts (the lead quotes them) and checks the bar."""
    print("\nfuzz inputs run: " + ", ".join(f"{name}={count}" for name, count in sorted(RAN.items())))
    if not RAN:
        pytest.skip("run with the fuzzers (this test reports their counts)")
    assert all(count >= INPUTS for name, count in RAN.items() if not name.endswith(".combined")), RAN
