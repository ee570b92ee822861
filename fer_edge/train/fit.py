"""``fer-edge train``: transfer learning (base frozen) then fine-tuning, resumable. Heavy tier.

Run folder (``<runs_dir>/<name>/``), every file written atomically:

- ``config.json``: the resolved :class:`~fer_edge.train.config.TrainConfig` plus versions.
- ``spec.json``: the model spec later stages read (labels, input, normalisation, crop rule).
- ``model_float.h5``: best float model (val accuracy) of the last stage that ran.
- ``stage1_float.h5``: best model of stage 1 (transfer learning), when it ran.
- ``history.csv``: one row per epoch; ``tensorboard/``: TensorBoard logs.
- ``ckpt/<stage>/``: last-epoch checkpoint (weights, optimizer, epoch, early-stop state) that
  ``--resume`` continues from.
- ``eval/``: test-split report (JSON, Markdown, confusion PNG), stage 1 vs stage 2.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from fer_edge import __version__
from fer_edge.data import Dataset
from fer_edge.data.balance import class_weights, oversample_indices
from fer_edge.detect.crops import crop_fields
from fer_edge.errors import ClusterError, ConfigError, ModelFileError
from fer_edge.io import atomic_write_text, check_output_dir, temp_path_for
from fer_edge.spec import ModelSpec
from fer_edge.train import distribute
from fer_edge.train._keras import keras, tf
from fer_edge.train.backbones import check_input_size
from fer_edge.train.config import TrainConfig
from fer_edge.train.data import read_training_data
from fer_edge.train.distribute import Setup
from fer_edge.train.model import POOL_LAYER, arch_normalisation, build_model, set_stage
from fer_edge.train.pipeline import Augment, Mix, make_dataset
from fer_edge.train.runs import init_source, lock_run, resolve_run_dir, unlock_run

log = logging.getLogger(__name__)

HISTORY_FIELDS = ("stage", "epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy",
                  "seconds", "images_per_s")


def configure_tf(cfg: TrainConfig) -> Setup:
    """Threads, seeds, distribution strategy and mixed-precision policy (GPU when present).

    Runs before any other TensorFlow op of the process (multi-worker collectives must be
    configured before TensorFlow initialises its devices).
    """
    if cfg.threads > 0:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(cfg.threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(cfg.threads, 2))
        except RuntimeError:  # TensorFlow already ran in this process (a second run_training)
            log.warning("--threads %d not applied: TensorFlow already started in this process "
                        "with %d threads", cfg.threads,
                        tf.config.threading.get_intra_op_parallelism_threads())
    gpus = tf.config.list_physical_devices("GPU")
    for g in gpus:
        try:
            tf.config.experimental.set_memory_growth(g, True)
        except RuntimeError:
            pass
    setup = distribute.make_strategy(cfg.distribute, cfg.peer_timeout)
    if cfg.xla and setup.mode == "mirrored" and not gpus and (
            setup.strategy.num_replicas_in_sync > 1):
        raise ClusterError("--xla with --distribute mirrored over CPU devices does not work in "
                           "TensorFlow (XLA runs every replica's step on the first CPU device "
                           "and cannot reach the others' variables); drop --xla or use "
                           "--distribute none")
    keras.utils.set_random_seed(cfg.seed)
    policy = distribute.resolve_policy(cfg.mixed_precision)
    distribute.set_policy(policy, setup.strategy)
    keras.utils.set_random_seed(cfg.seed)  # the same start whether or not a probe ran
    log.info("devices: %s; %s, %d replica(s); precision %s; XLA %s",
             ", ".join(g.name for g in gpus) or "CPU only", setup.mode,
             setup.strategy.num_replicas_in_sync, policy, "on" if cfg.xla else "off")
    return setup


class _Progress(keras.callbacks.Callback):
    """Logs progress inside long epochs (every ``every`` steps) with throughput and ETA."""

    def __init__(self, stage: str, epochs: int, steps: int, batch: int, every: int = 50):
        super().__init__()
        self.stage, self.epochs, self.steps = stage, epochs, steps
        self.batch, self.every = batch, every

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.t0 = epoch, time.time()

    def on_train_begin(self, logs=None):
        self.first = True
        log.info("%s: first steps (the first one builds the training graph; progress every "
                 "%d steps)", self.stage, self.every)

    def on_train_batch_end(self, batch, logs=None):
        if self.first:
            self.first = False
            log.info("%s: first step done in %.0fs", self.stage, time.time() - self.t0)
        if (batch + 1) % self.every == 0 and batch + 1 < self.steps:
            dt = time.time() - self.t0
            rate = (batch + 1) * self.batch / dt
            eta = (self.steps - batch - 1) * dt / (batch + 1)
            log.info("%s epoch %d/%d step %d/%d loss %.4f acc %.4f  %.0f img/s, epoch ETA %.0fs",
                     self.stage, self.epoch + 1, self.epochs, batch + 1, self.steps,
                     logs.get("loss", float("nan")), logs.get("accuracy", float("nan")), rate, eta)


class _Schedule(keras.callbacks.Callback):
    """Linear warm-up then cosine decay to 1 % of the peak, per step; depends only on the
    epoch/step, so a resumed run continues the same curve.

    With a training budget (``--budget-min``), progress is also measured in time: the
    schedule is at ``max(steps done, epochs x budget fraction spent)``, so a run that the
    budget will stop before its planned epochs still warms up and anneals within the budget
    (budgeted training, Li et al. 2020) instead of being cut off at a high learning rate."""

    def __init__(self, peak: float, epochs: int, steps: int, warmup: int, budget=None):
        super().__init__()
        self.peak, self.epochs, self.steps, self.warmup = peak, epochs, steps, warmup
        self.budget = budget  # a _Budget callback, or None

    def lr_at(self, epoch: int, batch: int) -> float:
        t = epoch + batch / max(self.steps, 1)
        if self.budget is not None:
            t = max(t, self.epochs * self.budget.fraction())
        if t < self.warmup:
            return self.peak * (t + 1.0 / self.steps) / self.warmup
        frac = (t - self.warmup) / max(self.epochs - self.warmup, 1e-9)
        return self.peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        keras.backend.set_value(self.model.optimizer.learning_rate, self.lr_at(self.epoch, batch))


class _Checkpoint(keras.callbacks.Callback):
    """End of epoch: best model (atomic), resume checkpoint, history row, early stopping."""

    def __init__(self, run: Path, stage: str, best_path: Path, manager, state, patience: int,
                 n_images: int, ema=None, val_ds=None):
        super().__init__()
        self.run, self.stage, self.best_path = run, stage, best_path
        self.manager, self.state, self.patience, self.n_images = manager, state, patience, n_images
        self.ema, self.val_ds = ema, val_ds  # with an EMA: validate and save averaged weights

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        secs = time.time() - self.t0
        best = float(self.state["best"].numpy())
        if self.ema is not None:
            from fer_edge.train.ema import evaluate_dataset

            with self.ema.averaged():
                logs.update(evaluate_dataset(self.model, self.val_ds))
                if float(logs["val_accuracy"]) > best:
                    save_model_atomic(self.model, self.best_path)
        val = float(logs.get("val_accuracy", float("nan")))
        if val > best:
            if self.ema is None:
                save_model_atomic(self.model, self.best_path)
            self.state["best"].assign(val)
            self.state["best_epoch"].assign(epoch + 1)
            self.state["stale"].assign(0)
            log.info("%s epoch %d: val accuracy %.4f (best so far) -> %s", self.stage, epoch + 1,
                     val, self.best_path.name)
        else:
            self.state["stale"].assign(self.state["stale"] + 1)
            log.info("%s epoch %d: val accuracy %.4f (best %.4f at epoch %d)", self.stage,
                     epoch + 1, val, best, int(self.state["best_epoch"].numpy()))
        self.state["epoch"].assign(epoch + 1)
        append_history(self.run / "history.csv", {
            "stage": self.stage, "epoch": epoch + 1,
            "lr": float(keras.backend.get_value(self.model.optimizer.learning_rate)),
            "loss": logs.get("loss"), "accuracy": logs.get("accuracy"),
            "val_loss": logs.get("val_loss"), "val_accuracy": logs.get("val_accuracy"),
            "seconds": round(secs, 1), "images_per_s": round(self.n_images / secs, 1)})
        self.manager.save()
        if self.patience > 0 and int(self.state["stale"].numpy()) >= self.patience:
            log.info("%s: early stop, no val gain for %d epochs", self.stage, self.patience)
            self.model.stop_training = True


def save_model_atomic(model: keras.Model, path: Path) -> None:
    """Save a Keras model (no optimizer) under ``path`` via a temporary file + rename."""
    import warnings

    tmp = temp_path_for(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tf_keras calls .h5 "legacy"; it is fine
        model.save(tmp, include_optimizer=False)
    distribute.h5_to_float32(tmp)  # a mixed-precision model is saved as its float32 self
    os.replace(tmp, path)


def append_history(path: Path, row: dict) -> None:
    """Add one epoch's row to ``history.csv`` (atomic rewrite). A row for the same stage and
    epoch is replaced, not repeated: a run killed after its history row but before its resume
    checkpoint trains that epoch again when resumed."""
    rows = []
    if path.is_file():
        with path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f)
                    if (r.get("stage"), r.get("epoch")) != (row["stage"], str(row["epoch"]))]
    rows.append({k: ("" if row.get(k) is None else row[k]) for k in HISTORY_FIELDS})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _loss(cfg: TrainConfig):
    if cfg.loss == "focal":
        return keras.losses.CategoricalFocalCrossentropy(gamma=cfg.focal_gamma,
                                                         label_smoothing=cfg.label_smoothing)
    return keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)


def _pretrained(cfg: TrainConfig) -> bool:
    """Whether the base starts from trained weights (ImageNet, a file or ``--init``)."""
    return bool(cfg.init) or cfg.weights != "none"


def _stages(cfg: TrainConfig) -> list[tuple[str, int, float]]:
    stages = []
    if not _pretrained(cfg):
        log.info("stage 1 (transfer learning) skipped: with --weights none the base has random "
                 "weights, so a frozen base would only train the head on random features; "
                 "stage 2 trains every layer from scratch")
    elif cfg.head_epochs > 0:
        stages.append(("head", cfg.head_epochs, cfg.head_lr))
    if cfg.finetune_epochs > 0:
        stages.append(("finetune", cfg.finetune_epochs, cfg.finetune_lr))
    return stages


def _box_jitter(detector: str) -> tuple[float, float, float, float] | None:
    """(sd dx, sd dy, sd relative crop side, sd angle deg) of a detector's measured box
    spread, or None for ''."""
    if not detector:
        return None
    from fer_edge.detect.crops import box_spread

    bs = box_spread(detector)
    jitter = (bs.dx[1], bs.dy[1], bs.size[1] / bs.size[0], bs.angle_deg[1])
    log.info("crop jitter from %s's box spread (%d faces): shift std %.3f/%.3f of the side, "
             "crop side std %.1f %%, rotation std %.1f deg", bs.detector, bs.n, jitter[0],
             jitter[1], 100 * jitter[2], jitter[3])
    return jitter


def _versions() -> dict[str, str]:
    import tf_keras

    return {"fer_edge": __version__, "tensorflow": tf.__version__,
            "tf_keras": tf_keras.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "machine": platform.machine()}


class _Budget(keras.callbacks.Callback):
    """Stops training once ``minutes`` of wall-clock time inside ``fit`` (summed over the
    stages of this process, validation included) have passed; the epoch in progress ends
    early, is validated and checkpointed as usual."""

    def __init__(self, minutes: float, spent: list[float]):
        super().__init__()
        self.limit, self.spent = minutes * 60.0, spent

    def on_train_begin(self, logs=None):
        self.t0, self.before = time.time(), self.spent[0]

    def on_train_end(self, logs=None):
        self.spent[0] = self.before + time.time() - self.t0

    def fraction(self) -> float:
        """Share of the budget spent so far (0 before training starts; may pass 1)."""
        t0 = getattr(self, "t0", None)
        return 0.0 if t0 is None else (self.before + time.time() - t0) / self.limit

    def on_train_batch_end(self, batch, logs=None):
        if self.before + time.time() - self.t0 >= self.limit:
            if not self.model.stop_training:
                log.info("training budget of %.1f min reached: stopping", self.limit / 60)
            self.model.stop_training = True


def init_model(path: Path, spec: ModelSpec, labels: tuple[str, ...], dropout: float
               ) -> tuple[keras.Model, bool]:
    """Load a trained fer-edge model; give it a new softmax head when ``labels`` differ.

    Args:
        path: the model .h5 (``fer-edge train`` output).
        spec: its spec (labels in output order).
        labels: the classes to predict now, in id order.
        dropout: the new head's dropout rate (when a head is made).

    Returns:
        ``(model, new_head)``: the flat model (input ``image``, output ``probs``) and whether
        its head was replaced.
    """
    try:
        model = keras.models.load_model(str(path), compile=False)
    except Exception as exc:  # h5py/Keras raise many types for a bad file
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ModelFileError(f"--init {path}: cannot load as a Keras model ({first[:160]})"
                             ) from None
    names = [layer.name for layer in model.layers]
    if names[-1] != "probs" or POOL_LAYER not in names:
        raise ModelFileError(f"--init {path}: not a fer-edge model (no {POOL_LAYER}/probs head)")
    if tuple(labels) == tuple(spec.labels):
        return model, False
    feat = model.get_layer(POOL_LAYER).output
    x = keras.layers.Dropout(dropout, name="head_dropout")(feat)
    out = keras.layers.Dense(len(labels), activation="softmax", dtype="float32",
                             name="probs")(x)
    return keras.Model(model.input, out, name=model.name), True


def run_training(cfg: TrainConfig, dataset: Dataset | None = None) -> Path:
    """Train per ``cfg``; returns the run folder. See the module docstring for its files.

    In a multi-worker cluster every worker runs this with the same ``cfg``; only the chief
    writes the run folder; the others write to a temporary folder that is removed at the end.

    Args:
        cfg: the training config.
        dataset: faces already in memory (study scripts); ``cfg.data`` then only names them.
    """
    cfg.validate()
    init_path, init_spec = (init_source(cfg.init) if cfg.init else (None, None))
    if init_spec is not None:  # the model decides the arch and input geometry
        cfg = replace(cfg, arch=init_spec.arch, input_size=init_spec.input_size)
    cfg = replace(cfg, input_size=check_input_size(cfg.arch, cfg.input_size))
    cluster = distribute.cluster_for(cfg.distribute)  # bad TF_CONFIG fails before anything
    if cluster is None or cluster.is_chief:
        return _run_training(cfg, resolve_run_dir(cfg), dataset, init_path, init_spec)
    scratch = Path(tempfile.mkdtemp(prefix=f"fer-edge-{cluster.task_type}{cluster.task_index}-"))
    log.info("%s: not the chief, so its copy of the run files goes to %s (removed at the end)",
             cluster.name, scratch)
    try:
        return _run_training(cfg, scratch, dataset, init_path, init_spec)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run_training(cfg: TrainConfig, run: Path, dataset: Dataset | None = None,
                  init_path: Path | None = None, init_spec: ModelSpec | None = None) -> Path:
    # data first: bad input must fail before a run folder is made or a saved config rewritten
    ds = dataset if dataset is not None else read_training_data(cfg)
    if cfg.labels != "fer2013":
        from fer_edge.data.ferplus import apply_labels

        apply_labels(ds, cfg.labels, cfg.ferplus, cfg.fer2013_weight)
    check_output_dir(run, "--runs-dir/--name")
    created = not run.exists()
    run.mkdir(parents=True, exist_ok=True)
    lock_run(run)  # before anything in it is written: one process trains a run at a time
    try:
        return _train_in(run, cfg, ds, init_path, init_spec)
    except BaseException as exc:
        # a run that failed before its first epoch ended holds nothing to resume: remove
        # what start-up made, so the name is free again (never a run that has epochs)
        if created and not (run / "history.csv").exists():
            shutil.rmtree(run, ignore_errors=True)
            log.info("removed %s: the run stopped before its first epoch", run)
            exc.fer_edge_hint = ("; the run stopped before its first epoch ended and was "
                                 "removed (nothing to resume): start it again")
        raise
    finally:
        unlock_run(run)


@dataclass
class _Training:
    """What the steps of one training run share once the data and the model are ready."""

    run: Path
    cfg: TrainConfig
    setup: Setup
    model: keras.Model
    train_ds: object  # tf.data.Dataset of (faces, targets[, sample weights]) batches
    val_ds: object
    n_train: int  # training faces per epoch (after oversampling)
    steps: int  # steps per epoch
    freeze_bn: bool  # BatchNorm frozen while fine-tuning
    spent: list = field(default_factory=lambda: [0.0])  # training seconds so far (--budget-min)


@dataclass
class _Stage:
    """One stage (``head`` or ``finetune``): its plan, optimizer and checkpointed state.

    ``state`` holds tf.Variables (epoch, best, best_epoch, stale, done, planned) saved with the
    model, the optimizer and the weight EMA (or None) in ``ckpt``, managed by ``manager``.
    """

    index: int
    count: int  # stages in this run
    name: str
    epochs: int
    lr: float
    best_path: Path
    opt: object
    state: dict
    ema: object
    ckpt: object
    manager: object


def _train_in(run: Path, cfg: TrainConfig, ds, init_path: Path | None = None,
              init_spec: ModelSpec | None = None) -> Path:
    log.info("run folder: %s%s", run, " (resuming)" if cfg.resume else "")
    atomic_write_text(run / "config.json", json.dumps(
        {"config": asdict(cfg), "versions": _versions()}, indent=2, sort_keys=True) + "\n")
    counts, soft = _prepare_data(cfg, ds)
    labels = tuple(ds.class_names)
    log.info("train faces per class: %s", ", ".join(
        f"{n} {c:.0f}" for n, c in zip(labels, counts)))
    # the strategy is made before any other TensorFlow op of the process (multi-worker
    # collectives need that; EfficientNet's normalisation below builds a model); a peer that
    # does not answer or a precision the device cannot run stops here, and the folder is
    # removed again (no epoch ran)
    setup = configure_tf(cfg)
    spec = _write_spec(run, cfg, labels, init_path, init_spec)
    train_ds, val_ds, n_train = _datasets(cfg, ds, spec, setup, counts, soft)
    model = _make_model(cfg, setup, spec, labels, init_path, init_spec)
    freeze_bn = cfg.freeze_bn == "yes" or (cfg.freeze_bn == "auto" and _pretrained(cfg))
    stages = _stages(cfg)
    if not stages:
        raise ConfigError("nothing to train: every stage has 0 epochs")
    t = _Training(run, cfg, setup, model, train_ds, val_ds, n_train,
                  max(1, n_train // cfg.batch_size), freeze_bn)
    for k in range(len(stages)):
        _train_stage(t, _build_stage(t, k, stages))
    if not setup.is_chief:
        log.info("training done; the chief writes the test report")
        return run
    _write_report(run, ds, spec, cfg)
    return run


def _prepare_data(cfg: TrainConfig, ds) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply ``--limit`` and log the data; returns (per-class weight of the training split:
    face counts, or the target mass per class with soft targets; the soft targets or None)."""
    if cfg.limit > 0:
        for s in list(ds.images):
            ds.take(s, slice(0, cfg.limit))
    log.info("data %s%s", ds.summary(), f"; {ds.skipped} bad rows skipped" if ds.skipped else "")
    for note in ds.notes:
        log.info("data: %s", note)
    counts = ds.counts("train")
    soft = ds.targets.get("train")
    if soft is not None:  # class weights from the target mass per class
        counts = np.maximum(soft.sum(0), 1e-3)
    return counts, soft


def _write_spec(run: Path, cfg: TrainConfig, labels: tuple[str, ...], init_path: Path | None,
                init_spec: ModelSpec | None) -> ModelSpec:
    """The run's ModelSpec (from ``--init``'s spec, or from the architecture), written to
    ``run/spec.json``."""
    extra = {"fer_edge_version": __version__, "run": run.name,
             "weights": "init" if cfg.init else cfg.weights, "data": Path(cfg.data).name}
    if init_spec is not None:
        extra["init"] = {"model": str(init_path), "run": init_spec.extra.get("run", ""),
                         "labels": list(init_spec.labels)}
        spec = init_spec.replace(labels=labels, tta_flip=cfg.tta_flip, extra=extra)
    else:
        scale, offset = arch_normalisation(cfg.arch, cfg.weights)
        spec = ModelSpec(labels=labels, input_size=cfg.input_size, channels=3,
                         input_dtype="float32", arch=cfg.arch, tta_flip=cfg.tta_flip,
                         extra=extra, **crop_fields(), **_compact_norm(scale, offset))
    spec.write(run / "spec.json")
    return spec


def _augmentation(cfg: TrainConfig) -> tuple[Augment | None, Mix | None]:
    """(per-face augmentation, batch mixing) per ``cfg``; None where off."""
    aug = Augment(rotation_deg=cfg.rotation_deg, shift=cfg.shift, zoom=cfg.zoom,
                  brightness=cfg.brightness, contrast=cfg.contrast, fill_mode=cfg.fill_mode,
                  gamma=cfg.gamma, blur_sigma=cfg.blur_sigma, noise=cfg.noise,
                  jpeg_quality=cfg.jpeg_quality,
                  degrade_prob=cfg.degrade_prob,
                  jitter=_box_jitter(cfg.box_spread)) if cfg.augment else None
    mix = Mix(cfg.mix, cfg.mix_alpha, cfg.mix_prob) if cfg.mix != "none" else None
    return aug, mix


def _datasets(cfg: TrainConfig, ds, spec: ModelSpec, setup: Setup, counts: np.ndarray,
              soft: np.ndarray | None) -> tuple[object, object, int]:
    """(training tf.data pipeline, validation pipeline, training faces per epoch): class
    balancing (weights or oversampling), augmentation, and sharding across workers."""
    labels = tuple(ds.class_names)
    weights = class_weights(counts, cfg.imbalance, cfg.effective_beta)
    if cfg.imbalance not in ("none", "oversample"):
        log.info("class weights (%s): %s", cfg.imbalance,
                 ", ".join(f"{n} {w:.2f}" for n, w in zip(labels, weights)))
    indices = (oversample_indices(ds.labels["train"], cfg.seed)
               if cfg.imbalance == "oversample" else None)
    aug, mix = _augmentation(cfg)
    log.info("resizing %d faces to %dx%d", sum(len(ds.labels[s]) for s in ("train", "val")),
             cfg.input_size, cfg.input_size)  # seconds for FER-2013: not a silent start
    train_ds = make_dataset(ds.images["train"], ds.labels["train"], spec, cfg.batch_size,
                            training=True, aug=aug, seed=cfg.seed, indices=indices,
                            targets=soft, mix=mix,
                            sample_weights=None if cfg.imbalance in ("none", "oversample")
                            else weights)
    val_ds = make_dataset(ds.images["val"], ds.labels["val"], spec, 128, training=False)
    if setup.mode == "multiworker":
        # every worker holds the whole (in-memory) dataset; each takes its share of every batch
        options = tf.data.Options()
        policy = tf.data.experimental.AutoShardPolicy.DATA
        options.experimental_distribute.auto_shard_policy = policy
        train_ds, val_ds = train_ds.with_options(options), val_ds.with_options(options)
    n_train = len(indices) if indices is not None else len(ds.labels["train"])
    return train_ds, val_ds, n_train


def _make_model(cfg: TrainConfig, setup: Setup, spec: ModelSpec, labels: tuple[str, ...],
                init_path: Path | None, init_spec: ModelSpec | None) -> keras.Model:
    """The model to train, in the strategy's scope: from ``--init`` (new head when the classes
    differ) or built for ``spec``."""
    with setup.strategy.scope():
        if init_path is not None:
            model, new_head = init_model(init_path, init_spec, labels, cfg.dropout)
            log.info("--init %s: %s", init_path, (
                f"new {len(labels)}-class head ({', '.join(labels)}) replaces the "
                f"{init_spec.num_classes}-class one" if new_head else "same classes, head kept"))
            if cfg.bn_momentum:
                for layer in model.layers:
                    if isinstance(layer, keras.layers.BatchNormalization):
                        layer.momentum = cfg.bn_momentum
        else:
            log.info("building the model (%s, %s weights)", cfg.arch, cfg.weights)
            model = build_model(spec, cfg.weights, cfg.dropout, cfg.bn_momentum or None)
    log.info("model %s: %d layers, %.1f M parameters, input %s", model.name, len(model.layers),
             model.count_params() / 1e6, model.input_shape)
    return model


def _build_stage(t: _Training, k: int, stages: list[tuple[str, int, float]]) -> _Stage:
    """Stage ``k``: set its trainable layers, compile the model with a fresh optimizer and make
    its checkpointed state (in the strategy's scope)."""
    cfg, model = t.cfg, t.model
    stage, epochs, lr = stages[k]
    best_path = t.run / ("stage1_float.h5" if stage == "head" and len(stages) > 1
                         else "model_float.h5")
    # from scratch nothing is pretrained, so "fine-tuning" must train every layer
    blocks = cfg.unfreeze_blocks if _pretrained(cfg) else -1
    counts_t = set_stage(model, stage, blocks, t.freeze_bn)
    log.info("stage %d/%d %s: %d epochs, lr %.2g, %d trainable layers (%.1f M params)%s",
             k + 1, len(stages), stage, epochs, lr, counts_t["trainable_layers"],
             counts_t["trainable_params"] / 1e6, ", BatchNorm frozen" if (
                 stage == "finetune" and t.freeze_bn) else "")
    with t.setup.strategy.scope():
        opt = keras.optimizers.AdamW(learning_rate=lr, weight_decay=cfg.weight_decay,
                                     global_clipnorm=cfg.clip_norm or None)
        opt.exclude_from_weight_decay(var_names=["bias", "beta", "gamma"])
        model.compile(optimizer=opt, loss=_loss(cfg), metrics=["accuracy"],
                      jit_compile=cfg.xla)
        state = {"epoch": tf.Variable(0, dtype=tf.int64), "best": tf.Variable(-1.0),
                 "best_epoch": tf.Variable(0, dtype=tf.int64),
                 "stale": tf.Variable(0, dtype=tf.int64),
                 "done": tf.Variable(False),
                 "planned": tf.Variable(0, dtype=tf.int64)}
        ema = None
        if cfg.ema > 0:
            from fer_edge.train.ema import WeightEMA

            ema = WeightEMA(model, cfg.ema)
        ckpt = tf.train.Checkpoint(model=model, optimizer=opt, **state,
                                   **({"ema": ema} if ema is not None else {}))
        if t.setup.mode == "multiworker":
            # every worker creates the same variables in the same order (creating one is a
            # collective op): optimizer slots and the checkpoint's save counter now, not
            # lazily where only the chief (which restores) would make them
            opt.build(model.trainable_variables)
            ckpt.save_counter  # noqa: B018 - the property creates the counter
    manager = tf.train.CheckpointManager(ckpt, str(t.run / "ckpt" / stage), max_to_keep=1)
    return _Stage(k, len(stages), stage, epochs, lr, best_path, opt, state, ema, ckpt, manager)


def _train_stage(t: _Training, st: _Stage) -> None:
    """Resume the stage if it has a checkpoint, then train what remains of it (nothing when it
    is complete or the budget is spent)."""
    _resume_stage(t, st)
    start = _first_epoch(st)
    if start is None:
        return
    st.state["planned"].assign(st.epochs)
    callbacks = _stage_callbacks(t, st)
    if callbacks is None:
        return
    _fit_stage(t, st, start, callbacks)


def _resume_stage(t: _Training, st: _Stage) -> None:
    """Restore the stage's checkpoint (or start a later stage from the best stage-1 weights);
    with several workers, every worker then takes the chief's variables."""
    model, state, ema = t.model, st.state, st.ema
    if st.manager.latest_checkpoint:
        st.ckpt.restore(st.manager.latest_checkpoint).expect_partial()
        log.info("%s: resumed after epoch %d (best val %.4f)%s", st.name,
                 int(state["epoch"].numpy()), float(state["best"].numpy()),
                 "" if ema is None else f"; weight EMA after {int(ema.updates.numpy())} "
                 "updates")
    if st.index > 0:
        prev_best = t.run / "stage1_float.h5"
        if not st.manager.latest_checkpoint and prev_best.is_file():
            model.load_weights(prev_best)
            log.info("%s starts from the best stage-1 weights", st.name)
    if t.setup.mode == "multiworker":
        # only the chief has the run folder (and so a checkpoint to resume from)
        distribute.sync_from_chief(t.setup, [
            *model.variables, *st.opt.variables(), *state.values(), st.ckpt.save_counter,
            *([] if ema is None else [*ema.shadow, ema.updates])])


def _first_epoch(st: _Stage) -> int | None:
    """The epoch to start the stage at, or None when it is already complete."""
    state, stage, epochs = st.state, st.name, st.epochs
    start = int(state["epoch"].numpy())
    planned = int(state["planned"].numpy()) or start  # 0 in checkpoints made before it
    if bool(state["done"].numpy()) and start < epochs and epochs > planned:
        # --resume with more epochs than the finished run had: continue on the longer
        # schedule (the learning rate jumps to where the longer cosine is at `start`)
        log.info("%s: schedule extended from %d to %d epochs; continuing after epoch %d",
                 stage, planned, epochs, start)
        state["done"].assign(False)
        state["stale"].assign(0)
    elif bool(state["done"].numpy()) or start >= epochs:
        log.info("%s: already complete (%d epochs)", stage, start)
        return None
    return start


def _stage_callbacks(t: _Training, st: _Stage) -> list | None:
    """The stage's Keras callbacks (schedule, checkpoint, progress; EMA, budget, TensorBoard
    when on), or None when the training budget is already spent (stage skipped)."""
    cfg = t.cfg
    budget = _Budget(cfg.budget_min, t.spent) if cfg.budget_min > 0 else None
    callbacks = [_Schedule(st.lr, st.epochs, t.steps, cfg.warmup_epochs, budget),
                 _Checkpoint(t.run, st.name, st.best_path, st.manager, st.state, cfg.patience,
                             t.n_train, st.ema, t.val_ds),
                 _Progress(st.name, st.epochs, t.steps, cfg.batch_size)]
    if st.ema is not None:
        from fer_edge.train.ema import EMACallback

        if not st.manager.latest_checkpoint:
            st.ema.reset()
        callbacks.insert(0, EMACallback(st.ema))
    if cfg.budget_min > 0:
        if t.spent[0] >= cfg.budget_min * 60:
            log.info("%s skipped: the training budget is spent", st.name)
            return None
        callbacks.append(budget)
    if cfg.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(t.run / "tensorboard" / st.name),
                                                     profile_batch=0))
    return callbacks


def _fit_stage(t: _Training, st: _Stage, start: int, callbacks: list) -> None:
    """Train the stage from epoch ``start``, mark it done and save its checkpoint; before a
    later stage, reload the stage's best weights."""
    try:
        t.model.fit(t.train_ds, validation_data=None if st.ema is not None else t.val_ds,
                    epochs=st.epochs, initial_epoch=start, steps_per_epoch=t.steps,
                    callbacks=callbacks, verbose=0)
    except distribute.PEER_ERRORS as exc:
        if t.setup.mode != "multiworker":
            raise
        raise distribute.peer_error(t.setup, exc) from None
    st.state["done"].assign(True)
    st.manager.save()
    log.info("%s done: best val accuracy %.4f at epoch %d", st.name,
             float(st.state["best"].numpy()), int(st.state["best_epoch"].numpy()))
    if st.index + 1 < st.count and st.best_path.is_file():
        t.model.load_weights(st.best_path)


def _write_report(run: Path, ds, spec: ModelSpec, cfg: TrainConfig) -> None:
    """The chief's last step: the final model in place, then the test report."""
    from fer_edge.train.report import write_test_report

    if not (run / "model_float.h5").is_file() and (run / "stage1_float.h5").is_file():
        os.replace(run / "stage1_float.h5", run / "model_float.h5")  # budget ended in stage 1
    write_test_report(run, ds, spec, cfg)


def _compact_norm(scale: tuple[float, ...], offset: tuple[float, ...]) -> dict:
    """Spec normalisation fields: one number when every channel agrees, else per channel."""
    out = {}
    for key, v in (("norm_scale", scale), ("norm_offset", offset)):
        out[key] = v[0] if len(set(v)) == 1 else tuple(v)
    return out
