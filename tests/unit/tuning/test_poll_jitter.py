"""Poll jitter: waits started together spread out; no pause grows, so lateness stays <= poll_interval."""

from __future__ import annotations

import random

import pytest

from airflow_provider_clova.client.errors import ClovaStudioServerError
from airflow_provider_clova.client.polling import PollPolicy, Sleep, TuningPoller
from tests.unit.tuning.conftest import Clock, SimJob, drive

P = 30.0
MAX = 900.0


def jittery(clock: Clock, seed: int, *, jitter: float = 0.1, deadline: float | None = None) -> TuningPoller:
    policy = PollPolicy(P, MAX, jitter=jitter)
    return TuningPoller("simjob01", policy, deadline=deadline, clock=clock, rng=random.Random(seed).random)


def test_first_polls_of_waits_started_together_spread_over_one_interval() -> None:
    firsts = [jittery(Clock(), seed).first_delay() for seed in range(1000)]
    assert all(0 <= delay < P for delay in firsts)
    # Not lockstep: every second of the interval holds between half and twice its even share
    # (1,000 / 30 = 33) of the first polls.
    per_second = [sum(1 for d in firsts if s <= d < s + 1) for s in range(int(P))]
    assert min(per_second) >= 17 and max(per_second) <= 66


def test_first_delay_never_passes_the_deadline_and_can_be_turned_off() -> None:
    clock = Clock(100.0)
    assert all(jittery(clock, seed, deadline=105.0).first_delay() <= 5.0 for seed in range(200))
    unspread = TuningPoller("simjob01", PollPolicy(P, MAX, first_poll_spread=0.0), clock=clock)
    assert unspread.first_delay() == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_every_pause_is_shortened_by_less_than_jitter_and_never_lengthened(seed: int) -> None:
    clock = Clock()
    job = SimJob(wait=3600, run=7200)
    trace = drive(jittery(clock, seed), job.at, clock)
    steady = PollPolicy(P, MAX, jitter=0.0)
    reference = TuningPoller("simjob01", steady, clock=Clock())
    waits = [d for d in trace.sleeps_while(trace.polls[0][1])]  # WAIT: poll_interval each
    assert waits and all(0.9 * P <= d <= P for d in waits)
    assert len(set(waits)) > len(waits) // 2  # really random, not one fixed offset
    assert reference.policy.jitter == 0.0
    # Completion is still seen within one poll_interval.
    assert trace.end_time - job.end <= P


def test_error_backoff_is_jittered_within_the_same_bound() -> None:
    clock = Clock()
    poller = jittery(clock, 7)
    error = ClovaStudioServerError("busy", http_status=503, code="50300")
    delays = []
    for _ in range(5):
        action = poller.step(error)
        assert isinstance(action, Sleep)
        delays.append(action.seconds)
    for attempt, delay in enumerate(delays):
        full = min(MAX, P * 2**attempt)
        assert 0.9 * full <= delay <= full


def test_policy_rejects_unbounded_jitter() -> None:
    with pytest.raises(ValueError, match="jitter"):
        PollPolicy(P, MAX, jitter=1.0)
    with pytest.raises(ValueError, match="first_poll_spread"):
        PollPolicy(P, MAX, first_poll_spread=1.5)


def test_every_driver_of_the_loop_starts_with_the_spread_pause() -> None:
    clock = Clock()
    pauses: list[float] = []
    poller = jittery(clock, 3)
    expected_first = random.Random(3).random() * P
    job = SimJob(wait=100, run=10)

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        clock.now += seconds

    event = poller.wait_sync(lambda: job.at(clock.now), sleep)
    assert event.status == "success"
    assert pauses[0] == pytest.approx(expected_first)
    assert clock.now - job.end <= P
