"""The emulator's configuration: accounts, budgets, pacing and fault settings.

Everything the server needs is gathered in one frozen :class:`EmulatorConfig`, built either by
the command line (``cli.py``) or directly by tests, so the app itself never reads files or
environment variables and two emulators in one process cannot share hidden state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from airflow_provider_clova.client.catalog import known_models

AppType = Literal["test", "service"]
APP_TYPES: tuple[AppType, ...] = ("test", "service")

DEFAULT_ACCOUNT = "default"

#: Base models the emulated service trains: the models the current public pages document as
#: tunable. The emulator keeps its own list rather than reading the client's catalog, because it
#: stands for the service: a client whose catalog is wrong must be refused here, as it would be
#: there. ``--tunable-models`` changes it (e.g. to rehearse a model NAVER opens to training).
DOCUMENTED_TUNABLE_MODELS: tuple[str, ...] = ("HCX-003",)


class EmulatorConfigError(ValueError):
    """A flag or a configuration file is wrong; the message names the field."""


@dataclass(frozen=True)
class Account:
    """One main account and every credential that acts for it.

    CLOVA Studio counts limits per main account, so every key (signature v2 pair, Bearer key,
    legacy app-key pair) resolves to the account it belongs to.
    """

    name: str
    # access key -> (secret key, app type used when the path carries no /testapp/ or /serviceapp/)
    access_keys: Mapping[str, tuple[str, AppType]] = field(default_factory=dict)
    # Bearer API key -> app type of the key
    api_keys: Mapping[str, AppType] = field(default_factory=dict)
    # (X-NCP-CLOVASTUDIO-API-KEY, X-NCP-APIGW-API-KEY) -> app type of the app that issued them
    legacy_keys: Mapping[tuple[str, str], AppType] = field(default_factory=dict)


@dataclass(frozen=True)
class Timings:
    """Emulated durations in seconds at ``--time-scale 1.0`` (each is multiplied by the scale).

    The real service may queue a task for hours and train for much longer; these keep the
    shape of that (a queue, then steps) at a pace a person can watch.
    """

    wait_seconds: float = 30.0  # WAIT (queued for a GPU) before RUNNING
    step_seconds: float = 2.0  # one training step
    batch_size: int = 8  # rows per training step: steps per epoch = ceil(rows / batch_size)
    chat_base_seconds: float = 0.3  # latency of a chat answer ...
    chat_token_seconds: float = 0.01  # ... plus this per generated token


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything one emulator instance needs; see ``docs/readme-emulator.md`` for the flags."""

    accounts: tuple[Account, ...] = ()
    limits: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    rate_window_seconds: float = 60.0
    time_scale: float = 1.0
    object_storage_endpoint: str | None = None
    object_storage_region: str = "kr-standard"
    max_dataset_bytes: int | None = None  # None: the core's datasets.DEFAULT_MAX_BYTES
    faults: Mapping[str, Any] | None = None
    seed: int = 0
    timings: Timings = field(default_factory=Timings)
    tunable_models: tuple[str, ...] = DOCUMENTED_TUNABLE_MODELS

    def __post_init__(self) -> None:
        if self.rate_window_seconds <= 0:
            raise EmulatorConfigError("--rate-window-seconds must be greater than 0")
        if self.time_scale <= 0:
            raise EmulatorConfigError("--time-scale must be greater than 0")
        if self.max_dataset_bytes is not None and self.max_dataset_bytes <= 0:
            raise EmulatorConfigError("--max-dataset-bytes must be greater than 0")
        _check_unique_credentials(self.accounts)
        _check_tunable(self.tunable_models)
        validate_limits(self.limits)

    def scaled(self, seconds: float) -> float:
        """An emulated duration in wall-clock seconds."""
        return seconds * self.time_scale


def default_account(
    access_key: str = "AK",
    secret_key: str = "SK",
    api_key: str = "KEY",
    api_key_app_type: AppType = "test",
) -> Account:
    """The account built from ``--access-key/--secret-key/--api-key``."""
    return Account(
        name=DEFAULT_ACCOUNT,
        access_keys={access_key: (secret_key, "test")} if access_key else {},
        api_keys={api_key: api_key_app_type} if api_key else {},
    )


def _app_type(value: object, where: str) -> AppType:
    if value not in APP_TYPES:
        raise EmulatorConfigError(f"{where}: app_type must be 'test' or 'service', got {value!r}")
    return cast(AppType, value)


def _str(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise EmulatorConfigError(f"{where}: {key!r} must be a non-empty string")
    return value


def parse_accounts(raw: object) -> tuple[Account, ...]:
    """Accounts from the ``--accounts`` JSON document (shape in docs/readme-emulator.md)."""
    if isinstance(raw, Mapping):
        raw = raw.get("accounts")
    if not isinstance(raw, list):
        raise EmulatorConfigError("accounts file: expected {'accounts': [...]} or a list of accounts")
    accounts = []
    for index, entry in enumerate(raw):
        where = f"accounts[{index}]"
        if not isinstance(entry, Mapping):
            raise EmulatorConfigError(f"{where}: expected an object")
        name = _str(entry, "name", where)
        access: dict[str, tuple[str, AppType]] = {}
        for j, pair in enumerate(entry.get("access_keys", [])):
            w = f"{where}.access_keys[{j}]"
            access[_str(pair, "access_key", w)] = (
                _str(pair, "secret_key", w),
                _app_type(pair.get("app_type", "test"), w),
            )
        bearer: dict[str, AppType] = {}
        for j, key in enumerate(entry.get("api_keys", [])):
            w = f"{where}.api_keys[{j}]"
            bearer[_str(key, "key", w)] = _app_type(key.get("app_type", "test"), w)
        legacy: dict[tuple[str, str], AppType] = {}
        for j, pair in enumerate(entry.get("legacy_keys", [])):
            w = f"{where}.legacy_keys[{j}]"
            legacy[(_str(pair, "clovastudio_api_key", w), _str(pair, "apigw_api_key", w))] = _app_type(
                pair.get("app_type", "test"), w
            )
        accounts.append(Account(name=name, access_keys=access, api_keys=bearer, legacy_keys=legacy))
    return tuple(accounts)


def _check_unique_credentials(accounts: tuple[Account, ...]) -> None:
    names: set[str] = set()
    seen: dict[object, str] = {}
    for account in accounts:
        if account.name in names:
            raise EmulatorConfigError(f"account name {account.name!r} is defined twice")
        names.add(account.name)
        keys: list[object] = [
            *(("ak", k) for k in account.access_keys),
            *(("bearer", k) for k in account.api_keys),
            *(("legacy", k) for k in account.legacy_keys),
        ]
        for key in keys:
            if key in seen and seen[key] != account.name:
                # Name the kind of key, never the key itself.
                raise EmulatorConfigError(
                    f"a {key[0]} credential of account {account.name!r} "  # type: ignore[index]
                    f"also belongs to account {seen[key]!r}"
                )
            seen[key] = account.name


def _check_tunable(models: tuple[str, ...]) -> None:
    chat_models = known_models()
    unknown = [m for m in models if m not in chat_models]
    if unknown:
        raise EmulatorConfigError(
            f"--tunable-models: unknown model(s) {', '.join(unknown)}; known models: {', '.join(chat_models)}"
        )


def validate_limits(limits: Mapping[str, Mapping[str, int]]) -> None:
    """``--limits`` has the shape of the connection's ``extra.limits``: ``{model: {qpm, tpm}}``."""
    if not isinstance(limits, Mapping):
        raise EmulatorConfigError("limits: expected an object like {'HCX-005': {'qpm': 120, 'tpm': 90000}}")
    for model, entry in limits.items():
        if not isinstance(entry, Mapping):
            raise EmulatorConfigError(f"limits[{model!r}]: expected an object with 'qpm' and/or 'tpm'")
        for key, value in entry.items():
            if key not in ("qpm", "tpm"):
                raise EmulatorConfigError(f"limits[{model!r}]: unknown field {key!r} (use 'qpm', 'tpm')")
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise EmulatorConfigError(f"limits[{model!r}].{key} must be a positive integer")


def load_json_file(path: str | Path, what: str) -> Any:
    """Read a JSON configuration file, naming the flag in the error."""
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise EmulatorConfigError(f"{what}: cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise EmulatorConfigError(f"{what}: {path} is not valid JSON: {exc}") from None
