"""How many status calls the adaptive tuning poller saves, and how late it sees the end.

One run starts a moto S3 server and the bundled CLOVA Studio emulator (subprocesses on
loopback, ``--time-scale S``), uploads datasets sized for trainings of several lengths (the
emulator trains 2 s per step after a 30 s WAIT, both x S), creates one tuning task per length
and watches each task with two pollers at once:

(a) fixed: GET every ``poll_interval`` (30 s emulated), sleeping between answers, as a plain
    sensor would;
(b) adaptive: the provider's ``TuningPoller`` with ``poll_interval`` 30 s and
    ``max_poll_interval`` 900 s (emulated), through ``wait_async`` as ``ClovaStudioTuningTrigger.run`` does.

Per job it reports the status calls (GETs) each made, counted by the bench and cross-checked
against the emulator's ``/_emulator/stats`` (``tuning.get`` answers, all jobs together), and the
lateness: emulated seconds from the moment the task became terminal to the poll that saw it.

The true end comes from ``currStep``/``totalTrainSteps`` at known instants: the emulator shows
step ``k`` from ``start + k * step`` until ``start + (k + 1) * step``, so every RUNNING answer
received between ``t0`` and ``t1`` bounds the end to ``(t0 + (total-k-1) * step, t1 + (total-k) *
step]``. The bounds of all answers of both pollers are intersected (typically to well under one
2 s step); ``endDatetime`` (whole seconds, wall clock) must agree. A poll "sees" the end at the
midpoint of its request; the printed ``+-`` is the worst uncertainty of any lateness figure.

Goal: adaptive <= 0.2x the fixed poller's calls on an hour-long job, lateness <= one poll_interval.

    python bench/poll_economy.py [--time-scale 0.008] [--poll-interval 30] [--max-poll-interval 900]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime

from airflow_provider_clova.client.calls import TuningDataset
from airflow_provider_clova.client.client import AsyncClovaStudioClient, ClovaStudioClient
from airflow_provider_clova.client.config import config_from_connection
from airflow_provider_clova.client.models import TuningStatus, TuningTask
from airflow_provider_clova.client.polling import PollPolicy, TuningPoller
from airflow_provider_clova.testing.emulator.config import Timings
from airflow_provider_clova.testing.servers import start_emulator, start_moto_server

BUCKET = "poll-economy"
BATCH = Timings().batch_size  # rows per emulated training step
STEP_SECONDS = Timings().step_seconds  # emulated seconds per training step
WAIT_SECONDS = Timings().wait_seconds
GOAL_RATIO = 0.2


@dataclass(frozen=True)
class Job:
    label: str
    rows: int
    epochs: int

    @property
    def steps(self) -> int:
        return math.ceil(self.rows / BATCH) * self.epochs

    @property
    def key(self) -> str:
        return f"datasets/{self.rows}.jsonl"


JOBS = (
    Job("15 min", 720, 5),
    Job("30 min", 720, 10),
    Job("1 h", 720, 20),
    Job("2 h", 1440, 20),
)


def dataset(rows: int) -> bytes:
    lines = [
        json.dumps(
            {"System_Prompt": "", "C_ID": i, "T_ID": 0, "Text": f"question {i}?", "Completion": f"answer {i}."},
            ensure_ascii=False,
        )
        for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Observation:
    sent: float  # wall clock, the emulator's clock
    received: float
    task: TuningTask

    @property
    def at(self) -> float:
        return (self.sent + self.received) / 2


@dataclass
class Watch:
    """What one poller saw of one task."""

    observations: list[Observation] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return len(self.observations)

    @property
    def seen(self) -> Observation:
        return next(o for o in self.observations if o.task.is_terminal)


async def fetch(client: AsyncClovaStudioClient, task_id: str, watch: Watch) -> TuningTask:
    sent = time.time()
    task = await client.get_tuning_task(task_id)
    watch.observations.append(Observation(sent, time.time(), task))
    return task


async def fixed_poller(client: AsyncClovaStudioClient, task_id: str, interval: float) -> Watch:
    watch = Watch()
    while not (await fetch(client, task_id, watch)).is_terminal:
        await asyncio.sleep(interval)
    return watch


async def adaptive_poller(client: AsyncClovaStudioClient, task_id: str, policy: PollPolicy) -> Watch:
    """The wait of ``ClovaStudioTuningTrigger.run``: ``TuningPoller.wait_async``."""
    watch = Watch()
    event = await TuningPoller(task_id, policy).wait_async(lambda: fetch(client, task_id, watch))
    if event.status != "success":
        raise RuntimeError(event.message)
    return watch


def true_end(watches: list[Watch], step_wall: float) -> tuple[float, float]:
    """(lower, upper) bounds of the wall-clock instant the task became SUCCEEDED."""
    low, high = -math.inf, math.inf
    for watch in watches:
        for o in watch.observations:
            info = o.task.status_info
            if o.task.status is TuningStatus.RUNNING and info.curr_step is not None and info.total_train_steps:
                left = info.total_train_steps - info.curr_step
                low = max(low, o.sent + (left - 1) * step_wall)
                high = min(high, o.received + left * step_wall)
            elif o.task.is_terminal:
                high = min(high, o.received)
    if not low < high:
        raise RuntimeError(f"inconsistent end bounds {low} .. {high}: is the step time {step_wall} s right?")
    return low, high


def end_datetime(watch: Watch) -> float:
    raw = watch.seen.task.raw["statusInfo"]["endDatetime"]
    return datetime.strptime(raw, "%Y-%m-%dT%H:%M:%S%z").timestamp()


async def run_jobs(url: str, scale: float, policy: PollPolicy) -> list[tuple[Job, Watch, Watch]]:
    config = config_from_connection(host=url, login="AK", password="SK", extra=None)
    data = TuningDataset(BUCKET, "placeholder.jsonl", "testing", "testing")
    with ClovaStudioClient(config) as sync:
        ids = [
            sync.create_tuning_task(
                "HCX-003",  # the only model the tuning API trains
                TuningDataset(BUCKET, job.key, data.access_key, data.secret_key),
                name=f"poll-economy-{job.label}",
                trainEpochs=job.epochs,
            ).id
            for job in JOBS
        ]
    async with AsyncClovaStudioClient(config) as client:
        runs = []
        for task_id in ids:
            runs.append(fixed_poller(client, task_id, policy.poll_interval))
            runs.append(adaptive_poller(client, task_id, policy))
        watches = await asyncio.gather(*runs)
    return [(job, watches[2 * i], watches[2 * i + 1]) for i, job in enumerate(JOBS)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--time-scale", type=float, default=0.008, help="emulator --time-scale (default 0.008)")
    parser.add_argument("--poll-interval", type=float, default=30.0, help="emulated seconds (default 30)")
    parser.add_argument("--max-poll-interval", type=float, default=900.0, help="emulated seconds (default 900)")
    args = parser.parse_args()
    scale = args.time_scale
    p = args.poll_interval
    policy = PollPolicy(p * scale, args.max_poll_interval * scale)
    started = time.monotonic()

    moto = start_moto_server()
    emulator = None
    try:
        s3 = moto.s3_client()
        s3.create_bucket(Bucket=BUCKET)
        for rows in sorted({job.rows for job in JOBS}):
            s3.put_object(Bucket=BUCKET, Key=f"datasets/{rows}.jsonl", Body=dataset(rows))
        emulator = start_emulator(object_storage_endpoint=moto.endpoint, time_scale=scale)
        results = asyncio.run(run_jobs(emulator.url, scale, policy))
        stats = emulator.stats()
    finally:
        if emulator is not None:
            emulator.stop()
        moto.stop()

    step_wall = STEP_SECONDS * scale
    print(
        f"poll economy: emulator --time-scale {scale}, WAIT {WAIT_SECONDS:.0f} s, {STEP_SECONDS:.0f} s per step; "
        f"poll_interval {p:.0f} s, adaptive max_poll_interval {args.max_poll_interval:.0f} s (emulated)"
    )
    header = f"{'job':>7} {'steps':>6} | {'fixed calls':>11} {'late s':>7} | {'adaptive calls':>14} {'late s':>7}"
    print(header + f" | {'ratio':>6}")
    print("-" * (len(header) + 9))
    fixed_total = adaptive_total = 0
    worst_late = 0.0
    uncertainty = 0.0
    one_hour_ratio = None
    for job, fixed, adaptive in results:
        low, high = true_end([fixed, adaptive], step_wall)
        end = (low + high) / 2
        stamp = end_datetime(adaptive)
        if not (stamp - 1 < high and low < stamp + 1):
            raise RuntimeError(f"{job.label}: end bounds {low}..{high} disagree with endDatetime {stamp}")
        late = []
        for watch in (fixed, adaptive):
            seen = watch.seen
            late.append((seen.at - end) / scale)
            uncertainty = max(uncertainty, ((high - low) / 2 + (seen.received - seen.sent) / 2) / scale)
        ratio = adaptive.calls / fixed.calls
        if job.label == "1 h":
            one_hour_ratio = ratio
        fixed_total += fixed.calls
        adaptive_total += adaptive.calls
        worst_late = max(worst_late, late[1])
        print(
            f"{job.label:>7} {job.steps:>6} | {fixed.calls:>11} {late[0]:>7.1f} | {adaptive.calls:>14} {late[1]:>7.1f}"
            f" | {ratio:>6.3f}"
        )
    print("-" * (len(header) + 9))
    total_ratio = adaptive_total / fixed_total
    print(f"{'all':>7} {'':>6} | {fixed_total:>11} {'':>7} | {adaptive_total:>14} {'':>7} | {total_ratio:>6.3f}")
    gets = stats["requests"].get("tuning.get", {})
    counted = fixed_total + adaptive_total
    verdict = "match" if gets == {"200": counted} else "MISMATCH"
    print(f"emulator stats: tuning.get {gets} (bench counted {counted}: {verdict})")
    print(
        "true end: from currStep/totalTrainSteps at known instants (bounds of every RUNNING answer intersected), "
        f"agreeing with endDatetime; lateness +-{uncertainty:.1f} s"
    )
    assert one_hour_ratio is not None
    ratio_ok = one_hour_ratio <= GOAL_RATIO
    late_ok = worst_late <= p
    print(
        f"goal: adaptive <= {GOAL_RATIO}x fixed calls on the 1 h job: {one_hour_ratio:.3f} "
        f"({'met' if ratio_ok else 'MISSED'}); adaptive lateness <= {p:.0f} s: worst {worst_late:.1f} s "
        f"({'met' if late_ok else 'MISSED'})"
    )
    print(f"run time {time.monotonic() - started:.0f} s")
    return 0 if ratio_ok and late_ok and gets == {"200": counted} else 1


if __name__ == "__main__":
    sys.exit(main())
