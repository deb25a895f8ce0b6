"""Benchmark: dataset validation speed and memory against a bare stdlib parse of the same file.

Usage::

    .venv/bin/python bench/dataset_validate.py [--size-mb 200] [--small-mb 50] [--no-csv] [--repeat 2]

It writes valid datasets into a temporary directory (a big and a small JSONL file, and a big
CSV file unless ``--no-csv``), then times, each in a fresh subprocess so that memory figures
are per measurement and not inherited:

* ``bare``: the least any reader must do: read the lines and ``json.loads`` each one (for CSV,
  iterate ``csv.reader`` over the text file);
* ``validate``: ``airflow_provider_clova.datasets.validate_path`` on the same file.

The validator parses each JSON line with the C scanner behind ``json.loads`` directly, which
skips that function's Python wrapper. So that the comparison stays honest, JSONL files are
also read by a second bare loop using the same scanner (``bare-scan``): its ratio is the cost
of the checks themselves, with the parser held equal.

It prints MB/s for both, the time ratio validate/bare (goal: at most 1.5) and the peak RSS of
each subprocess (``ru_maxrss``) for the small and the big file, which shows memory stays flat
as the file grows. Times are CPU seconds of the measuring process (user + system), which
other work on a shared machine barely disturbs; wall-clock figures are printed alongside.
The best of ``--repeat`` runs is kept; the page cache is warm for both sides alike (the file
was just written).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ("System_Prompt", "C_ID", "T_ID", "Text", "Completion")
RATIO_GOAL = 1.5

_KO = (
    "안녕하세요 고객님, 문의해 주셔서 감사합니다.",
    "제품의 무상 보증 기간은 구매일로부터 2년입니다.",
    "필터는 일반 가정 기준으로 6개월마다 교체하시길 권합니다.",
    "앱의 주문 내역에서 배송 상태를 확인하실 수 있습니다.",
    "상품을 받으신 날부터 14일 이내라면 반품하실 수 있습니다.",
    "고객센터는 평일 오전 9시부터 오후 6시까지 운영합니다.",
    "전원을 끄고 필터를 다시 끼운 뒤 덮개를 닫아 주세요.",
    "자동 모드에서는 공기질에 맞춰 바람 세기가 바뀝니다.",
)
_EN = (
    "Thanks for reaching out to Haneul Air support.",
    "Your order usually ships within two business days.",
    "Hold the Wi-Fi button for three seconds until the light blinks blue.",
    "The purifier only supports 2.4 GHz networks.",
    "Visits are free during the two-year warranty period.",
    "Please keep the original box so the courier can collect the unit.",
    "Auto mode adjusts the fan speed to the measured air quality.",
    "You can change the schedule at any time in the app.",
)
_SYSTEM = (
    "하늘에어 고객지원 상담원입니다. 정중하고 간결하게 답하세요.",
    "You are Haneul Air's support agent. Answer politely and briefly.",
    "",
)


def _pool(rng: random.Random, count: int, low: int, high: int) -> list[str]:
    sentences = _KO + _EN
    return [" ".join(rng.choice(sentences) for _ in range(rng.randint(low, high))) for _ in range(count)]


def generate(path: Path, megabytes: int, kind: str, seed: int = 7) -> int:
    """Write a valid dataset of at least ``megabytes`` MB; return the number of rows."""
    rng = random.Random(seed)
    texts = _pool(rng, 997, 1, 3)
    completions = _pool(rng, 1009, 3, 12)
    target = megabytes * 1_000_000
    rows = written = 0
    c_id = 0
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out) if kind == "csv" else None
        if writer is not None:
            writer.writerow(COLUMNS)
        if kind == "jsonl":
            quoted = [json.dumps(s, ensure_ascii=False) for s in (*texts, *completions, *_SYSTEM)]
            q_text, q_comp, q_sys = quoted[:997], quoted[997:2006], quoted[2006:]
        while written < target:
            turns = rng.randint(1, 4)
            system = rng.randrange(len(_SYSTEM))
            batch = []
            for t_id in range(turns):
                ti, ci = rng.randrange(997), rng.randrange(1009)
                if kind == "jsonl":
                    batch.append(
                        f'{{"System_Prompt": {q_sys[system]}, "C_ID": {c_id}, "T_ID": {t_id}, '
                        f'"Text": {q_text[ti]}, "Completion": {q_comp[ci]}}}\n'
                    )
                else:
                    assert writer is not None
                    writer.writerow((_SYSTEM[system], c_id, t_id, texts[ti], completions[ci]))
                rows += 1
            if batch:
                chunk = "".join(batch)
                out.write(chunk)
            c_id += 1
            written = out.tell()
    return rows


# -- measurements (each runs in its own subprocess) ---------------------------------------


def _measure(what: str, path: str) -> dict[str, float]:
    sys.path.insert(0, str(REPO))
    from airflow_provider_clova.datasets import validate_path  # imported before the clock starts

    start, start_cpu = time.perf_counter(), time.process_time()
    rows = 0
    if what == "bare-jsonl":
        loads = json.loads
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                loads(line)
                rows += 1
    elif what == "bare-jsonl-scan":
        scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                scan(line, 0)
                rows += 1
    elif what == "bare-csv":
        with open(path, encoding="utf-8", newline="") as handle:
            for _ in csv.reader(handle):
                rows += 1
            rows -= 1  # header
    elif what == "validate":
        report = validate_path(path)
        if not report.ok:
            raise SystemExit("generated dataset is not valid:\n" + report.format())
        rows = report.rows
    elif what == "idle":
        pass  # baseline: the interpreter with the package imported
    else:
        raise SystemExit(f"unknown measurement {what}")
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"cpu": cpu, "wall": wall, "rows": rows, "peak_rss_mib": peak_kib / 1024}


def run(what: str, path: Path | str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "_measure", what, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout)


def best_of(what: str, path: Path, repeat: int) -> dict[str, float]:
    runs = [run(what, path) for _ in range(repeat)]
    best = min(runs, key=lambda r: r["cpu"])
    best["wall"] = min(r["wall"] for r in runs)
    return best


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "_measure":
        print(json.dumps(_measure(sys.argv[2], sys.argv[3])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=200, help="size of the big files (default 200)")
    parser.add_argument("--small-mb", type=int, default=50, help="size of the small file (default 50)")
    parser.add_argument("--no-csv", action="store_true", help="skip the CSV measurements")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement, best kept (default 3)")
    args = parser.parse_args()

    started = time.perf_counter()
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cores; best of {args.repeat} runs each")
    with tempfile.TemporaryDirectory(prefix="clova-bench-") as tmp:
        files: list[tuple[str, Path]] = [
            ("jsonl", Path(tmp, f"big_{args.size_mb}mb.jsonl")),
            ("jsonl", Path(tmp, f"small_{args.small_mb}mb.jsonl")),
        ]
        if not args.no_csv:
            files.append(("csv", Path(tmp, f"big_{args.size_mb}mb.csv")))
        for kind, path in files:
            mb = args.small_mb if path.name.startswith("small") else args.size_mb
            t0 = time.perf_counter()
            rows = generate(path, mb, kind)
            size = path.stat().st_size / 1e6
            print(f"generated {path.name}: {size:.1f} MB, {rows:,} rows in {time.perf_counter() - t0:.1f} s")

        idle = run("idle", files[0][1])
        print(f"\nbaseline peak RSS (interpreter + package import): {idle['peak_rss_mib']:.1f} MiB\n")
        header = (
            f"{'file':<20} {'bare MB/s':>10} {'valid. MB/s':>12} {'bare cpu s':>11} {'valid. cpu s':>13} "
            f"{'ratio':>6} {'wall ratio':>11} {'bare RSS':>9} {'valid. RSS':>11}"
        )
        print(header)
        print("-" * len(header))
        verdicts: list[tuple[str, float]] = []
        scans: list[tuple[str, float, float]] = []
        peaks: dict[str, float] = {}
        for kind, path in files:
            size = path.stat().st_size / 1e6
            bare = best_of(f"bare-{kind}", path, args.repeat)
            valid = best_of("validate", path, args.repeat)
            if bare["rows"] != valid["rows"]:
                raise SystemExit(f"row counts differ: bare {bare['rows']}, validate {valid['rows']}")
            ratio = valid["cpu"] / bare["cpu"]
            verdicts.append((path.name, ratio))
            peaks[path.name] = valid["peak_rss_mib"]
            if kind == "jsonl":
                scan = best_of("bare-jsonl-scan", path, args.repeat)
                scans.append((path.name, size / scan["cpu"], valid["cpu"] / scan["cpu"]))
            print(
                f"{path.name:<20} {size / bare['cpu']:>10.1f} {size / valid['cpu']:>12.1f} "
                f"{bare['cpu']:>11.2f} {valid['cpu']:>13.2f} {ratio:>5.2f}x "
                f"{valid['wall'] / bare['wall']:>10.2f}x "
                f"{bare['peak_rss_mib']:>6.1f}MiB {valid['peak_rss_mib']:>8.1f}MiB"
            )
        print("(MB/s from CPU seconds; 'wall ratio' is the same ratio on wall-clock time)\n")
        big, small = files[0][1].name, files[1][1].name
        print(
            f"validate peak RSS: {peaks[small]:.1f} MiB for {small}, {peaks[big]:.1f} MiB for {big} "
            f"({peaks[big] - peaks[small]:+.1f} MiB for {args.size_mb / args.small_mb:.0f}x the data; "
            f"{peaks[big] - idle['peak_rss_mib']:.1f} MiB above the idle interpreter)"
        )
        for name, speed, scan_ratio in scans:
            print(
                f"{name}: bare loop with the validator's JSON scanner {speed:.1f} MB/s; "
                f"validate/bare-scan CPU ratio {scan_ratio:.2f} (the checks alone, parser held equal)"
            )
    print()
    for name, ratio in verdicts:
        status = "OK" if ratio <= RATIO_GOAL else "OVER GOAL"
        print(f"{name}: validate/bare CPU time ratio {ratio:.2f} (goal <= {RATIO_GOAL}) {status}")
    print(f"total bench time {time.perf_counter() - started:.0f} s")
    return 0 if all(ratio <= RATIO_GOAL for _, ratio in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
