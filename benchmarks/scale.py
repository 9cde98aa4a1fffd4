"""A 1-gigapixel frame of 5000 people through the whole pipeline (benchmarks/e2e.run_one): per-stage
wall, user and system CPU seconds (driver and workers together), the driver's and the largest worker's
peak RSS, people found and the GigaCrowd score against the frame's truth.

    python benchmarks/scale.py                            # 44800x22400, 5000 people, 2 workers
    python benchmarks/scale.py --worker-env dask          # the workers in Distributed's environment

The synthetic frame is rendered once (minutes) into e2e's cache and reused; rendering is not counted.
Targets (issue #22): system time <= 15% of CPU time; no process above 2 GB.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import e2e  # the benchmark beside this one


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="44800x22400")
    ap.add_argument("--people", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--worker-env", choices=("project", "dask"), default="project", dest="worker_env")
    args = ap.parse_args()
    if args.worker_env == "dask":
        import pipeline.cluster

        pipeline.cluster.WORKER_ENV = {}  # nothing over Distributed's pre-spawn environment
    w, h = (int(v) for v in args.size.split("x"))
    row = e2e.run_one(w, h, args.people, args.workers, args.seed, score=True)
    cpu = row["stage_cpu_seconds"]
    user = sum(c["user"] for c in cpu.values())
    system = sum(c["sys"] for c in cpu.values())
    row["system_share"] = round(system / max(user + system, 1e-9), 3)
    row["worker_env"] = args.worker_env
    print(json.dumps(row))
    print(f"\n{args.size}, {args.people} people, {args.workers} workers ({args.worker_env} environment): "
          f"{row['boxes']} people found, {row['total_seconds']} s")  # fmt: skip
    print("stage      wall s   user s    sys s")
    for stage, seconds in row["stage_seconds"].items():
        print(f"{stage:8} {seconds:8.1f} {cpu[stage]['user']:8.1f} {cpu[stage]['sys']:8.1f}")
    print(f"system time {100 * row['system_share']:.1f}% of CPU time; peak RSS: driver "
          f"{row['driver_peak_rss_mb']:.0f} MB, largest worker {row['largest_worker_peak_rss_mb']:.0f} MB; "
          f"score {row['metrics'].get('score')}, {row['metrics']}")  # fmt: skip
    e2e.RESULTS.mkdir(parents=True, exist_ok=True)
    (e2e.RESULTS / f"scale-{args.worker_env}.json").write_text(json.dumps(row, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
