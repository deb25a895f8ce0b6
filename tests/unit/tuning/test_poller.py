"""TuningPoller: the one tuning wait, driven on a virtual clock against jobs on a timeline.

The decisions (``step``), the loop's blocking and async drivers, and what a finished wait
turns into (``PollEvent.finished_task``, ``tuning_result``)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_clova.client.drivers import run_blocking
from airflow_provider_clova.client.errors import (
    ClovaStudioAuthError,
    ClovaStudioError,
    ClovaStudioNotFoundError,
    ClovaStudioRateLimitError,
    ClovaStudioServerError,
    ClovaStudioTransportError,
    ClovaStudioTuningFailedError,
    ClovaStudioWaitTimeoutError,
)
from airflow_provider_clova.client.models import TuningStatus, TuningTask
from airflow_provider_clova.client.polling import (
    PollEvent,
    PollPolicy,
    Sleep,
    TuningPoller,
    failure_of,
    tuning_result,
)
from airflow_provider_clova.testing.samples import failed_json, succeeded_json, task_json
from tests.unit.tuning.conftest import Clock, SimJob, drive

P = 30.0
MAX = 900.0


def poller(clock: Clock, *, p: float = P, mx: float = MAX, deadline: float | None = None, **kw: object) -> TuningPoller:
    return TuningPoller("simjob01", PollPolicy(p, mx), deadline=deadline, clock=clock, **kw)  # type: ignore[arg-type]


def lateness(job: SimJob, trace_end: float) -> float:
    return trace_end - job.end


# -- adaptive delays --------------------------------------------------------------------


def test_wait_is_polled_every_poll_interval() -> None:
    clock = Clock()
    job = SimJob(wait=7200, run=600)
    trace = drive(poller(clock), job.at, clock)
    waiting = trace.sleeps_while(TuningStatus.WAIT)
    assert len(waiting) == 7200 / P
    assert set(waiting) == {P}


def test_running_without_progress_is_polled_every_poll_interval() -> None:
    """No estimatedTime and no steps: nothing to predict from, so poll_interval."""
    clock = Clock()

    def fetch(t: float) -> TuningTask:
        status = "RUNNING" if t < 1000 else "SUCCEEDED"
        return TuningTask.from_api(task_json("simjob01", status))

    trace = drive(poller(clock), fetch, clock)
    assert set(trace.sleeps) == {P}
    assert trace.event.status == "success"


def test_delays_shrink_as_completion_nears_within_bounds() -> None:
    clock = Clock()
    job = SimJob(wait=0, run=4 * 3600, total_steps=7200)
    trace = drive(poller(clock), job.at, clock)
    running = trace.sleeps_while(TuningStatus.RUNNING)
    assert running[0] == MAX  # half of 4 h is far above the cap
    assert running == sorted(running, reverse=True), running  # never grows while the end nears
    assert running[-1] == P
    assert all(P <= d <= MAX for d in running)
    # between the cap and the floor every pause is about half the time left
    middle = [d for d in running if P < d < MAX]
    assert len(middle) >= 4
    for t, seen, delay in trace.polls:
        if seen is TuningStatus.RUNNING and delay is not None and P < delay < MAX:
            assert delay == pytest.approx((job.end - t) / 2, abs=1.0)
    assert trace.event.status == "success"


def test_long_job_is_polled_a_logarithmic_number_of_times() -> None:
    clock = Clock()
    job = SimJob(wait=60, run=3600, total_steps=1800)
    trace = drive(poller(clock), job.at, clock)
    fixed_polls = job.end / P
    assert len(trace.polls) <= 0.2 * fixed_polls, len(trace.polls)
    assert 0 <= lateness(job, trace.end_time) <= P


@settings(max_examples=150, deadline=None)
@given(
    wait=st.floats(0, 20),
    run=st.floats(0.05, 3000),
    p=st.floats(1, 120),
    cap_factor=st.floats(1, 60),
    steps=st.integers(10, 20_000),
)
def test_completion_seen_within_poll_interval_when_the_job_follows_its_eta(
    wait: float, run: float, p: float, cap_factor: float, steps: int
) -> None:
    """``wait`` and ``run`` in poll intervals: from a job shorter than one poll to 3000 of them."""
    clock = Clock()
    job = SimJob(wait=wait * p, run=run * p, total_steps=steps)
    trace = drive(poller(clock, p=p, mx=p * cap_factor), job.at, clock)
    assert trace.event.status == "success"
    assert 0 <= lateness(job, trace.end_time) <= p + 1e-6


@settings(max_examples=150, deadline=None)
@given(
    wait=st.floats(0, 20),
    run=st.floats(0.05, 3000),
    p=st.floats(0.5, 120),
    cap_factor=st.floats(1, 60),
    eta_factor=st.floats(0.2, 5),
    report_steps=st.booleans(),
)
def test_delay_is_never_below_poll_interval_nor_above_max(
    wait: float, run: float, p: float, cap_factor: float, eta_factor: float, report_steps: bool
) -> None:
    clock = Clock()
    job = SimJob(wait=wait * p, run=run * p, eta_factor=eta_factor, report_steps=report_steps)
    trace = drive(poller(clock, p=p, mx=p * cap_factor), job.at, clock)
    assert all(p <= d <= p * cap_factor for d in trace.sleeps), trace.sleeps


def test_step_rate_corrects_an_eta_that_is_too_long() -> None:
    """The service overestimates 3x; the observed step rate still gets the end seen in time."""
    clock = Clock()
    job = SimJob(wait=0, run=3600, total_steps=1800, eta_factor=3.0)
    trace = drive(poller(clock), job.at, clock)
    assert 0 <= lateness(job, trace.end_time) <= P


def test_eta_alone_is_enough_without_steps() -> None:
    clock = Clock()
    job = SimJob(wait=0, run=3600, report_steps=False)
    trace = drive(poller(clock), job.at, clock)
    assert 0 <= lateness(job, trace.end_time) <= P
    assert len(trace.polls) < 20


def test_failed_job_ends_with_a_failed_event_naming_the_reason() -> None:
    clock = Clock()
    job = SimJob(wait=30, run=300, fail_reason="train.unknown")
    trace = drive(poller(clock), job.at, clock)
    event = trace.event
    assert event.status == "failed"
    assert "train.unknown" in event.message
    assert event.task["statusInfo"]["failureReason"] == "train.unknown"


# -- errors -------------------------------------------------------------------------------


def _retryable() -> list[BaseException]:
    return [
        ClovaStudioRateLimitError("Too many requests", http_status=429, code="42901"),
        ClovaStudioServerError("Internal", http_status=500, code="50000"),
        ClovaStudioTransportError("connection failed", request_sent=True),
        ClovaStudioServerError("Gateway timeout", http_status=504, code="50400"),
    ]


def test_retryable_errors_back_off_and_polling_continues() -> None:
    clock = Clock()
    job = SimJob(wait=0, run=3600)
    errors = _retryable()
    error_times: list[float] = []

    def fetch(t: float) -> TuningTask | BaseException:
        if t >= 100 and errors:
            error_times.append(t)
            return errors.pop(0)
        return job.at(t)

    lines: list[str] = []
    trace = drive(poller(clock, log=lines.append), fetch, clock)
    error_sleeps = [d for _, seen, d in trace.polls if seen is None]
    assert error_sleeps == [P, 2 * P, 4 * P, 8 * P]
    assert trace.event.status == "success"
    assert 0 <= lateness(job, trace.end_time) <= P
    assert sum("poll failed" in line for line in lines) == 4


def test_backoff_is_capped_and_a_success_resets_it() -> None:
    clock = Clock()
    p = TuningPoller("t1", PollPolicy(10, 60), clock=clock)
    err = ClovaStudioServerError("boom", http_status=500, code="50000")
    delays = [p.step(err) for _ in range(6)]
    assert [d.seconds for d in delays if isinstance(d, Sleep)] == [10, 20, 40, 60, 60, 60]
    p.step(TuningTask.from_api(task_json("t1", "WAIT")))
    again = p.step(err)
    assert isinstance(again, Sleep) and again.seconds == 10


def test_too_many_consecutive_errors_end_with_an_error_event_and_the_last_snapshot() -> None:
    clock = Clock()
    p = TuningPoller("t1", PollPolicy(1, 2, max_consecutive_errors=3), clock=clock)
    p.step(TuningTask.from_api(task_json("t1", "RUNNING", currStep=5, totalTrainSteps=10)))
    err = ClovaStudioRateLimitError("Too many requests", http_status=429, code="42901")
    actions = [p.step(err) for _ in range(4)]
    assert all(isinstance(a, Sleep) for a in actions[:3])
    event = actions[3]
    assert isinstance(event, PollEvent) and event.status == "error"
    assert "4 times in a row" in event.message and "42901" in event.message
    assert event.task is not None and event.task["statusInfo"]["currStep"] == 5


@pytest.mark.parametrize(
    "error",
    [
        ClovaStudioNotFoundError("Not found: no tuning task", http_status=404, code="40400"),
        ClovaStudioAuthError("Unauthorized", http_status=401, code="40101"),
        ValueError("something unexpected"),
    ],
)
def test_a_non_retryable_error_ends_at_once_with_an_error_event(error: BaseException) -> None:
    clock = Clock()
    p = poller(clock)
    first = p.step(TuningTask.from_api(task_json("simjob01", "WAIT")))
    assert isinstance(first, Sleep)
    event = p.step(error)
    assert isinstance(event, PollEvent)
    assert event.status == "error"
    assert event.task_id == "simjob01"
    assert str(error).split(" (")[0][:20] in event.message
    assert event.task is not None and event.task["status"] == "WAIT"
    if isinstance(error, ValueError):
        assert "ValueError" in event.message


def test_error_before_any_snapshot_has_no_task() -> None:
    event = poller(Clock()).step(ClovaStudioAuthError("Unauthorized", http_status=401, code="40100"))
    assert isinstance(event, PollEvent) and event.status == "error" and event.task is None


# -- deadline -----------------------------------------------------------------------------


def test_deadline_gives_a_timeout_event_with_the_last_snapshot() -> None:
    clock = Clock(1000.0)
    job = SimJob(wait=0, run=10_000)
    trace = drive(poller(clock, deadline=1000.0 + 500), lambda t: job.at(t - 1000.0), clock)
    event = trace.event
    assert event.status == "timeout"
    assert "timeout" in event.message and "RUNNING" in event.message
    assert event.task is not None and event.task["status"] == "RUNNING"
    # it gives up exactly at the deadline, not a poll_interval (or an adaptive pause) later, and
    # starts no fetch there: one that would only answer after the deadline
    assert clock.now == pytest.approx(1500.0)
    assert all(t < 1500.0 for t, _, _ in trace.polls)


def test_deadline_never_fetched_still_times_out_cleanly() -> None:
    clock = Clock(50.0)
    p = poller(clock, deadline=10.0)
    action = p.step(TuningTask.from_api(task_json("simjob01", "WAIT")))
    assert isinstance(action, PollEvent) and action.status == "timeout"


def test_success_seen_at_the_deadline_wins_over_timeout() -> None:
    clock = Clock(100.0)
    p = poller(clock, deadline=100.0)
    event = p.step(TuningTask.from_api(task_json("simjob01", "SUCCEEDED")))
    assert isinstance(event, PollEvent) and event.status == "success"


def test_the_default_clock_is_monotonic() -> None:
    assert TuningPoller("x").clock is time.monotonic


def test_wall_clock_jumps_do_not_move_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadline is on the poller's (monotonic) clock; time.time() may jump."""
    clock = Clock(0.0)
    p = poller(clock, deadline=100.0)
    monkeypatch.setattr(time, "time", lambda: 10**12)
    action = p.step(TuningTask.from_api(task_json("simjob01", "WAIT")))
    assert isinstance(action, Sleep) and action.seconds == P


# -- progress log -------------------------------------------------------------------------


def test_progress_line_is_logged_only_when_it_changes() -> None:
    lines: list[str] = []
    clock = Clock()
    p = poller(clock, log=lines.append)
    wait = TuningTask.from_api(task_json("simjob01", "WAIT"))
    running = TuningTask.from_api(
        task_json(
            "simjob01",
            "RUNNING",
            currStep=15,
            totalTrainSteps=60,
            currEpoch=1,
            totalTrainEpochs=4,
            trainLoss=1.23456,
            estimatedTime=5400,
        )
    )
    later = TuningTask.from_api(
        task_json(
            "simjob01",
            "RUNNING",
            currStep=30,
            totalTrainSteps=60,
            currEpoch=2,
            totalTrainEpochs=4,
            trainLoss=0.9,
            estimatedTime=2700,
        )
    )
    for outcome in (wait, wait, wait, running, running, later, later):
        p.step(outcome)
    assert len(lines) == 3, lines
    assert "WAIT" in lines[0]
    line = lines[1]
    for part in ("simjob01", "RUNNING", "step 15/60 (25%)", "epoch 1/4", "loss 1.2346", "ETA 1h30m"):
        assert part in line, (part, line)
    assert "step 30/60 (50%)" in lines[2] and "epoch 2/4" in lines[2] and "ETA 45m00s" in lines[2]


def test_poll_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        PollPolicy(0)
    with pytest.raises(ValueError, match="max_poll_interval"):
        PollPolicy(60, 30)


def test_event_payload_is_json() -> None:
    clock = Clock()
    job = SimJob(wait=0, run=100)
    trace = drive(poller(clock), job.at, clock)
    payload = trace.event.to_payload()
    assert json.loads(json.dumps(payload)) == payload
    assert set(payload) == {"status", "task_id", "message", "task"}


def test_clamped_policy_raises_a_low_max_poll_interval_to_poll_interval() -> None:
    assert PollPolicy.clamped(60, 5) == PollPolicy(60, 60)
    assert PollPolicy.clamped(10, 600) == PollPolicy(10, 600)


def test_with_timeout_fixes_a_monotonic_deadline_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "monotonic", lambda: 50.0)
    p = TuningPoller.with_timeout("t1", PollPolicy(), 3600)
    assert p.deadline == 50.0 + 3600 and p.clock() == 50.0
    assert TuningPoller.with_timeout("t1", PollPolicy(), None).deadline is None


# -- the drivers: one loop, run blocking and on an event loop ---------------------------------


class VirtualTime:
    """A clock, and sleeps (blocking and async) that move it instead of waiting."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.sleeps: list[float] = []
        self.fetched_at: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)

    def fetch(self, job: SimJob) -> TuningTask:
        self.fetched_at.append(self.clock.now)
        return job.at(self.clock.now)

    async def afetch(self, job: SimJob) -> TuningTask:
        await asyncio.sleep(0)
        return self.fetch(job)


def test_the_blocking_and_async_drivers_take_the_same_path() -> None:
    job = SimJob(wait=600, run=5400, total_steps=900)
    blocking, looped = VirtualTime(), VirtualTime()
    event = TuningPoller("simjob01", clock=blocking.clock).wait_sync(lambda: blocking.fetch(job), blocking.sleep)
    other = asyncio.run(
        TuningPoller("simjob01", clock=looped.clock).wait_async(lambda: looped.afetch(job), looped.asleep)
    )
    assert event == other and event.status == "success"
    assert blocking.sleeps == looped.sleeps and blocking.fetched_at == looped.fetched_at
    assert blocking.fetched_at[0] == 0.0  # the first look is immediate: no pause before it
    assert len(blocking.sleeps) == len(blocking.fetched_at) - 1  # a pause between looks, none after the end


def test_the_blocking_driver_sleeps_through_retryable_errors_and_stops_on_a_fatal_one() -> None:
    vt = VirtualTime()
    outcomes: list[TuningTask | Exception] = [
        ClovaStudioServerError("boom", http_status=500, code="50000"),
        ClovaStudioTransportError("reset", request_sent=True),
        TuningTask.from_api(task_json("t1", "RUNNING")),
        ClovaStudioAuthError("Unauthorized", http_status=401, code="40100"),
        TuningTask.from_api(succeeded_json("t1")),  # never reached
    ]

    def fetch() -> TuningTask:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    event = TuningPoller("t1", PollPolicy(10, 600), clock=vt.clock).wait_sync(fetch, vt.sleep)
    assert event.status == "error" and "40100" in event.message
    assert event.task is not None and event.task["status"] == "RUNNING"
    assert vt.sleeps == [10, 20, 10]  # backoff, then back to poll_interval after a good look
    assert len(outcomes) == 1


def test_the_blocking_driver_sleeps_with_time_sleep_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    vt = VirtualTime()
    monkeypatch.setattr(time, "sleep", vt.sleep)
    job = SimJob(wait=60, run=0)
    event = TuningPoller("simjob01", PollPolicy(30, 60), clock=vt.clock).wait_sync(lambda: vt.fetch(job))
    assert event.status == "success" and vt.sleeps == [30, 30]


def test_a_base_exception_from_the_fetch_is_not_a_poll_error() -> None:
    """Airflow's task timeout and a user's Ctrl-C are BaseExceptions: they end the wait, not retry it."""

    def fetch() -> TuningTask:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        TuningPoller("t1").wait_sync(fetch, lambda seconds: None)


async def test_the_async_driver_lets_other_waits_run_while_it_sleeps() -> None:
    order: list[str] = []

    def waiter(name: str) -> Any:
        job = SimJob(wait=90, run=0, task_id=name)
        clock = Clock()

        async def fetch() -> TuningTask:
            order.append(name)
            return job.at(clock.now)

        async def sleep(seconds: float) -> None:
            clock.now += seconds
            await asyncio.sleep(0)

        return TuningPoller(name, PollPolicy(30, 60), clock=clock).wait_async(fetch, sleep)

    events = await asyncio.gather(waiter("a"), waiter("b"))
    assert [e.status for e in events] == ["success", "success"]
    assert order == ["a", "b"] * 4  # interleaved: neither wait blocks the loop


async def test_the_async_driver_sleeps_with_asyncio_sleep_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    vt = VirtualTime()
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        vt.sleep(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    job = SimJob(wait=60, run=0)

    async def fetch() -> TuningTask:
        return vt.fetch(job)

    event = await TuningPoller("simjob01", PollPolicy(30, 60), clock=vt.clock).wait_async(fetch)
    assert event.status == "success" and vt.sleeps == [30, 30]


async def test_cancelling_the_async_wait_cancels_it_instead_of_counting_a_poll_error() -> None:
    """The triggerer cancels a trigger it no longer runs: the wait must stop, not poll on."""
    fetched: list[float] = []
    sleeping = asyncio.Event()

    async def fetch() -> TuningTask:
        fetched.append(time.monotonic())
        if len(fetched) == 2:
            sleeping.set()
            await asyncio.Event().wait()  # a GET that hangs until cancelled
        return TuningTask.from_api(task_json("t1", "WAIT"))

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    wait = asyncio.ensure_future(TuningPoller("t1", PollPolicy(1, 2)).wait_async(fetch, sleep))
    await sleeping.wait()
    wait.cancel()
    with pytest.raises(asyncio.CancelledError):
        await wait
    assert len(fetched) == 2


def test_poll_sync_is_one_look_and_no_pause() -> None:
    clock = Clock()
    p = TuningPoller("t1", PollPolicy(10, 600), clock=clock)
    looks: list[str] = []

    def fetch() -> TuningTask:
        looks.append("get")
        return TuningTask.from_api(task_json("t1", "WAIT"))

    assert p.poll_sync(fetch) == Sleep(10)
    assert looks == ["get"] and p.polls == 1
    failing = p.poll_sync(lambda: (_ for _ in ()).throw(ClovaStudioServerError("x", http_status=500, code="50000")))
    assert failing == Sleep(10)  # the first retry of a 5xx backs off poll_interval


def test_the_blocking_runner_refuses_a_coroutine_that_really_awaits() -> None:
    with pytest.raises(RuntimeError, match="asynchronous"):
        run_blocking(asyncio.sleep(0))


# -- what a finished wait turns into ------------------------------------------------------------


def test_a_success_event_gives_the_finished_task() -> None:
    event = PollEvent("success", "t1", "tuning task t1 succeeded", succeeded_json("t1"))
    task = event.finished_task()
    assert task.id == "t1" and task.status is TuningStatus.SUCCEEDED


def test_a_failed_event_raises_the_failure_with_its_fix() -> None:
    event = PollEvent("failed", "t1", "", failed_json("t1", "file.encoding", "Unsupported charset"))
    with pytest.raises(ClovaStudioTuningFailedError) as info:
        event.finished_task()
    assert info.value.task_id == "t1" and info.value.failure_reason == "file.encoding"
    assert "Unsupported charset" in str(info.value) and "Fix: " in str(info.value) and "UTF-8" in str(info.value)


def test_failure_of_a_failed_task_is_the_same_error_as_a_failed_event() -> None:
    raw = failed_json("t1", "resource.timeout", None)
    with pytest.raises(ClovaStudioTuningFailedError) as info:
        PollEvent("failed", "t1", "", raw).finished_task()
    assert str(failure_of(TuningTask.from_api(raw))) == str(info.value)
    assert "GPU" in str(info.value)


@pytest.mark.parametrize(
    ("cancel", "note"),
    [
        (None, None),
        (lambda task_id: True, "was deleted"),
        (lambda task_id: False, "already gone"),
    ],
)
def test_a_timeout_event_raises_after_cancelling_when_asked(cancel: Any, note: str | None) -> None:
    event = PollEvent("timeout", "t1", "gave up waiting for tuning task t1 (timeout reached)")
    with pytest.raises(ClovaStudioWaitTimeoutError) as info:
        event.finished_task(cancel=cancel)
    text = str(info.value)
    assert text.startswith("gave up waiting for tuning task t1") and "Raise `timeout`" in text
    assert (note in text) if note else ("deleted" not in text and "gone" not in text)


def test_a_failed_cancel_does_not_hide_the_timeout() -> None:
    def cancel(task_id: str) -> bool:
        raise ClovaStudioServerError("boom", http_status=500, code="50000")

    with pytest.raises(ClovaStudioWaitTimeoutError, match="delete task t1 in the CLOVA Studio console"):
        PollEvent("timeout", "t1", "gave up").finished_task(cancel=cancel)


def test_an_error_event_raises_its_message() -> None:
    with pytest.raises(ClovaStudioError, match="40400") as info:
        PollEvent("error", "t1", "polling tuning task t1 failed: 40400").finished_task(cancel=lambda task_id: True)
    assert not isinstance(info.value, (ClovaStudioWaitTimeoutError, ClovaStudioTuningFailedError))


def test_payload_round_trip_and_unexpected_payloads() -> None:
    event = PollEvent("failed", "t1", "tuning task t1 failed", failed_json("t1", "file.format", None))
    assert PollEvent.from_payload(json.loads(json.dumps(event.to_payload()))) == event
    odd = PollEvent.from_payload({"status": "weird", "task_id": "t1"})
    assert odd.status == "error" and "unexpected trigger event" in odd.message
    with pytest.raises(ClovaStudioError, match="unexpected trigger event"):
        odd.finished_task()
    # a success without its snapshot cannot give a task: an error, not a crash
    with pytest.raises(ClovaStudioError, match="succeeded"):
        PollEvent.from_payload({"status": "success", "task_id": "t1", "message": "succeeded"}).finished_task()


def _task(raw: dict[str, Any]) -> TuningTask:
    return TuningTask.from_api(raw)


def test_tuning_result_is_the_xcom_of_a_tuning_task() -> None:
    result = tuning_result(_task(succeeded_json("abcd1234", model="HCX-005", name="n1")))
    assert result == {
        "task_id": "abcd1234",
        "name": "n1",
        "model": "HCX-005",
        "status": "SUCCEEDED",
        "train_loss": 0.3125,
        "steps": 60,
        "total_steps": 60,
        "epochs": 4,
        "data_rows": 120,
        "num_tokens": 9000,
        "chat_completions_path": "/v3/tasks/abcd1234/chat-completions",
    }
    assert json.loads(json.dumps(result)) == result
    assert tuning_result(_task(succeeded_json("abcd1234", model="HCX-003")))["chat_completions_path"] == (
        "/v1/tasks/abcd1234/chat-completions"
    )
    # a model this provider does not know yet still gives a result
    assert tuning_result(_task(succeeded_json("abcd1234", model="HCX-999")))["model"] == "HCX-999"
