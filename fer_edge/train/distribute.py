"""Distribution strategy and mixed-precision policy of ``fer-edge train``. Heavy tier.

tf.distribute does all the work; this module only picks and configures it:

- ``none``: TensorFlow's default strategy (one device).
- ``mirrored``: :class:`tf.distribute.MirroredStrategy` over the host's GPUs (or, without
  GPUs, its logical CPU devices: one unless a process split the CPU with
  ``tf.config.set_logical_device_configuration``, which is how the tests run it).
- ``multiworker``: :class:`tf.distribute.MultiWorkerMirroredStrategy`, configured by the
  standard ``TF_CONFIG`` variable (:mod:`fer_edge.train.cluster`), with every wait bounded by
  ``--peer-timeout``: registration with the chief, each collective op, and the coordination
  service's shutdown barrier.
- ``auto``: ``multiworker`` when ``TF_CONFIG`` lists more than one task, else ``mirrored``
  when the host has more than one GPU, else ``none``.

Mixed precision is a Keras dtype policy (``mixed_float16`` / ``mixed_bfloat16``): variables
stay float32, layers compute in the low precision, the softmax head and the loss stay float32
(the ``probs`` layer is float32), and float16 gets Keras's dynamic loss scaling. Saved models
are float32 (:func:`h5_to_float32`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from fer_edge.errors import ClusterError
from fer_edge.train._keras import keras, tf
from fer_edge.train.cluster import Cluster, parse_tf_config, wait_for_peers

log = logging.getLogger(__name__)

POLICIES = {"float16": "mixed_float16", "bfloat16": "mixed_bfloat16", "no": "float32"}
#: OpErrors that mean a peer or the link to it failed while training
PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
               tf.errors.AbortedError, tf.errors.CancelledError)


@dataclass(frozen=True)
class Setup:
    """What :func:`make_strategy` chose."""

    strategy: tf.distribute.Strategy
    mode: str  # none | mirrored | multiworker
    cluster: Cluster | None = None

    @property
    def is_chief(self) -> bool:
        return self.cluster is None or self.cluster.is_chief


def resolve_mode(distribute: str, env: dict[str, str] | None = None) -> str:
    """``--distribute`` value -> none | mirrored | multiworker (``auto`` resolved).

    Light: reads ``TF_CONFIG`` and counts GPUs without initialising TensorFlow's devices.
    """
    env = os.environ if env is None else env
    if distribute != "auto":
        return distribute
    raw = env.get("TF_CONFIG", "")
    if raw.strip():
        cluster = parse_tf_config(raw)
        if cluster.num_workers > 1:
            return "multiworker"
    return "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "none"


def cluster_for(distribute: str, env: dict[str, str] | None = None) -> Cluster | None:
    """The ``TF_CONFIG`` cluster when ``distribute`` resolves to multiworker, else None."""
    env = os.environ if env is None else env
    if resolve_mode(distribute, env) != "multiworker":
        return None
    return parse_tf_config(env.get("TF_CONFIG"))


def make_strategy(distribute: str, peer_timeout: float) -> Setup:
    """Create the strategy. Must run before any other TensorFlow op of the process.

    Args:
        distribute: ``auto|none|mirrored|multiworker``.
        peer_timeout: seconds to wait for the other workers (multiworker only).

    Raises:
        ClusterError: bad or missing ``TF_CONFIG``, or a peer that did not answer in time.
    """
    mode = resolve_mode(distribute)
    if mode == "none":
        return Setup(tf.distribute.get_strategy(), mode)
    if mode == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        if len(devices) < 2:
            log.info("--distribute mirrored: only %s on this host, so one replica",
                     devices[0] if devices else "one device")
        # on CPU devices MirroredStrategy reduces through one device (NCCL is for GPUs)
        ops = None if gpus else tf.distribute.ReductionToOneDevice()
        return Setup(tf.distribute.MirroredStrategy(devices, cross_device_ops=ops), mode)
    cluster = parse_tf_config(os.environ.get("TF_CONFIG"))
    timeout_ms = int(peer_timeout * 1000)
    _configure_coordination(cluster, timeout_ms)
    if cluster.is_chief:
        # the chief's coordination service waits for every task with no deadline of its own
        log.info("%s (chief): waiting up to %.0f s for %s", cluster.name, peer_timeout,
                 ", ".join(f"{n} at {a}" for n, a in cluster.peers()))
        wait_for_peers(cluster, peer_timeout)
    else:
        log.info("%s: joining the chief (%s %d) at %s, up to %.0f s", cluster.name,
                 *cluster.chief, cluster.jobs[cluster.chief[0]][0], peer_timeout)
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=peer_timeout)
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except PEER_ERRORS as exc:
        chief = cluster.jobs[cluster.chief[0]][0]
        raise ClusterError(
            f"{cluster.name}: could not join the cluster through the chief at {chief} within "
            f"{peer_timeout:.0f} s ({type(exc).__name__}); start `fer-edge train` on every task "
            "of TF_CONFIG, check addresses and firewall, or raise --peer-timeout") from None
    log.info("%s: %d workers, %d replicas in sync", cluster.name, cluster.num_workers,
             strategy.num_replicas_in_sync)
    return Setup(strategy, mode, cluster)


def _configure_coordination(cluster: Cluster, timeout_ms: int) -> None:
    """TensorFlow's coordination service as MultiWorkerMirroredStrategy would configure it,
    plus deadlines (its defaults let a missing peer block registration and shutdown for long)."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(addrs))
            for job, addrs in cluster.jobs.items()]
    job, _ = cluster.chief
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=f"/job:{job}/replica:0/task:0",
        coordinated_jobs=jobs, cluster_register_timeout_in_ms=timeout_ms,
        shutdown_barrier_timeout_in_ms=timeout_ms)


def peer_error(setup: Setup, exc: Exception) -> ClusterError:
    """One-line error for an OpError raised while training in a cluster."""
    first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
    who = setup.cluster.name if setup.cluster else "this process"
    return ClusterError(f"{who}: lost the other workers during training ({first}); restart "
                        "every worker with the same command and --resume")


def sync_from_chief(setup: Setup, variables) -> None:
    """Give every worker the chief's values of ``variables`` (multiworker only; else no-op).

    Only the chief has the run folder, so after a resume only the chief restored the
    checkpoint (model, optimizer slots, epoch counters); this broadcast, one all-reduce of the
    chief's values with zeros from every other replica, makes all workers continue from it.
    Every worker must call it at the same point with the same variable list.
    """
    if setup.mode != "multiworker":
        return
    variables = list(variables)
    strategy = setup.strategy

    @tf.function
    def chief_values():
        ctx = tf.distribute.get_replica_context()
        first = tf.equal(ctx.replica_id_in_sync_group, 0)
        # one all-reduce per dtype (a packed all-reduce takes one dtype); counters and flags
        # travel as float64, exact for integers below 2**53
        groups: dict[str, list[tf.Tensor]] = {"float32": [], "float64": []}
        for v in variables:
            x = tf.convert_to_tensor(v)
            key = "float32" if x.dtype == tf.float32 else "float64"
            x = tf.cast(x, key)
            groups[key].append(tf.where(first, x, tf.zeros_like(x)))
        return {k: ctx.all_reduce(tf.distribute.ReduceOp.SUM, g) for k, g in groups.items() if g}

    out = strategy.run(chief_values)
    local = {k: iter(r) for k, r in out.items()}
    for v in variables:
        r = next(local["float32" if v.dtype == tf.float32 else "float64"])
        v.assign(tf.cast(strategy.experimental_local_results(r)[0], v.dtype))
    # the same on every worker once synchronised (the logs let a person or a test compare)
    checksum = sum(float(tf.reduce_sum(tf.abs(tf.cast(v, tf.float64))).numpy()) for v in variables)
    log.info("%s: %d variables synchronised from the chief (checksum %.6f)", setup.cluster.name,
             len(variables), checksum)


# ---------------------------------------------------------------------------------------------
# mixed precision


def resolve_policy(mixed_precision: str) -> str:
    """``--mixed-precision`` value -> Keras policy name (``auto`` and the old ``yes`` resolved).

    ``auto`` = ``mixed_float16`` when every GPU has compute capability >= 7.0 (tensor cores),
    else float32 (on a CPU, float16 is emulated and bfloat16 rarely faster).
    """
    if mixed_precision == "yes":  # the flag's value before bfloat16 existed
        mixed_precision = "float16"
    if mixed_precision == "auto":
        gpus = tf.config.list_physical_devices("GPU")
        ok = bool(gpus) and all(_compute_capability(g) >= (7, 0) for g in gpus)
        return "mixed_float16" if ok else "float32"
    if mixed_precision not in POLICIES:
        raise ClusterError(f"--mixed-precision {mixed_precision!r}: use auto, float16, bfloat16 "
                           "or no")
    return POLICIES[mixed_precision]


def _compute_capability(gpu) -> tuple[int, int]:
    try:
        cc = tf.config.experimental.get_device_details(gpu).get("compute_capability")
    except Exception:  # noqa: BLE001 - details are best effort; unknown = old
        cc = None
    return tuple(cc) if cc else (0, 0)


def set_policy(policy: str, strategy: tf.distribute.Strategy) -> None:
    """Set the global Keras policy, after checking that the device can train with it.

    A small Conv/BatchNorm/pooling/Dense network (the op types of InceptionV3) takes one
    training step under the policy on the strategy's devices.

    Raises:
        ClusterError: the device has no kernel for an op in that precision (names the op
            and the fix).
    """
    keras.mixed_precision.set_global_policy(policy)
    if policy == "float32":
        return
    name = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}[policy]
    try:
        with strategy.scope():
            _probe_step(strategy)
    except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError,
            tf.errors.UnimplementedError, tf.errors.InternalError) as exc:
        keras.mixed_precision.set_global_policy("float32")
        op = str(exc).strip().splitlines()[0][:140]
        raise ClusterError(f"--mixed-precision {name}: this device cannot train in {name} "
                           f"({op}); use --mixed-precision no"
                           + (" or bfloat16" if name == "float16" else "")) from None
    if not tf.config.list_physical_devices("GPU"):
        log.info("mixed precision %s on a CPU: it runs, but is rarely faster than float32 "
                 "there", name)


def _probe_step(strategy: tf.distribute.Strategy) -> None:
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    a = keras.layers.MaxPooling2D(2)(x)
    b = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Concatenate()([a, b])
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(7, activation="softmax", dtype="float32")(x)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="categorical_crossentropy")
    xs = tf.zeros((2 * strategy.num_replicas_in_sync, 8, 8, 3))
    ys = tf.one_hot(tf.zeros((2 * strategy.num_replicas_in_sync,), tf.int32), 7)
    model.fit(xs, ys, batch_size=2 * strategy.num_replicas_in_sync, epochs=1, verbose=0)


def h5_to_float32(path) -> bool:
    """Rewrite a saved ``.h5`` model's config so every layer computes in float32.

    Under a mixed policy Keras keeps the variables in float32 and casts them to the compute
    dtype inside each layer call, so the saved weights are already the float32 master weights;
    only the layer configs name the mixed policy. With that replaced by ``float32``, a
    mixed-precision run's model loads, evaluates and converts exactly like a float32 one (its
    weights are cast to float16/bfloat16 in no build).

    Args:
        path: an ``.h5`` written by ``model.save``.

    Returns:
        True if any layer's dtype policy was changed.
    """
    import json

    import h5py

    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        changed = _float32_layers(config)
        if changed:
            f.attrs["model_config"] = json.dumps(config)
    return changed


def _float32_layers(node) -> bool:
    changed = False
    if isinstance(node, dict):
        dtype = node.get("dtype")
        if isinstance(dtype, dict) and dtype.get("class_name") in ("Policy", "DTypePolicy"):
            node["dtype"] = "float32"
            changed = True
        for v in node.values():
            changed |= _float32_layers(v)
    elif isinstance(node, list):
        for v in node:
            changed |= _float32_layers(v)
    return changed
