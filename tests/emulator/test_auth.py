"""Rule 1: the three auth schemes, checked exactly as documented, each only on its documented routes."""

from __future__ import annotations

import time

import pytest

from tests.emulator.conftest import Api, signed_headers

pytestmark = pytest.mark.integration

CHAT = {"messages": [{"role": "user", "content": "Hi"}]}
LIST = "/tuning/v2/tasks?page=0&size=20"


def code(response) -> str:  # type: ignore[no-untyped-def]
    body = response.json()
    return body["error"]["code"] if "error" in body else body["status"]["code"]


LEGACY = {"X-NCP-CLOVASTUDIO-API-KEY": "STUDIO2", "X-NCP-APIGW-API-KEY": "GW2"}
TEXT = {"text": "hello"}
OPENAI_CHAT = {"model": "HCX-005", "messages": [{"role": "user", "content": "Hi"}]}
OPENAI_EMBED = {"model": "bge-m3", "input": "hello"}
#: (method, path, body, schemes documented for it)
ROUTES = [
    ("GET", LIST, None, {"bearer", "apigw_v2"}),
    ("POST", "/v1/chat-completions/HCX-003", CHAT, {"bearer"}),
    ("POST", "/testapp/v1/chat-completions/HCX-003", CHAT, {"bearer", "legacy_keys"}),
    ("POST", "/v3/chat-completions/HCX-005", CHAT, {"bearer"}),
    ("POST", "/testapp/v3/chat-completions/HCX-005", CHAT, {"bearer"}),
    ("POST", "/v1/api-tools/chat-tokenize/HCX-003", CHAT, {"bearer"}),
    ("POST", "/testapp/v1/api-tools/chat-tokenize/HCX-003", CHAT, {"bearer", "legacy_keys"}),
    ("POST", "/v3/api-tools/chat-tokenize/HCX-005", CHAT, {"bearer"}),
    ("POST", "/testapp/v3/api-tools/chat-tokenize/HCX-005", CHAT, {"bearer"}),
    ("POST", "/v1/api-tools/embedding/v2", TEXT, {"bearer"}),
    ("POST", "/v1/api-tools/embedding/clir-emb-dolphin", TEXT, {"bearer"}),
    ("POST", "/v1/openai/chat/completions", OPENAI_CHAT, {"bearer"}),
    ("POST", "/v1/openai/embeddings", OPENAI_EMBED, {"bearer"}),
    ("GET", "/v1/openai/models", None, {"bearer"}),
]


def credentials(scheme: str, method: str, path: str) -> dict[str, str]:
    if scheme == "bearer":
        return {"Authorization": "Bearer KEY2"}  # the account that also owns the legacy pair
    if scheme == "apigw_v2":
        return signed_headers(method, path, access_key="AK2", secret_key="SK2")
    return dict(LEGACY)


@pytest.mark.parametrize("scheme", ["bearer", "apigw_v2", "legacy_keys"])
@pytest.mark.parametrize(("method", "path", "body", "documented"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_each_scheme_only_on_its_documented_routes(
    api: Api, scheme: str, method: str, path: str, body: object, documented: set[str]
) -> None:
    headers = credentials(scheme, method, path)
    response = api.get(path, headers) if method == "GET" else api.post(path, body, headers)
    if scheme in documented:
        assert response.status_code == 200, response.text
    else:
        assert (response.status_code, code(response)) == (401, "40102"), response.text
        assert "is not accepted" in response.text and "Bearer" in response.text
        # Refused before anything ran: nothing charged.
        assert all(w["served"] == 0 for w in api.stats()["windows"])


def test_signature_v2_accepted_with_path_and_query_as_sent(api: Api) -> None:
    response = api.get(LIST, signed_headers("GET", LIST))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == {"code": "20000", "message": "OK"}


def test_signature_over_reordered_query_is_rejected(api: Api) -> None:
    # The client signs one query string and sends another: the raw target must be signed.
    response = api.get("/tuning/v2/tasks?size=20&page=0", signed_headers("GET", LIST))
    assert (response.status_code, code(response)) == (401, "40101")


def test_signature_covers_percent_encoding_as_sent(api: Api) -> None:
    sent = "/tuning/v2/tasks/ab%2Dcd"
    assert api.get(sent, signed_headers("GET", "/tuning/v2/tasks/ab-cd")).status_code == 401
    # Signed over the bytes actually sent: authenticated (then 404: no such task).
    response = api.get(sent, signed_headers("GET", sent))
    assert (response.status_code, code(response)) == (404, "40400")


def test_wrong_secret_is_40101(api: Api) -> None:
    response = api.get(LIST, signed_headers("GET", LIST, secret_key="not-the-secret"))
    assert (response.status_code, code(response)) == (401, "40101")
    assert "not-the-secret" not in response.text


def test_method_is_signed(api: Api) -> None:
    response = api.delete("/tuning/v2/tasks/abcdefgh", signed_headers("GET", "/tuning/v2/tasks/abcdefgh"))
    assert (response.status_code, code(response)) == (401, "40101")


@pytest.mark.parametrize("offset_s", [-301, 301])
def test_timestamp_more_than_5_minutes_off_is_40101(api: Api, offset_s: int) -> None:
    ts = str(int((time.time() + offset_s) * 1000))
    response = api.get(LIST, signed_headers("GET", LIST, timestamp=ts))
    assert (response.status_code, code(response)) == (401, "40101")


def test_timestamp_within_5_minutes_is_accepted(api: Api) -> None:
    ts = str(int((time.time() - 280) * 1000))
    assert api.get(LIST, signed_headers("GET", LIST, timestamp=ts)).status_code == 200


def test_timestamp_differing_from_the_signed_one_is_40101(api: Api) -> None:
    headers = signed_headers("GET", LIST)
    headers["X-NCP-APIGW-TIMESTAMP"] = str(int(headers["X-NCP-APIGW-TIMESTAMP"]) + 1)
    response = api.get(LIST, headers)
    assert (response.status_code, code(response)) == (401, "40101")


def test_missing_signature_header_is_40100(api: Api) -> None:
    headers = signed_headers("GET", LIST)
    del headers["X-NCP-APIGW-SIGNATURE-V2"]
    response = api.get(LIST, headers)
    assert (response.status_code, code(response)) == (401, "40100")


def test_unknown_access_key_is_40104(api: Api) -> None:
    response = api.get(LIST, signed_headers("GET", LIST, access_key="NOPE"))
    assert (response.status_code, code(response)) == (401, "40104")


def test_no_credentials_is_40100(api: Api) -> None:
    response = api.get(LIST, {})
    assert (response.status_code, code(response)) == (401, "40100")


def test_bearer_keys(api: Api) -> None:
    assert api.post("/v3/chat-completions/HCX-005", CHAT).status_code == 200
    unknown = api.post("/v3/chat-completions/HCX-005", CHAT, {"Authorization": "Bearer nv-unknown"})
    assert (unknown.status_code, code(unknown)) == (401, "40104")
    basic = api.post("/v3/chat-completions/HCX-005", CHAT, {"Authorization": "Basic QUs6U0s="})
    assert (basic.status_code, code(basic)) == (401, "40102")


def test_bearer_test_key_cannot_call_service_app(api: Api) -> None:
    response = api.post("/serviceapp/v1/chat-completions/HCX-003", CHAT)
    assert (response.status_code, code(response)) == (403, "40300")
    service = api.post("/serviceapp/v1/chat-completions/HCX-003", CHAT, {"Authorization": "Bearer SVC2"})
    assert service.status_code == 200


def test_legacy_pair_only_with_app_prefix(api: Api) -> None:
    headers = {"X-NCP-CLOVASTUDIO-API-KEY": "STUDIO2", "X-NCP-APIGW-API-KEY": "GW2"}
    assert api.post("/testapp/v1/chat-completions/HCX-003", CHAT, headers).status_code == 200
    bare = api.post("/v1/chat-completions/HCX-003", CHAT, headers)
    assert (bare.status_code, code(bare)) == (401, "40102")
    assert "outside /testapp/ and /serviceapp/" in bare.text
    svc = {"X-NCP-CLOVASTUDIO-API-KEY": "STUDIOSVC", "X-NCP-APIGW-API-KEY": "GWSVC"}
    assert api.post("/serviceapp/v1/chat-completions/HCX-003", CHAT, svc).status_code == 200


def test_legacy_failures_use_the_gateway_shape(api: Api) -> None:
    wrong = {"X-NCP-CLOVASTUDIO-API-KEY": "STUDIO2", "X-NCP-APIGW-API-KEY": "WRONG"}
    response = api.post("/testapp/v1/chat-completions/HCX-003", CHAT, wrong)
    assert response.status_code == 401
    assert response.json() == {"error": {"errorCode": "200", "message": "Authentication Failed"}}
    half = api.post("/testapp/v1/chat-completions/HCX-003", CHAT, {"X-NCP-CLOVASTUDIO-API-KEY": "STUDIO2"})
    assert half.json()["error"]["errorCode"] == "200"
    right = {"X-NCP-CLOVASTUDIO-API-KEY": "STUDIO2", "X-NCP-APIGW-API-KEY": "GW2"}
    other_app = api.post("/serviceapp/v1/chat-completions/HCX-003", CHAT, right)
    assert other_app.status_code == 401
    assert other_app.json() == {"error": {"errorCode": "210", "message": "Permission Denied"}}


def test_app_type_follows_key_and_prefix(api: Api) -> None:
    api.post("/v1/chat-completions/HCX-003", CHAT)  # default account, test key
    api.post("/v1/chat-completions/HCX-003", CHAT, {"Authorization": "Bearer SVC2"})  # other, service key
    svc_legacy = {"X-NCP-CLOVASTUDIO-API-KEY": "STUDIOSVC", "X-NCP-APIGW-API-KEY": "GWSVC"}
    api.post("/serviceapp/v1/chat-completions/HCX-003", CHAT, svc_legacy)  # other, service pair
    api.post("/testapp/v1/chat-completions/HCX-003", CHAT)  # default account, test key, test prefix
    windows = {(w["account"], w["app_type"]): w["served"] for w in api.stats()["windows"]}
    assert windows == {("default", "test"): 2, ("other", "service"): 2}


def test_accounts_are_isolated(api: Api) -> None:
    body = {
        "model": "HCX-003",
        "trainingDatasetBucket": "b",
        "trainingDatasetFilePath": "d.jsonl",
        "trainingDatasetAccessKey": "a",
        "trainingDatasetSecretKey": "s",
    }
    task_id = api.post("/tuning/v2/tasks", body).json()["result"]["id"]
    other = {"Authorization": "Bearer KEY2"}
    response = api.get(f"/tuning/v2/tasks/{task_id}", other)
    assert (response.status_code, code(response)) == (403, "40301")
    assert api.get("/tuning/v2/tasks", other).json()["result"]["totalElements"] == 0
    deleted = api.delete(f"/tuning/v2/tasks/{task_id}", other)
    assert (deleted.status_code, code(deleted)) == (403, "40301")
    # The same account through another scheme sees it.
    target = f"/tuning/v2/tasks/{task_id}"
    assert api.get(target, signed_headers("GET", target)).status_code == 200
    chat = api.post(f"/v1/tasks/{task_id}/chat-completions", CHAT, other)
    assert (chat.status_code, code(chat)) == (403, "40301")


def test_auth_failures_do_not_consume_faults(api: Api) -> None:
    api.http.post("/_emulator/faults", json={"routes": {"chat.v3": {"sequence": ["500"]}}})
    assert api.post("/v3/chat-completions/HCX-005", CHAT, {}).status_code == 401
    assert api.post("/v3/chat-completions/HCX-005", CHAT).status_code == 500
