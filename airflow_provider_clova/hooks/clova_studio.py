"""``ClovaStudioHook``: an Airflow connection turned into a configured CLOVA Studio client.

The hook owns nothing about HTTP or CLOVA's rules (the core does); it reads the connection,
validates it through the core's ``config_from_connection``, registers the secrets with
Airflow's masker, and hands out the sync client (``get_conn``) or the async one for triggers
(``aget_conn``), both pooled and shared per connection (see ``client.pool``). Methods return
the core's typed models.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.connection import get_async_connection
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_clova._compat import AIRFLOW_V_3, amask_secret, mask_secret
from airflow_provider_clova.client import calls
from airflow_provider_clova.client.budget_store import check_store, store_secrets
from airflow_provider_clova.client.errors import ClovaStudioConfigError, ClovaStudioError
from airflow_provider_clova.client.retry import RetryPolicy
from airflow_provider_clova.connection_form import ui_field_behaviour, wtforms_widgets
from airflow_provider_clova.pools import pool_rate_share

if TYPE_CHECKING:
    import openai

    from airflow_provider_clova.client.calls import TuningDataset
    from airflow_provider_clova.client.client import AsyncClovaStudioClient, ClovaStudioClient
    from airflow_provider_clova.client.config import ClientConfig
    from airflow_provider_clova.client.models import ChatResult, EmbeddingResult, TuningTask

EXTRA_PREFIX = "extra__clova_studio__"


def _extra_dict(conn: Any) -> dict[str, Any]:
    """The connection's extra as a dict, accepting the UI's ``extra__clova_studio__`` prefixes."""
    # lazy: the client core loads httpx, and operators import this hook when a DAG file is parsed
    from airflow_provider_clova.client.config import parse_extra

    raw = parse_extra(conn.extra)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key[len(EXTRA_PREFIX) :] if key.startswith(EXTRA_PREFIX) else key
        if value not in (None, ""):
            out[name] = value
    return out


class ClovaStudioHook(BaseHook):
    """Interact with NAVER Cloud CLOVA Studio.

    :param clova_conn_id: connection of type ``clova_studio``.
    :param rate_share: the fraction of the model budgets this caller may spend (a task in a
        CLOVA pool passes ``pool_slots / pool size``; see the README's "Limits and pools").
    """

    conn_name_attr = "clova_conn_id"
    default_conn_name = "clova_studio_default"
    conn_type = "clova_studio"
    hook_name = "CLOVA Studio"

    def __init__(self, clova_conn_id: str = default_conn_name, *, rate_share: float = 1.0) -> None:
        super().__init__()
        if not 0 < rate_share <= 1:
            raise ClovaStudioConfigError(f"rate_share must be in (0, 1], got {rate_share!r}")
        self.clova_conn_id = clova_conn_id
        self.rate_share = rate_share

    # -- connection --------------------------------------------------------------------
    @staticmethod
    def _secrets_of(conn: Any) -> list[Any]:
        """The values to register with the log masker: the password, the API key, the gateway key
        and the budget store's password.

        The password comes first and never depends on the extra parsing, so it is masked even
        when the rest of the connection is invalid.
        """
        try:
            extra = _extra_dict(conn)
        except ClovaStudioConfigError:
            extra = {}
        store = extra.get("budget_store")
        return [
            conn.password,
            extra.get("api_key"),
            extra.get("apigw_api_key"),
            *(store_secrets(store) if isinstance(store, str) else []),
        ]

    def _config_from(self, conn: Any) -> ClientConfig:
        """Validated settings; the caller has registered the connection's secrets first."""
        # lazy: the client core loads httpx, and operators import this hook when a DAG file is parsed
        from airflow_provider_clova.client.config import config_from_connection

        extra = _extra_dict(conn)
        config = config_from_connection(
            host=conn.host,
            login=conn.login,
            password=conn.password,
            extra=extra,
            schema=conn.schema,
            port=conn.port,
            conn_id=self.clova_conn_id,
        )
        return replace(config, rate_share=self.rate_share)

    @cached_property
    def config(self) -> ClientConfig:
        """The validated client settings; a bad connection raises naming the field."""
        conn = self.get_connection(self.clova_conn_id)
        for secret in self._secrets_of(conn):
            mask_secret(secret)
        return self._config_from(conn)

    def with_rate_share(self, rate_share: float) -> ClovaStudioHook:
        """A hook on the same connection whose calls spend ``rate_share`` of each budget.

        Reuses this hook's validated settings, so the connection is not read again.
        """
        other = type(self)(self.clova_conn_id, rate_share=rate_share)
        other.__dict__["config"] = replace(self.config, rate_share=rate_share)
        return other

    def with_pool_share(self, operator: Any, model: str) -> ClovaStudioHook:
        """This hook, or one pacing at ``operator``'s share of ``model``'s budget when the
        operator runs in the model's CLOVA pool (``pools.pool_rate_share``); logs the share.

        With a budget store the share is kept only for the static fallback: the store paces
        the whole budget (``ClientConfig.pacing_share``) and the pool caps concurrency.
        """
        pool, slots = getattr(operator, "pool", None), int(getattr(operator, "pool_slots", 1) or 1)
        share = pool_rate_share(model, self.config, pool, slots)
        if share == self.rate_share:
            return self
        store = self.config.budget_store
        if store is not None:
            operator.log.info(
                "task runs in pool %r: the budget store %s paces the whole %s budget for every task; the pool "
                "caps how many run at once (static share %.1f%% only if the store is down and "
                "extra.budget_store_fallback is static)",
                pool,
                store.display,
                model,
                100 * share,
            )
            return self.with_rate_share(share)
        operator.log.info(
            "task runs in pool %r with %s slot(s): pacing at %.1f%% of the %s budget",
            pool,
            operator.pool_slots,
            100 * share,
            model,
        )
        return self.with_rate_share(share)

    def get_conn(self) -> ClovaStudioClient:
        """The process's pooled sync client for this connection, shared by every hook on it
        (so chat and batch tasks reuse one SSL context and one connection pool)."""
        return self._client

    @cached_property
    def _client(self) -> ClovaStudioClient:
        # lazy: the client core loads httpx, and operators import this hook when a DAG file is parsed
        from airflow_provider_clova.client.pool import shared_client

        return shared_client(self.config)

    async def aget_conn(self) -> AsyncClovaStudioClient:
        """The running event loop's pooled async client for this connection.

        Every trigger on the same connection in one triggerer shares it (one SSL context,
        one connection pool); the pool closes it when the loop ends, so callers never close
        it (its ``aclose()`` is a no-op). The connection is read without blocking the loop.
        """
        # lazy: the client core loads httpx, and operators import this hook when a DAG file is parsed
        from airflow_provider_clova.client.pool import ashared_client

        return await ashared_client(await self._aconfig())

    async def _aconfig(self) -> ClientConfig:
        """The connection's settings, read without blocking the loop, its secrets masked first."""
        conn = await get_async_connection(self.clova_conn_id, self)
        for secret in self._secrets_of(conn):
            await amask_secret(secret)
        return self._config_from(conn)

    async def aget_async_conn(self) -> AsyncClovaStudioClient:
        """The same shared client as ``aget_conn`` (kept for callers that use
        ``async with await hook.aget_async_conn() as client``: closing it is a no-op)."""
        return await self.aget_conn()

    # -- OpenAI-compatible API -------------------------------------------------------------
    def openai_client(self, **kwargs: Any) -> openai.OpenAI:
        """An ``openai.OpenAI`` on the connection's API key and ``<host>/v1/openai/`` (needs the ``openai`` extra).

        For teams already on the ``openai`` SDK or LangChain: the same connection, secret masking,
        base URL (the emulator in tests) and TLS settings. Its calls are paced by the provider's
        limiter, in the same budget as this hook's own calls (the model's QPM/TPM row, the pool
        share, ``extra.budget_store``): see ``client/openai_pacing.py``. ``kwargs`` go to
        ``openai.OpenAI`` and win over the connection's; an ``http_client`` of your own replaces
        the paced one.
        """
        # lazy: openai is the optional [openai] extra, and heavy
        import openai

        return openai.OpenAI(**{**self._openai_settings(self.config, asynchronous=False), **kwargs})

    async def aopenai_client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        """As :meth:`openai_client`, an ``openai.AsyncOpenAI``; the connection is read without blocking."""
        # lazy: openai is the optional [openai] extra, and heavy
        import openai

        return openai.AsyncOpenAI(**{**self._openai_settings(await self._aconfig(), asynchronous=True), **kwargs})

    def openai_http_client(self, *, asynchronous: bool = False) -> Any:
        """The paced HTTP client the SDK clients above use, for clients that build their own SDK
        client: LangChain's ``ChatClovaX(..., http_client=hook.openai_http_client(),
        http_async_client=hook.openai_http_client(asynchronous=True))``."""
        return self._paced_http_client(self.config, asynchronous)

    @staticmethod
    def _paced_http_client(config: ClientConfig, asynchronous: bool) -> Any:
        # lazy: openai is the optional [openai] extra, and heavy
        import openai

        # lazy: the client core loads httpx, and operators import this hook when a DAG file is parsed
        from airflow_provider_clova.client.openai_pacing import paced_http_client

        client_class = openai.DefaultAsyncHttpxClient if asynchronous else openai.DefaultHttpxClient
        return paced_http_client(client_class, config)

    def _openai_settings(self, config: ClientConfig, *, asynchronous: bool) -> dict[str, Any]:
        bearer = config.credentials.bearer
        if bearer is None:
            raise ClovaStudioConfigError(
                f"connection {self.clova_conn_id!r}: the OpenAI-compatible API takes only a CLOVA Studio API key "
                "(Bearer), and this connection has none. Fix: add the API key (nv-...) as extra.api_key, or in "
                "'password' when the connection has no IAM keys"
            )
        return {
            "api_key": bearer.api_key,
            "base_url": f"{config.base_url}/v1/openai/",
            "timeout": config.timeout,
            "max_retries": config.retry.max_attempts - 1,
            "http_client": self._paced_http_client(config, asynchronous),
        }

    def close(self) -> None:
        """Let go of the shared sync client (it stays open for other hooks; closed at exit)."""
        self.__dict__.pop("_client", None)

    # -- tuning ------------------------------------------------------------------------
    def create_tuning_task(self, model: str, dataset: TuningDataset | None = None, **fields: Any) -> TuningTask:
        """POST /tuning/v2/tasks with the documented fields (snake_case or camelCase)."""
        return self.get_conn().create_tuning_task(model, dataset, **fields)

    def get_tuning_task(self, task_id: str, *, deadline: float | None = None) -> TuningTask:
        """GET one task; ``deadline`` (``time.monotonic`` scale) bounds the call and its retries."""
        return self.get_conn().get_tuning_task(task_id, deadline=deadline)

    def list_tuning_tasks(self) -> Iterator[TuningTask]:
        """Every tuning task of the account, page by page."""
        return self.get_conn().list_tuning_tasks()

    def delete_tuning_task(self, task_id: str, *, missing_ok: bool = True) -> bool:
        return self.get_conn().delete_tuning_task(task_id, missing_ok=missing_ok)

    def find_tuning_tasks(self, name: str) -> list[TuningTask]:
        """Tasks with exactly this name, newest first: how a retry finds the job it submitted."""
        found = [task for task in self.list_tuning_tasks() if task.name == name]
        return sorted(found, key=lambda t: (t.created_date is not None, t.created_date), reverse=True)

    # -- chat --------------------------------------------------------------------------
    def chat_completion(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str | None = None,
        task_id: str | None = None,
        **params: Any,
    ) -> ChatResult:
        """A chat completion with a base model or a tuned task, paced by the shared limiter."""
        return self.get_conn().chat_completion(messages, model=model, task_id=task_id, **params)

    def base_model(self, model: str | None = None, tuning_task_id: str | None = None) -> str:
        """The model whose API generation and budget a chat call uses: ``model``, or the tuned
        task's base model (looked up once); a task that reports none raises a config error."""
        return self.get_conn().base_model(model, tuning_task_id)

    def count_tokens(self, messages: Sequence[Mapping[str, Any]], model: str) -> int:
        return self.get_conn().count_tokens(messages, model)

    # -- embeddings --------------------------------------------------------------------
    def embed(self, text: str, model: str = "embedding-v2") -> EmbeddingResult:
        """The embedding of ``text`` (``embedding-v2``, ``clir-emb-dolphin`` or ``clir-sts-dolphin``),
        paced by the model's budget."""
        return self.get_conn().embed(text, model)

    # -- async twins (for triggers) ----------------------------------------------------
    async def aget_tuning_task(self, task_id: str) -> TuningTask:
        client = await self.aget_conn()
        return await client.get_tuning_task(task_id)

    async def achat_completion(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str | None = None,
        task_id: str | None = None,
        **params: Any,
    ) -> ChatResult:
        client = await self.aget_conn()
        return await client.chat_completion(messages, model=model, task_id=task_id, **params)

    async def acount_tokens(self, messages: Sequence[Mapping[str, Any]], model: str) -> int:
        client = await self.aget_conn()
        return await client.count_tokens(messages, model)

    async def aembed(self, text: str, model: str = "embedding-v2") -> EmbeddingResult:
        client = await self.aget_conn()
        return await client.embed(text, model)

    # -- UI ----------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """For the UI's Test button: check each credential of the connection with a call that bills nothing.

        IAM keys and an API key each list one page of tuning tasks (a read); legacy app keys,
        documented for chat v1 and its token counter only, count the tokens of one word with
        HCX-003. A budget store (``extra.budget_store``) is reached and made to run a script, as
        the limiter will. Uses its own short-lived client with at most one quick retry: the button
        must answer within the UI's request timeout, not after the full backoff of a task's client.
        """
        # lazy: the client core loads httpx, and operators import this hook when a DAG file is parsed
        from airflow_provider_clova.client.client import ClovaStudioClient

        quick = RetryPolicy(
            max_attempts=2, max_elapsed_seconds=10.0, initial_backoff_seconds=0.5, max_backoff_seconds=2.0
        )
        try:
            config = self.config
        except ClovaStudioError as exc:
            return False, str(exc)
        checks: dict[str, tuple[str, calls.Call]] = {
            "bearer": ("API key (Bearer)", calls.list_tuning_tasks_page(0, 1)),
            "apigw_v2": ("IAM keys (signature v2)", calls.list_tuning_tasks_page(0, 1)),
            "legacy_keys": (
                "legacy app keys",
                calls.count_tokens([{"role": "user", "content": "ping"}], model="HCX-003"),
            ),
        }
        lines, ok = [], True
        with ClovaStudioClient(replace(config, retry=quick)) as client:
            for scheme in config.credentials.schemes:
                label, call = checks[scheme]
                where = f"{label} at {config.url_for(scheme)}"
                try:
                    answer = client.call(replace(call, scheme=scheme))
                except ClovaStudioError as exc:
                    ok = False
                    lines.append(f"{where}: FAILED: {exc}")
                    continue
                seen = f"{answer.total_elements} tuning task(s)" if scheme != "legacy_keys" else "token count works"
                lines.append(f"{where}: OK, {seen}")
        if config.budget_store is not None:
            try:
                lines.append(check_store(config.budget_store))
            except ClovaStudioError as exc:
                ok = False
                lines.append(f"FAILED: {exc}")
        return ok, "; ".join(lines)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel login/password and hide unused fields (Airflow 2.11 reads this; 3.x reads provider info)."""
        return ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields for the Airflow 2.11 connection form (Airflow 3 uses ``conn-fields``)."""
        if AIRFLOW_V_3:
            return {}

        return wtforms_widgets()
