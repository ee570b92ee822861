"""``TF_CONFIG`` parsing and peer checks for multi-worker training. Light tier (no TensorFlow).

``TF_CONFIG`` is TensorFlow's standard JSON description of a cluster, one per process::

    {"cluster": {"worker": ["host0:12345", "host1:12345"]},
     "task": {"type": "worker", "index": 0}}

Every process gets the same ``cluster`` and its own ``task``. The chief is task ``chief 0``
when the cluster has a ``chief`` job, otherwise ``worker 0``; it leads TensorFlow's
coordination service and is the only process that writes the run folder.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass

from fer_edge.errors import ClusterError

#: jobs MultiWorkerMirroredStrategy trains with (an "evaluator" job is not supported here)
JOBS = ("chief", "worker")

_EXAMPLE = ('e.g. TF_CONFIG=\'{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
            '"task": {"type": "worker", "index": 0}}\'')


@dataclass(frozen=True)
class Cluster:
    """One process's view of the cluster described by ``TF_CONFIG``."""

    jobs: dict[str, tuple[str, ...]]
    task_type: str
    task_index: int

    @property
    def address(self) -> str:
        """This process's ``host:port``."""
        return self.jobs[self.task_type][self.task_index]

    @property
    def chief(self) -> tuple[str, int]:
        return ("chief", 0) if "chief" in self.jobs else ("worker", 0)

    @property
    def is_chief(self) -> bool:
        return (self.task_type, self.task_index) == self.chief

    @property
    def num_workers(self) -> int:
        return sum(len(a) for a in self.jobs.values())

    @property
    def name(self) -> str:
        return f"{self.task_type} {self.task_index}"

    def peers(self) -> list[tuple[str, str]]:
        """(task name, ``host:port``) of every other task."""
        return [(f"{job} {i}", addr) for job, addrs in self.jobs.items()
                for i, addr in enumerate(addrs) if (job, i) != (self.task_type, self.task_index)]


def parse_tf_config(raw: str | None) -> Cluster:
    """Validate a ``TF_CONFIG`` value for multi-worker training.

    Args:
        raw: the environment variable's text (None or "" when unset).

    Returns:
        The cluster as this process sees it.

    Raises:
        ClusterError: unset, not JSON, or missing/invalid ``cluster``/``task`` entries
            (one line naming the problem and showing a valid value).
    """
    cfg = _json_object(raw)
    jobs = _cluster_jobs(cfg)
    ttype, tindex = _this_task(cfg, jobs)
    return Cluster(jobs=jobs, task_type=ttype, task_index=tindex)


def _json_object(raw: str | None) -> dict:
    """TF_CONFIG's text as a JSON object with a ``cluster`` object."""
    if not raw or not raw.strip():
        raise ClusterError(f"--distribute multiworker needs the TF_CONFIG environment variable "
                           f"(the cluster and this process's task), {_EXAMPLE}")
    try:
        cfg = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ClusterError(f"TF_CONFIG is not valid JSON ({exc.msg} at character {exc.pos}); "
                           f"{_EXAMPLE}") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("cluster"), dict):
        raise ClusterError(f"TF_CONFIG has no \"cluster\" object; {_EXAMPLE}")
    return cfg


def _cluster_jobs(cfg: dict) -> dict[str, tuple[str, ...]]:
    """job -> its host:port addresses, each job supported, each address valid and unique."""
    jobs = {job: _job_addresses(job, addrs) for job, addrs in cfg["cluster"].items()}
    if "chief" in jobs and len(jobs["chief"]) != 1:
        raise ClusterError("TF_CONFIG cluster.chief must list exactly one address")
    if not jobs:
        raise ClusterError(f"TF_CONFIG cluster lists no workers; {_EXAMPLE}")
    all_addrs = [a for addrs in jobs.values() for a in addrs]
    dup = sorted({a for a in all_addrs if all_addrs.count(a) > 1})
    if dup:
        raise ClusterError(f"TF_CONFIG lists {', '.join(dup)} more than once: every task needs "
                           "its own host:port")
    return jobs


def _job_addresses(job: str, addrs: object) -> tuple[str, ...]:
    if job not in JOBS:
        raise ClusterError(f"TF_CONFIG cluster job {job!r} is not supported (use \"chief\" "
                           f"and/or \"worker\"); {_EXAMPLE}")
    if not isinstance(addrs, list) or not addrs or not all(isinstance(a, str) for a in addrs):
        raise ClusterError(f"TF_CONFIG cluster.{job} must be a non-empty list of "
                           f"\"host:port\" strings; {_EXAMPLE}")
    for a in addrs:
        host, sep, port = a.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ClusterError(f"TF_CONFIG cluster.{job} address {a!r} is not host:port "
                               f"(port 1-65535); {_EXAMPLE}")
    return tuple(addrs)


def _this_task(cfg: dict, jobs: dict[str, tuple[str, ...]]) -> tuple[str, int]:
    """(task type, task index) of this process, checked against the cluster."""
    task = cfg.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ClusterError("TF_CONFIG has no \"task\": {\"type\": ..., \"index\": ...} saying "
                           "which cluster entry this process is")
    ttype, tindex = task["type"], task["index"]
    if ttype not in jobs:
        raise ClusterError(f"TF_CONFIG task type {ttype!r} is not a job of its cluster "
                           f"({', '.join(jobs)})")
    if not isinstance(tindex, int) or isinstance(tindex, bool) or not (
            0 <= tindex < len(jobs[ttype])):
        raise ClusterError(f"TF_CONFIG task index {tindex!r} is out of range: cluster.{ttype} "
                           f"has {len(jobs[ttype])} address(es), so 0..{len(jobs[ttype]) - 1}")
    return ttype, tindex


def wait_for_peers(cluster: Cluster, timeout: float, poll: float = 0.5) -> None:
    """Block until every other task of the cluster accepts TCP connections.

    Run by the chief before it starts TensorFlow's coordination service (the service waits
    for every task without a deadline on the chief; the other tasks already time out on their
    own while they register with the chief).

    Args:
        cluster: from :func:`parse_tf_config`.
        timeout: seconds to wait in all.
        poll: seconds between attempts.

    Raises:
        ClusterError: a peer did not answer within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    waiting = dict(cluster.peers())
    while waiting:
        for name, addr in list(waiting.items()):
            host, _, port = addr.rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=poll):
                    del waiting[name]
            except OSError:
                pass
        if not waiting:
            return
        if time.monotonic() >= deadline:
            name, addr = next(iter(waiting.items()))
            raise ClusterError(
                f"{cluster.name}: {name} at {addr} did not answer within {timeout:.0f} s; start "
                f"`fer-edge train` there with the same TF_CONFIG cluster (task {name}), check "
                "the address and firewall, or raise --peer-timeout")
        time.sleep(poll)
