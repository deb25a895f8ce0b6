"""TuningPoller: the one poll loop, driven on a virtual clock against jobs on a timeline."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_clova.client.errors import (
    ClovaStudioAuthError,
    ClovaStudioNotFoundError,
    ClovaStudioRateLimitError,
    ClovaStudioServerError,
    ClovaStudioTransportError,
)
from airflow_provider_clova.client.models import TuningStatus, TuningTask
from airflow_provider_clova.client.polling import PollEvent, PollPolicy, Sleep, TuningPoller
from tests.unit.tuning.conftest import Clock, SimJob, drive, task_json

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
    # the last look is exactly at the deadline, not a poll_interval (or an adaptive pause) later
    assert trace.end_time == pytest.approx(1500.0)
    assert all(t <= 1500.0 for t, _, _ in trace.polls)


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
