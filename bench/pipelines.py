"""Pipeline benchmark: a folder clean job on clearmark's own process pool and on Ray.

    python bench/pipelines.py [--count N] [--size WxH] [--repeat R] [--out FILE]

Inputs are N JPEGs (quality 90) made from real photos by bench/synth.py's
``random_composite`` (a random mark kind, or none), written to a temporary folder and deleted
afterwards. Each engine configuration runs the same ``CleanTask`` on that folder in a fresh
child process of this script, so no run inherits another's imports, caches or Ray session:

  local 1    ``clearmark._pipeline.run(task, items, jobs=1)`` (inline, in the child);
  local 2    the same with ``jobs=2`` (a pool of 2 spawned worker processes);
  ray 1/2    ``clearmark.ray.run(task, items, workers=1|2)`` on a local cluster started in the
             child with ``ray.init(num_cpus=2)``; the init is timed apart, the actors' start-up
             is part of the job (as it is for a user).

Figures: wall time of the whole job (best of ``--repeat``), images/s, scaling efficiency
(images/s with 2 workers / (2 x images/s with 1), per engine), time to the first record,
the peak RSS of each worker process (``ru_maxrss`` read inside the worker after each file,
max over files and over workers) and the RSS of every process of the run at its end (the
child, its pool workers, or Ray's GCS, raylet, agents and actors). Decode-only images/s of the
same files (clearmark's decoder, one process) is the floor the job is compared with.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "bench")]

CONFIGS = (("local", 1), ("local", 2), ("ray", 1), ("ray", 2))


@dataclass(frozen=True)
class Measured:
    """A task whose records also carry the worker's pid and its peak RSS so far."""

    task: Any

    def failure_record(self, item: Any) -> dict[str, Any]:
        return self.task.failure_record(item)  # type: ignore[no-any-return]

    def __call__(self, item: Any) -> dict[str, Any]:
        record: dict[str, Any] = self.task(item)
        record["pid"] = os.getpid()
        record["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return record


# -- inputs -----------------------------------------------------------------------------------


def make_inputs(folder: Path, count: int, width: int, height: int) -> None:
    """``count`` JPEGs from real photos, a random mark (or none) on each; seeds 0..count-1."""
    from PIL import Image

    from synth import random_composite

    folder.mkdir(parents=True, exist_ok=True)
    for seed in range(count):
        item = random_composite(seed, width, height)
        Image.fromarray(item.image).save(folder / f"{seed:04d}_{item.kind}.jpg", quality=90)


def decode_rate(folder: Path) -> float:
    """Images/s of clearmark's decoder alone on the same files: the floor."""
    from clearmark._imageio import load_image

    files = sorted(folder.iterdir())
    started = time.perf_counter()
    for path in files:
        load_image(path)
    return len(files) / (time.perf_counter() - started)


# -- one configuration, in a child process ------------------------------------------------------


def run_config(engine: str, workers: int, src: Path, dst: Path) -> dict[str, Any]:
    """Run the job once; return its timings, statuses and memory (runs in a child)."""
    import cv2

    from clearmark._pipeline import CleanTask, find_inputs, run

    cv2.setNumThreads(1)  # as pool workers and Ray actors run
    task = Measured(CleanTask(src, dst))
    init_seconds = 0.0
    if engine == "ray":
        import ray

        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level="warning")
        init_seconds = time.perf_counter() - started
        ray.cloudpickle.register_pickle_by_value(sys.modules[Measured.__module__])
        import clearmark.ray

        records_iter = clearmark.ray.run(task, find_inputs([src]), workers=workers)
    else:
        records_iter = run(task, find_inputs([src]), jobs=workers)
    started = time.perf_counter()
    first, records = None, []
    for record in records_iter:
        first = first if first is not None else time.perf_counter() - started
        records.append(record)
    seconds = time.perf_counter() - started
    result = {"seconds": seconds, "first": first, "init": init_seconds,
              "statuses": _count(r["status"] for r in records),
              "task_seconds": sum(r["seconds"] for r in records),
              "worker_rss_mb": _worker_rss(records), "total_rss_mb": _tree_rss(os.getpid())}
    if engine == "ray":
        ray.shutdown()
    return result


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _worker_rss(records: list[dict[str, Any]]) -> dict[str, float]:
    peaks: dict[str, float] = {}
    for record in records:
        pid = str(record.get("pid"))
        peaks[pid] = max(peaks.get(pid, 0.0), float(record.get("rss_mb") or 0.0))
    return peaks


def _tree_rss(root: int) -> float:
    """RSS (MiB) of ``root`` and all its descendants now, read from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = dict(line.split(":", 1) for line in
                          (entry / "status").read_text().splitlines() if ":" in line)
        except OSError:
            continue
        pid = int(entry.name)
        children.setdefault(int(fields["PPid"]), []).append(pid)
        rss[pid] = float(fields.get("VmRSS", "0 kB").split()[0]) / 1024
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0.0)
        stack.extend(children.get(pid, []))
    return total


def in_child(engine: str, workers: int, src: Path, dst: Path) -> dict[str, Any]:
    """``run_config`` in a fresh interpreter; its result comes back as the last stdout line."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import pipelines; "
            "print(json.dumps(pipelines.run_config(sys.argv[2], int(sys.argv[3]), "
            "pipelines.Path(sys.argv[4]), pipelines.Path(sys.argv[5]))))")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "bench"), engine,
                          str(workers), str(src), str(dst)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- report -------------------------------------------------------------------------------------


def measure(src: Path, work: Path, repeat: int) -> dict[tuple[str, int], dict[str, Any]]:
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for engine, workers in CONFIGS:
        runs = [in_child(engine, workers, src, work / f"{engine}{workers}-{i}")
                for i in range(repeat)]
        best = min(runs, key=lambda r: r["seconds"])
        results[(engine, workers)] = best
        times = ", ".join(f"{r['seconds']:.2f}" for r in runs)
        print(f"  {engine} {workers}: {times} s", file=sys.stderr)
    return results


def table(results: dict[tuple[str, int], dict[str, Any]], count: int,
          floor: float) -> str:
    lines = ["| engine | workers | job s | images/s | x decode floor | scaling eff. | "
             "first record s | images/s after it | scaling eff. after it | s per file | "
             "workers busy | peak RSS per worker MiB | RSS of all processes MiB |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
             "| ---: |"]
    for (engine, workers), result in results.items():
        rate, steady = _rates(result, count)
        single, single_steady = _rates(results[(engine, 1)], count)
        peaks = result["worker_rss_mb"].values()
        lines.append(
            f"| {engine} | {workers} | {result['seconds']:.1f} | {rate:.2f} | "
            f"{rate / floor:.3f} | {rate / (workers * single):.0%} | {result['first']:.2f} | "
            f"{steady:.2f} | {steady / (workers * single_steady):.0%} | "
            f"{result['task_seconds'] / count:.3f} | "
            f"{result['task_seconds'] / (workers * result['seconds']):.0%} | "
            f"{max(peaks):.0f} | {result['total_rss_mb']:.0f} |")
    return "\n".join(lines)


def _rates(result: dict[str, Any], count: int) -> tuple[float, float]:
    """Images/s of the whole job, and after the first record (start-up left out)."""
    return count / result["seconds"], (count - 1) / (result["seconds"] - result["first"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--size", default="800x600")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "pipelines-report.md")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="clearmark-bench-") as tmp:
        src = Path(tmp, "src")
        make_inputs(src, args.count, width, height)
        floor = decode_rate(src)
        results = measure(src, Path(tmp), args.repeat)
    statuses = results[("local", 1)]["statuses"]
    if any(r["statuses"] != statuses for r in results.values()):
        raise SystemExit("engines disagree: " + json.dumps(
            {f"{e} {w}": r["statuses"] for (e, w), r in results.items()}))
    ray_init = [r["init"] for (engine, _), r in results.items() if engine == "ray"]
    text = table(results, args.count, floor)
    print(text)
    load = (load_before, os.getloadavg()[0])
    args.out.write_text(_report(args, text, floor, statuses, ray_init, load), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace, text: str, floor: float, statuses: dict[str, int],
            ray_init: list[float], load: tuple[float, float]) -> str:
    import numpy
    import ray

    return f"""# Pipeline benchmark: local process pool against Ray

`python bench/pipelines.py --count {args.count} --size {args.size} --repeat {args.repeat}`
on {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), Python
{platform.python_version()}, numpy {numpy.__version__}, Ray {ray.__version__}.

{args.count} JPEGs of {args.size} from real photos with random marks (bench/synth.py), the same
`CleanTask` on each engine (statuses: {statuses}, identical on every engine). Each configuration
runs in a fresh process; the best of {args.repeat} runs is shown. Decode-only floor: {floor:.1f}
images/s (clearmark's decoder, one process). `ray.init(num_cpus=2)` took
{min(ray_init):.1f}-{max(ray_init):.1f} s and is not in the job time; starting the actors is.
The machine's 1-minute load average was {load[0]:.1f} before and {load[1]:.1f} after the runs.

{text}

- *scaling eff.*: images/s with 2 workers / (2 x images/s with 1 worker of the same engine);
  *after it*: the same from the first record on, i.e. without pool or actor start-up (Ray
  hands records back a batch of 8 at a time, so its first record comes later, after work on
  the first batches: its "after it" rate flatters it; the whole-job rate is the fair one).
- *s per file*: the task's own time per file (its record's `seconds`), mean; it grows when
  workers compete for the CPUs. *workers busy*: total task time / (workers x job time).
  This machine is shared with other sessions' jobs: read the figures with the load averages.
- *peak RSS per worker*: the largest `ru_maxrss` of a process that ran the task (for local 1
  that is the benchmark's child itself, which also holds the driver).
- *RSS of all processes*: the child and all its descendants at the end of the job: for Ray
  this includes the GCS, the raylet, its agents and the actors.
"""


if __name__ == "__main__":
    raise SystemExit(main())
