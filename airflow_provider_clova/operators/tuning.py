"""``ClovaStudioTuningOperator``: submit a CLOVA Studio training and wait for it.

Submit in the worker, wait in the triggerer (``deferrable=True``) or in the worker. The
operator is safe to retry: every submission carries a name derived from the DAG, task, run
and map index, and a new try first lists the account's tasks by that name and reattaches to
the job an earlier try created instead of billing a second one. A create whose outcome is
unknown (timeout, 5xx, 429, dropped connection) is reconciled the same way.

Two tries of one task instance may run at once (a zombie try, a task scheduled twice). Each
lists by name after its create and keeps the task created first, deleting any later
duplicate: both tries compute the same survivor from the same listing, and a task created
after a try's listing is newer than the one that try kept, so no try deletes the task the
other waits on.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_clova._compat import default_deferrable
from airflow_provider_clova.client.calls import TuningDataset
from airflow_provider_clova.client.catalog import tunable_model_info
from airflow_provider_clova.client.errors import (
    ClovaStudioDatasetError,
    ClovaStudioTuningFailedError,
    ClovaStudioUnknownOutcomeError,
)
from airflow_provider_clova.client.models import TuningStatus
from airflow_provider_clova.client.polling import PollEvent, PollPolicy, TuningPoller, failure_of, tuning_result
from airflow_provider_clova.datasets import validate_stream
from airflow_provider_clova.hooks.clova_studio import ClovaStudioHook
from airflow_provider_clova.links.console import ClovaStudioTuningConsoleLink, console_url
from airflow_provider_clova.operators import _object_storage as object_storage
from airflow_provider_clova.operators._lineage import record, tuning_facts, tuning_lineage
from airflow_provider_clova.triggers.tuning import ClovaStudioTuningTrigger

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_clova.client.models import TuningTask

ResubmitPolicy = Literal["never", "transient", "resource_timeout", "always"]
RESUBMIT_POLICIES: tuple[str, ...] = ("never", "transient", "resource_timeout", "always")
#: failureReasons whose fix is "create the task again", and how many resubmissions each is worth
#: under ``resubmit_failed="transient"`` (None: up to ``max_resubmits``). The service's own
#: hints: no GPU in time -> retry later; train.unknown -> "create it again once"; a CLOps
#: platform error -> create again, then contact support if it repeats.
TRANSIENT_FAILURES: dict[str, int | None] = {"resource.timeout": None, "train.unknown": 1, "clops.error": 1}
TUNING_TASK_ID_XCOM_KEY = "tuning_task_id"
MAX_NAME_LENGTH = 100
#: Creates per try: the first, and two more after a reconcile found nothing (5xx, 429, timeout).
CREATE_ATTEMPTS = 3


def tuning_task_name(dag_id: str, task_id: str, run_id: str, map_index: int = -1, inputs: str = "") -> str:
    """A name unique to one task instance and its inputs, and the same for all of its tries.

    ``inputs`` identifies what would be trained (model, fields, dataset object and version):
    a retry with the same inputs reattaches to the job an earlier try made, while clearing the
    task after fixing the dataset or a parameter trains again instead of re-raising the old
    failure.
    """
    key = f"{dag_id}\0{task_id}\0{run_id}\0{map_index}\0{inputs}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    head = f"{dag_id}.{task_id}"
    return f"{head[: MAX_NAME_LENGTH - len(digest) - 1]}.{digest}"


def first_created(tasks: Sequence[TuningTask]) -> TuningTask | None:
    """The task every try of one task instance keeps: the first created of those not FAILED.

    ``tasks`` are as ``find_tuning_tasks`` returns them, newest first; a tie of ``createdDate``
    (whole seconds) keeps the service's own listing order, so every try picks the same one.
    """
    live = [task for task in tasks if task.status is not TuningStatus.FAILED]
    return live[-1] if live else None


def _map_index(ti: Any) -> int:
    index = getattr(ti, "map_index", None)
    return -1 if index is None else int(index)


class ClovaStudioTuningOperator(BaseOperator):
    """Tune a CLOVA Studio model (LoRA) on a dataset in Object Storage.

    :param model: base model to tune: a tunable model of the catalog (``HCX-003`` today; a connection's
        ``extra.models`` can open another). Any other model fails at the start of ``execute``, before
        the dataset is read or anything is sent.
    :param dataset_bucket: Object Storage bucket holding the dataset.
    :param dataset_key: object key of the ``.jsonl``/``.csv`` dataset in that bucket.
    :param object_storage_conn_id: ``aws`` connection for Object Storage (extra ``endpoint_url``);
        its keys are sent to CLOVA Studio at execute time only, never templated, logged or pushed.
    :param name: task name; default derived from dag/task/run/map index (how retries reattach).
    :param train_epochs, learning_rate, tuning_type, tuning_task_type (taskType), validation_split_ratio, lora_r,
        lora_alpha: the documented create fields, sent only when given (checked against their documented
        ranges before submit; ``lora_r`` and ``lora_alpha`` only for being whole numbers).
    :param validate_dataset: stream the dataset through the provider's validator before submitting.
    :param wait_for_completion: wait for SUCCEEDED/FAILED; otherwise return right after submit.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param poll_interval: completion is seen at most this late; long runs are polled less (adaptive).
    :param max_poll_interval: the longest pause between two polls.
    :param timeout: give up waiting after this long (seconds or timedelta); None waits for ever.
    :param cancel_on_kill: delete the remote task when the Airflow task is killed or times out.
    :param resubmit_failed: when the job found for this task instance FAILED, or a wait ends FAILED:
        ``transient`` (default) resubmits what the service says to create again (no GPU in time,
        up to ``max_resubmits``; ``train.unknown`` and ``clops.error`` once); ``resource_timeout``
        only when no GPU could be had; ``always``; ``never``.
    :param max_resubmits: how many resubmissions one task instance may make.
    """

    template_fields: Sequence[str] = (
        "model",
        "dataset_bucket",
        "dataset_key",
        "name",
        "train_epochs",
        "learning_rate",
        "tuning_type",
        "tuning_task_type",
        "validation_split_ratio",
        "lora_r",
        "lora_alpha",
        "clova_conn_id",
        "object_storage_conn_id",
    )
    operator_extra_links = (ClovaStudioTuningConsoleLink(),)
    ui_color = "#03c75a"

    def __init__(
        self,
        *,
        model: str,
        dataset_bucket: str,
        dataset_key: str,
        object_storage_conn_id: str = "aws_default",
        name: str | None = None,
        train_epochs: int | str | None = None,
        learning_rate: float | str | None = None,
        tuning_type: str | None = None,
        tuning_task_type: str | None = None,
        validation_split_ratio: float | str | None = None,
        lora_r: int | str | None = None,
        lora_alpha: int | str | None = None,
        clova_conn_id: str = "clova_studio_default",
        validate_dataset: bool = True,
        max_dataset_errors: int = 20,
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        poll_interval: float = 30.0,
        max_poll_interval: float = 900.0,
        timeout: float | timedelta | None = None,
        cancel_on_kill: bool = True,
        resubmit_failed: ResubmitPolicy = "transient",
        max_resubmits: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if resubmit_failed not in RESUBMIT_POLICIES:
            raise ValueError(f"resubmit_failed={resubmit_failed!r}; use one of {', '.join(RESUBMIT_POLICIES)}")
        # Checked here, not when the wait starts: by then a training would already be billed.
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be greater than 0, got {poll_interval!r}")
        if max_resubmits < 0:
            raise ValueError(f"max_resubmits must be 0 or more, got {max_resubmits!r}")
        if dataset_bucket == "" or dataset_key == "":
            object_storage.require_location(
                f"task {self.task_id!r}", dataset_bucket=dataset_bucket, dataset_key=dataset_key
            )
        self.model = model
        self.dataset_bucket = dataset_bucket
        self.dataset_key = dataset_key
        self.object_storage_conn_id = object_storage_conn_id
        self.name = name
        self.train_epochs = train_epochs
        self.learning_rate = learning_rate
        self.tuning_type = tuning_type
        self.tuning_task_type = tuning_task_type
        self.validation_split_ratio = validation_split_ratio
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.clova_conn_id = clova_conn_id
        self.validate_dataset = validate_dataset
        self.max_dataset_errors = max_dataset_errors
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        if self.timeout is not None and not self.timeout > 0:
            # 0 would time out at the first look and delete the training just submitted.
            raise ValueError(f"timeout must be greater than 0 seconds (or None to wait for ever), got {timeout!r}")
        self.cancel_on_kill = cancel_on_kill
        self.resubmit_failed: ResubmitPolicy = resubmit_failed
        self.max_resubmits = max_resubmits
        self.tuning_task_id: str | None = None
        #: The console URL once a job is known in this process ("" before; see links.console).
        self.tuning_console_url: str | None = None

    # -- hooks -------------------------------------------------------------------------
    @property
    def hook(self) -> ClovaStudioHook:
        if getattr(self, "_hook", None) is None:
            self._hook = ClovaStudioHook(self.clova_conn_id)
        return self._hook

    def _fields(self) -> dict[str, Any]:
        fields = {
            "trainEpochs": self.train_epochs,
            "learningRate": self.learning_rate,
            "tuningType": self.tuning_type,
            "taskType": self.tuning_task_type,
            "validationSplitRatio": self.validation_split_ratio,
            "loraR": self.lora_r,
            "loraAlpha": self.lora_alpha,
        }
        return {key: value for key, value in fields.items() if value not in (None, "")}

    def _name(self, context: Context) -> str:
        if self.name:
            return str(self.name)

        ti = context["ti"]
        version = object_storage.object_version(self.object_storage_conn_id, self.dataset_bucket, self.dataset_key)
        inputs = json.dumps(
            [self.model, self._fields(), self.dataset_bucket, self.dataset_key, version], sort_keys=True, default=str
        )
        return tuning_task_name(ti.dag_id, ti.task_id, ti.run_id, _map_index(ti), inputs)

    # -- execute -----------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        self.tuning_console_url = ""
        # after templating: a variable or template may have rendered to ''
        object_storage.require_location(
            f"task {self.task_id!r}", dataset_bucket=self.dataset_bucket, dataset_key=self.dataset_key
        )
        # An untunable model fails before the dataset is streamed or tasks are listed.
        tunable_model_info(str(self.model), self.hook.config.models, where=f"{type(self).__name__}({self.task_id})")
        task = self._submit_or_reattach(context)
        if task.is_terminal:
            return self._finish(context, task)
        if not self.wait_for_completion:
            return tuning_result(task)
        return self._wait(context, task.id)

    def _wait(self, context: Context, tuning_task_id: str) -> dict[str, Any]:
        if self.deferrable:
            end_time = None if self.timeout is None else time.time() + self.timeout
            self.defer(
                trigger=ClovaStudioTuningTrigger(
                    tuning_task_id=tuning_task_id,
                    clova_conn_id=self.clova_conn_id,
                    poll_interval=self.poll_interval,
                    max_poll_interval=self.max_poll_interval,
                    end_time=end_time,
                    cancel_on_kill=self.cancel_on_kill,
                ),
                method_name="execute_complete",
            )

        policy = PollPolicy.clamped(self.poll_interval, self.max_poll_interval)
        poller = TuningPoller.with_timeout(tuning_task_id, policy, self.timeout, log=self.log.info)
        event = poller.wait_sync(lambda: self.hook.get_tuning_task(tuning_task_id, deadline=poller.client_deadline()))
        return self._resume(context, event)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger: succeed, resubmit by policy, or fail clearly."""
        return self._resume(context, PollEvent.from_payload(event))

    def _resume(self, context: Context, event: PollEvent) -> dict[str, Any]:
        """The end of a wait (in the triggerer or the worker): succeed, resubmit by policy, or fail clearly."""
        self.tuning_task_id = event.task_id
        cancel = self.hook.delete_tuning_task if self.cancel_on_kill else None
        try:
            task = event.finished_task(cancel=cancel)
        except ClovaStudioTuningFailedError as failure:
            if not self._may_resubmit(failure.failure_reason, context):
                raise
            self.log.warning("%s; resubmitting (resubmit_failed=%s)", failure, self.resubmit_failed)
            task = self._submit_or_reattach(context)
            return self._wait(context, task.id)
        return self._finish(context, task)

    def _finish(self, context: Context, task: TuningTask) -> dict[str, Any]:
        if task.status is TuningStatus.FAILED:
            raise failure_of(task)
        result = tuning_result(task)
        self.log.info("tuning task %s SUCCEEDED: %s", task.id, task.summary())
        self._emit_asset_events(context, result)
        return result

    def _emit_asset_events(self, context: Context, result: dict[str, Any]) -> None:
        """Attach the tuned model's ids and lineage to every outlet's asset event (and OpenLineage)."""
        record(self, context, tuning_facts(self, result))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: dataset object -> tuned model, with the training's figures."""
        return tuning_lineage(self)

    # -- submit / reattach -------------------------------------------------------------
    def _submit_or_reattach(self, context: Context) -> TuningTask:
        name = self._name(context)
        earlier = self.hook.find_tuning_tasks(name)
        live = first_created(earlier)
        if live is not None:
            self.log.info(
                "reattaching to tuning task %s (%s) submitted earlier as %r", live.id, live.status.value, name
            )
            self._delete_duplicates(earlier, live)
            self._record(context, live)
            return live
        if earlier and not self._may_resubmit(earlier[0].status_info.failure_reason, context, failed=len(earlier)):
            self._record(context, earlier[0])
            return earlier[0]  # _finish raises the failure with its hint
        if self.validate_dataset:
            self._validate_dataset()
        task = self._converge(name, self._create(name, known_ids={task.id for task in earlier}))
        self._record(context, task)
        return task

    def _create(self, name: str, known_ids: set[str]) -> TuningTask:
        access_key, secret_key = object_storage.credentials(self.object_storage_conn_id)
        dataset = TuningDataset(self.dataset_bucket, self.dataset_key, access_key, secret_key)
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                task = self.hook.create_tuning_task(self.model, dataset, name=name, **self._fields())
            except ClovaStudioUnknownOutcomeError as exc:
                self.log.warning("create tuning task: outcome unknown (%s); reconciling by listing", exc)
                made = [task for task in self.hook.find_tuning_tasks(name) if task.id not in known_ids]
                if made:
                    self.log.info("found tuning task %s created by the uncertain request", made[-1].id)
                    return made[-1]
                if attempt == CREATE_ATTEMPTS:
                    raise
                # A 429 asks for a pause (its Retry-After, capped at one budget window by the
                # client); after a 5xx or a lost reply the listing itself was the pause.
                pause = (exc.retry_after or 1.0) if exc.http_status == 429 else 0.0
                self.log.info(
                    "no task named %r exists; submitting again in %.1f s (attempt %d)", name, pause, attempt + 1
                )
                time.sleep(pause)
                continue
            self.log.info("submitted tuning task %s (%r, model %s)", task.id, name, self.model)
            return task
        raise AssertionError("unreachable")

    def _converge(self, name: str, mine: TuningTask) -> TuningTask:
        """After a create: keep the first-created live task of this name, delete later duplicates.

        Another try of this task instance may have created one too (see the module docstring).
        """
        tasks = self.hook.find_tuning_tasks(name)
        if all(task.id != mine.id for task in tasks):
            tasks = [mine, *tasks]  # not listed yet: the newest
        keep = first_created(tasks) or mine
        self._delete_duplicates(tasks, keep)
        if keep.id != mine.id:
            self.log.warning("another try of this task instance created tuning task %s first; attaching to it", keep.id)
        return keep

    def _delete_duplicates(self, tasks: Sequence[TuningTask], keep: TuningTask) -> None:
        for task in tasks:
            if task.id != keep.id and task.status is not TuningStatus.FAILED:
                self.log.warning("deleting duplicate tuning task %s (keeping %s, created first)", task.id, keep.id)
                self.hook.delete_tuning_task(task.id)

    def _may_resubmit(self, failure_reason: str | None, context: Context, *, failed: int | None = None) -> bool:
        policy = self.resubmit_failed
        if policy == "never":
            return False
        limit = self.max_resubmits
        if policy == "resource_timeout" and failure_reason != "resource.timeout":
            return False
        if policy == "transient":
            if failure_reason not in TRANSIENT_FAILURES:
                return False
            cap = TRANSIENT_FAILURES[failure_reason]
            limit = self.max_resubmits if cap is None else min(cap, self.max_resubmits)
        if failed is None:
            failed = len(self.hook.find_tuning_tasks(self._name(context)))
        return failed <= limit

    def _validate_dataset(self) -> None:
        # lazy: boto3 loads when a task touches Object Storage, not when a DAG file is parsed
        from botocore.exceptions import BotoCoreError

        body, size = object_storage.open_object(self.object_storage_conn_id, self.dataset_bucket, self.dataset_key)
        try:
            report = validate_stream(body, filename=self.dataset_key, size=size, max_errors=self.max_dataset_errors)
        except BotoCoreError as exc:  # the stream broke off mid-read
            raise object_storage.read_failed(self.dataset_bucket, self.dataset_key, exc) from None
        finally:
            body.close()
        if not report.ok:
            raise ClovaStudioDatasetError(
                f"dataset s3://{self.dataset_bucket}/{self.dataset_key} breaks CLOVA Studio's rules; "
                f"nothing was submitted:\n{report.format()}"
            )
        self.log.info("dataset s3://%s/%s is valid: %s", self.dataset_bucket, self.dataset_key, report.format())

    def _record(self, context: Context, task: TuningTask) -> None:
        """Store the id and console link before waiting, so retries and the UI can find the job."""
        self.tuning_task_id = task.id
        template = self.hook.config.console_url
        context["ti"].xcom_push(key=TUNING_TASK_ID_XCOM_KEY, value=task.id)
        ClovaStudioTuningConsoleLink.persist(context, console_url(task.id, template), self)

    def on_kill(self) -> None:
        if self.cancel_on_kill and self.tuning_task_id:
            self.hook.delete_tuning_task(self.tuning_task_id)
            self.log.info("deleted tuning task %s because the Airflow task was killed", self.tuning_task_id)
