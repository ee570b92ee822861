"""Which threads a demo run keeps busy, per ``--threads`` value (Linux: reads /proc).

Runs ``fer-edge demo --video CLIP --headless --threads N`` in a fresh process per value,
samples in it every 50 ms the CPU time of each of its threads (``/proc/self/task/TID/stat``,
utime + stime; the sampler itself left out), and reports the process's CPU seconds, its
threads, and how many of them did work (at least ``--busy``, default 1 %, of the process's CPU
time each), with each busy thread's name and share.
``--threads 1`` should leave one busy thread: the detector's LiteRT interpreter, OpenCV's pool
and the classifier's runtime all kept to the main thread.
Writes ``benchmarks/results/demo_threads.csv``.

    python benchmarks/demo_threads.py --threads 1,2,0 \
        --video ../shared/data/real/short_hamilton_clip.mp4
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "demo_threads.csv"
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def thread_times(pid: int | str = "self") -> dict[int, tuple[str, float]]:
    """{tid: (thread name, CPU seconds)} of a process's live threads."""
    out = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / TICK)
    return out


#: the child: the demo in-process while a sampler thread keeps every thread's latest CPU time
#: (the runtimes' worker threads end with their interpreters, before the process does)
CHILD = """
import json, sys, threading, time
sys.path.insert(0, {bench!r})
from demo_threads import thread_times
from fer_edge.cli import main
seen, me = {{}}, threading.get_native_id
def sample():
    while True:
        seen.update({{k: v for k, v in thread_times().items() if k != me()}})
        time.sleep(0.05)
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
rc = main({args!r})
seen.update({{k: v for k, v in thread_times().items() if k != sampler.native_id}})
print("THREADS " + json.dumps(list(seen.values())))
sys.exit(rc)
"""


def measure(video: str, threads: int, busy: float, root: Path = ROOT) -> dict:
    """One demo run with ``--threads threads`` of the fer-edge clone at ``root``; its busy
    threads."""
    import json

    env = dict(os.environ, PYTHONPATH=str(root))
    args = ["demo", "--video", video, "--headless", "--threads", str(threads)]
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", CHILD.format(bench=str(HERE), args=args)],
                       capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("THREADS ")]
    if r.returncode or not line:
        sys.exit(f"demo_threads: the demo failed:\n{r.stderr[-1500:]}")
    times = json.loads(line[0][8:])
    total = sum(t for _, t in times) or 1e-9
    busy_threads = sorted(((n, t / total) for n, t in times if t / total >= busy),
                          key=lambda x: -x[1])
    return {"clone": str(root), "threads_flag": threads, "video": Path(video).name,
            "wall_s": round(wall, 2), "cpu_s": round(total, 2), "threads_total": len(times),
            "threads_busy": len(busy_threads),
            "busy": "; ".join(f"{n} {s:.0%}" for n, s in busy_threads),
            "summary": r.stdout.splitlines()[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2,0", help="--threads values to run")
    ap.add_argument("--video", default="sample")
    ap.add_argument("--busy", type=float, default=0.01,
                    help="a thread is busy with at least this share of the CPU time")
    ap.add_argument("--root", default=str(ROOT),
                    help="run the fer-edge of this clone (e.g. an older checkout to compare)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    if not Path("/proc/self/task").is_dir():
        sys.exit("demo_threads: needs Linux /proc")
    rows = []
    for t in (int(v) for v in args.threads.split(",")):
        row = {"date": dt.date.today().isoformat(),
               **measure(args.video, t, args.busy, Path(args.root))}
        print(row)
        rows.append(row)
    from fer_edge.io import atomic_write_csv

    atomic_write_csv(args.out, rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
