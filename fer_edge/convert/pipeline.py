"""``fer-edge convert``: builds from a float model, then the per-class parity gate. Heavy tier.

Order: float TFLite and ONNX first (seconds), then QAT and the int8 TFLite (the slow part),
and the int8 ONNX from that TFLite (or, with ``--onnx-int8-from ort-*``, from onnxruntime's
own calibration of the float ONNX). Every build has two outputs, the probabilities and the
embedding (the pooled features); the embedding's per-feature mean and std are measured on
training faces through the light runtime, on a draft of the build under a temporary name,
and recorded in its spec. Each build is then renamed into place, with its spec embedded and a
sidecar ``.spec.json``; an existing build is never replaced without ``--force``. Then every
build's probabilities are computed through the light runtime on the same test faces as the
float Keras model and compared class by class.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_edge.convert.config import ConvertConfig
from fer_edge.data import load_dataset_for
from fer_edge.errors import (
    AccuracyGateError,
    ConfigError,
    FerEdgeError,
    ModelFileError,
    SpecError,
)
from fer_edge.evaluate import build_facts, compare, predict_all, size_mb, write_report
from fer_edge.io import atomic_write_bytes, check_output_dir, temp_path_for
from fer_edge.preprocess import to_model_input
from fer_edge.runtime import load_predictor
from fer_edge.runtime.embedding import embedding_stats, with_stats
from fer_edge.runtime.spec_io import sidecar_path
from fer_edge.spec import ModelSpec

log = logging.getLogger(__name__)


def resolve_source(source: str) -> tuple[Path, Path, dict]:
    """(float model .h5, spec.json, run config dict or {}) from a run folder or a model file."""
    p = Path(source)
    if p.is_dir():
        model, spec, cfg = p / "model_float.h5", p / "spec.json", p / "config.json"
        if not model.is_file():
            raise ModelFileError(f"{p}: no model_float.h5 in this folder; is it a finished "
                                 "`fer-edge train` run?")
        return model, spec, _run_config(cfg)
    if p.is_file():
        return p, p.with_name("spec.json"), {}
    raise ModelFileError(f"{p}: no such run folder or model file")


def _run_config(path: Path) -> dict:
    """The ``config`` dict of a run's config.json ({} when the file is absent).

    Raises:
        ConfigError: the file is not a config.json that `fer-edge train` wrote.
    """
    if not path.is_file():
        return {}
    try:
        cfg = json.loads(path.read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a `fer-edge train` config.json ({type(exc).__name__}: "
                          f"{exc}); restore it, or pass --data (and move it away)") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: its 'config' is not a table; restore the run's config.json")
    return cfg


def _read_source_spec(path: Path) -> ModelSpec:
    """The float model's spec.json, whose problems name the fix for a train run's spec (which
    only `fer-edge train` writes: re-exporting does not make one).

    Raises:
        SpecError: missing or unreadable, with what to do.
    """
    try:
        return ModelSpec.read(path)
    except SpecError as exc:
        problem = str(exc).split("; ")[0]
        if "schema" in problem:  # a run trained by an older fer-edge
            raise SpecError(f"{problem}; the run was trained by an older fer-edge: train it "
                            "again with this version (a run still in progress rewrites its "
                            "spec.json on `fer-edge train --resume`)") from None
        raise SpecError(f"{problem}; convert needs the spec.json that `fer-edge train` wrote "
                        "beside model_float.h5: restore it from a backup or a copy of the run, "
                        "or train the run again") from None


def build_names(spec: ModelSpec) -> dict[str, str]:
    stem = f"fer_{spec.arch}_{spec.input_size}"
    return {"tflite_fp32": f"{stem}_fp32.tflite", "tflite_int8": f"{stem}_int8.tflite",
            "onnx_fp32": f"{stem}_fp32.onnx", "onnx_int8": f"{stem}_int8.onnx"}


def plan_builds(cfg: ConvertConfig, spec: ModelSpec, out: Path
                ) -> tuple[dict[str, str], dict[str, str]]:
    """(builds to make, builds of ``out`` kept as they are): build key -> file name.

    A requested build that already exists is kept (not rebuilt) unless ``--force``; so adding
    the int8 builds to a converted run needs no ``--force`` and leaves the float builds alone.
    Kept builds are checked again and stay in the report.

    Raises:
        ConfigError: every build switched off, or every requested one exists (no ``--force``).
        OutputError: ``out`` cannot be written.
    """
    wanted = {k: getattr(cfg, k) for k in ("tflite_fp32", "onnx_fp32")}
    wanted.update({k: cfg.int8 and getattr(cfg, k) for k in ("tflite_int8", "onnx_int8")})
    every = build_names(spec)
    names = {k: n for k, n in every.items() if wanted[k]}
    if not names:
        raise ConfigError("every build is switched off; nothing to do")
    check_output_dir(out, "--out")
    for n in every.values():
        if (out / n).is_dir():
            raise ConfigError(f"{out / n}: is a folder where a build goes; move it away")
    existing = {k for k, n in names.items() if (out / n).exists()}
    if existing == set(names) and not cfg.force:
        hint = "" if cfg.int8 else ", add builds with --int8"
        raise ConfigError(f"{out}: every requested build exists ({', '.join(names.values())});"
                          f" pass --force to rebuild them{hint}, or --out another folder")
    if not cfg.force:
        names = {k: n for k, n in names.items() if k not in existing}
    kept = {k: n for k, n in every.items() if k not in names and (out / n).is_file()}
    for n in kept.values():
        try:
            kept_spec = load_predictor(out / n, 1).spec
        except FerEdgeError as exc:
            raise ConfigError(f"{out / n}: exists but does not load ({exc}); pass --force (with "
                              "the flags that request it) to rebuild it, or --out another "
                              "folder") from None
        if tuple(kept_spec.labels) != tuple(spec.labels):
            raise ConfigError(f"{out / n}: a build kept from before has other labels than this "
                              "model; pass --force (with the flags that request it) to rebuild "
                              "it, or --out another folder")
        if kept_spec.embedding is None:
            raise ConfigError(f"{out / n}: a build kept from before has no embedding output (an "
                              "older `fer-edge convert` made it); pass --force (with the flags "
                              "that request it) to rebuild it, or --out another folder")
        log.info("keeping %s as it is (already built; --force rebuilds a requested build)", n)
    return names, kept


def _earlier_facts(out: Path) -> dict[str, dict]:
    """Build facts of the report already in ``out`` (file name -> facts), or {}."""
    try:
        return dict(json.loads((out / "report.json").read_text()).get("builds", {}))
    except (OSError, ValueError, AttributeError):
        return {}


def _kept_facts(path: Path, earlier: dict, pred, x1: np.ndarray, runs: int) -> dict:
    """A kept build's facts: the earlier report's (its QAT log and latencies) when the file is
    the one measured then, else measured now."""
    from fer_edge.evaluate import sha256

    old = earlier.get(path.name)
    if isinstance(old, dict) and old.get("sha256") == sha256(path):
        return old
    return build_facts(path, pred, x1, runs)


def _write_build(path: Path, data: bytes, spec: ModelSpec, faces: EmbeddingFaces) -> ModelSpec:
    """Measure a build's embedding statistics, then write it and its sidecar spec.

    The draft build (``data``, its spec's embedding without ``mean``/``std``) is loaded through
    the light runtime under a temporary name, its embeddings of ``faces`` give the statistics
    (:func:`~fer_edge.runtime.embedding.embedding_stats`), and the build with the final spec,
    loaded again, replaces ``path`` atomically: a build the runtime cannot load never takes
    the final name. Returns the final (bound) spec.
    """
    from fer_edge.convert.export import rebind

    tmp = temp_path_for(path)
    try:
        tmp.write_bytes(data)
        mean, std = embedding_stats(_load_draft(tmp, path, None), faces.images)
        spec = spec.replace(embedding=with_stats(spec.embedding, mean, std),
                            extra={**spec.extra, "embedding_stats": faces.describe(spec)})
        data, spec = rebind(data, path.suffix, spec)
        tmp.write_bytes(data)
        _load_draft(tmp, path, 1)
        atomic_write_bytes(path, data)
    finally:
        tmp.unlink(missing_ok=True)
    spec.write(sidecar_path(path))
    log.info("wrote %s (%s MB; embedding %s, %d features)", path, size_mb(len(data)),
             spec.embedding.output, spec.embedding.size)
    return spec


def _load_draft(tmp: Path, path: Path, threads: int | None):
    """The build at ``tmp`` loaded in the light runtime (None: all cores), or ModelFileError
    naming ``path``."""
    try:
        return load_predictor(tmp, threads)
    except FerEdgeError as exc:
        raise ModelFileError(f"{path.name}: the build does not load in the runtime, so it "
                             f"was not written ({exc})" + (
                                 "; try the default --opset 17" if path.suffix == ".onnx"
                                 else "")) from None


@dataclass(frozen=True)
class EmbeddingFaces:
    """The training faces every build's embedding statistics are measured on.

    Attributes:
        images: (N, 48, 48) uint8 grey faces, a seeded random pick of the training split in
            dataset order.
        source: where they come from, e.g. "fer2013.npz train split, 2000 of 28709 faces
            (seed 3)".
    """

    images: np.ndarray
    source: str

    def describe(self, spec: ModelSpec) -> str:
        return self.source + (", flip-averaged" if spec.tta_flip else "")


def _embedding_faces(ds, data: str, n: int, seed: int) -> EmbeddingFaces:
    """``n`` training faces picked at random with ``seed`` (0: all of them)."""
    total = len(ds.labels["train"])
    if not total:
        raise ConfigError(f"{data}: no training faces to measure the embedding statistics on")
    if n <= 0 or n >= total:
        return EmbeddingFaces(ds.images["train"], f"{Path(data).name} train split, all "
                              f"{total} faces")
    pick = np.sort(np.random.default_rng(seed).choice(total, n, replace=False))
    return EmbeddingFaces(ds.images["train"][pick], f"{Path(data).name} train split, {n} of "
                          f"{total} faces (seed {seed})")


def check_model_matches_spec(model, spec: ModelSpec, model_path: Path, spec_path: Path) -> None:
    """The float model's input and output must be what its spec says, before any build."""
    want_in = (spec.input_size, spec.input_size, spec.channels)
    got_in = tuple(model.input_shape[1:])
    got_out = model.output_shape[-1]
    if got_in != want_in:
        raise SpecError(f"{spec_path}: says input {want_in[0]}x{want_in[1]}x{want_in[2]} but "
                        f"{model_path.name} takes {'x'.join(map(str, got_in))}; the spec "
                        "belongs to another model (restore the run's own spec.json)")
    if got_out != spec.num_classes:
        raise SpecError(f"{spec_path}: lists {spec.num_classes} labels but {model_path.name} "
                        f"has {got_out} outputs; restore the run's own spec.json")


def _calibration_faces(ds, spec: ModelSpec, n: int, seed: int) -> np.ndarray:
    """(min(n, N_train), S, S, C) float32 model inputs of a seeded random pick of training
    faces, in dataset order."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(ds.labels["train"]), min(n, len(ds.labels["train"])), replace=False)
    return to_model_input(ds.images["train"][np.sort(pick)], spec)


def _calibrate(qat, float_model, calib_x: np.ndarray, ds, spec: ModelSpec,
               cfg: ConvertConfig) -> tuple[dict, tuple[bytes, ModelSpec] | None]:
    """Set the QAT graph's ranges; with several batch sizes, keep the one whose int8 TFLite
    agrees best with float on the validation split (through LiteRT, flip TTA per the spec).

    Returns:
        ``({"batch_size": chosen, "tried": [{"batch_size", "val_agreement"}, ...]}, build)``:
        ``build`` is the chosen int8 TFLite (bytes, spec) when candidates were converted,
        else None.
    """
    import tempfile

    from fer_edge.convert import export
    from fer_edge.convert.qat import calibrate_ranges, face_ranges
    from fer_edge.train.pipeline import predict_probs

    sizes = cfg.calib_batch_sizes()
    ranges = face_ranges(float_model, calib_x)
    if len(sizes) == 1:
        calibrate_ranges(qat, float_model, calib_x, sizes[0], ranges=ranges)
        return {"batch_size": sizes[0], "tried": []}, None
    if not len(ds.labels["val"]):
        raise ConfigError("--calib-select needs a validation split to choose on")
    x_val = ds.images["val"]
    want = predict_probs(float_model, x_val, spec, tta_flip=spec.tta_flip).argmax(1)
    tried, best = [], None
    with tempfile.TemporaryDirectory() as d:
        for b in sizes:
            calibrate_ranges(qat, float_model, calib_x, b, ranges=ranges)
            built = export.tflite_int8(qat, spec)
            path = Path(d) / f"b{b}.tflite"
            path.write_bytes(built[0])
            agree = float(np.mean(predict_all(load_predictor(path), x_val).argmax(1) == want))
            tried.append({"batch_size": b, "val_agreement": round(agree, 5)})
            log.info("calibration in batches of %d: int8 TFLite agrees with float on %.4f of "
                     "%d validation faces", b, agree, len(want))
            if best is None or agree > best[0]:
                best = (agree, b, built)
    calibrate_ranges(qat, float_model, calib_x, best[1], ranges=ranges)
    log.info("calibration: keeping batches of %d", best[1])
    return {"batch_size": best[1], "tried": tried}, best[2]


@dataclass
class _ConvertJob:
    """What the convert steps share: the source, its data, the float model and what was built.

    ``names`` maps build keys (``tflite_int8`` ...) to the file names to write this run,
    ``kept`` the earlier builds left in place; ``specs`` collects the spec of each build
    written; ``qat_log``/``calibration`` are set when the QAT graph was trained.
    """

    cfg: ConvertConfig
    model_path: Path
    spec_path: Path
    run_cfg: dict
    spec: ModelSpec
    data: str
    out: Path
    names: dict[str, str]
    kept: dict
    ds: object
    emb_faces: EmbeddingFaces
    float_model: object = None
    specs: dict[str, ModelSpec] = field(default_factory=dict)
    qat_log: object = None
    calibration: dict | None = None

    @property
    def ort_int8(self) -> bool:
        """The int8 ONNX comes from onnxruntime's calibration of the float ONNX."""
        return "onnx_int8" in self.names and self.cfg.onnx_int8_from.startswith("ort-")

    @property
    def onnx_int8_from_qat(self) -> bool:
        """The int8 ONNX is converted from the QAT int8 TFLite."""
        return "onnx_int8" in self.names and not self.ort_int8

    def write(self, key: str, data: bytes, spec: ModelSpec) -> None:
        """Write build ``key`` into place and keep its spec."""
        self.specs[key] = _write_build(self.out / self.names[key], data, spec, self.emb_faces)


def run_convert(cfg: ConvertConfig) -> dict:
    """Convert per ``cfg``; returns the parity result. Raises AccuracyGateError on failure."""
    cfg.validate()
    job = _prepare(cfg)
    _load_float_model(job)
    job.out.mkdir(parents=True, exist_ok=True)
    _export_float_builds(job)
    if "tflite_int8" in job.names or job.onnx_int8_from_qat:
        _export_qat_builds(job)
    result, facts = _parity_check(job)
    return _report_and_gate(job, result, facts)


def _prepare(cfg: ConvertConfig) -> _ConvertJob:
    """Resolve the source, its spec, the dataset and the builds to make (nothing written)."""
    model_path, spec_path, run_cfg = resolve_source(cfg.source)
    # every build records the crop rule calibrated for each face detector
    spec = _read_source_spec(spec_path)
    data = cfg.data or run_cfg.get("data", "")
    if not data:
        raise ConfigError("no dataset: pass --data (needed for QAT, calibration and the check)")
    out = Path(cfg.out) if cfg.out else model_path.parent / "export"
    names, kept = plan_builds(cfg, spec, out)
    ds = load_dataset_for(data, spec.labels, seed=run_cfg.get("seed", 0),
                          skip_unknown_classes=cfg.skip_unknown_classes
                          or bool(run_cfg.get("skip_unknown_classes", False)))
    log.info("data %s", ds.summary())
    emb_faces = _embedding_faces(ds, data, cfg.embedding_faces, cfg.seed + 3)
    return _ConvertJob(cfg, model_path, spec_path, run_cfg, spec, data, out, names, kept, ds,
                       emb_faces)


def _load_float_model(job: _ConvertJob) -> None:
    """Seed Keras, load the float model and check it against the spec and the embedding."""
    from fer_edge.convert import export
    from fer_edge.train._keras import keras

    keras.utils.set_random_seed(job.cfg.seed)
    try:
        job.float_model = keras.models.load_model(str(job.model_path), compile=False)
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{job.model_path}: cannot load the float model ({exc})") from None
    check_model_matches_spec(job.float_model, job.spec, job.model_path, job.spec_path)
    export.with_embedding(job.float_model)  # no pooling layer to export: refused before any build


def _export_float_builds(job: _ConvertJob) -> None:
    """The float TFLite and ONNX builds, and the int8 ONNX when onnxruntime calibrates it."""
    from fer_edge.convert import export

    cfg, spec = job.cfg, job.spec
    if "tflite_fp32" in job.names:
        job.write("tflite_fp32", *export.tflite_float(job.float_model, spec))
    if "onnx_fp32" not in job.names and not job.ort_int8:
        return
    onnx_b, s = export.onnx_float(job.float_model, spec, cfg.opset)
    if "onnx_fp32" in job.names:
        job.write("onnx_fp32", onnx_b, s)
    if job.ort_int8:
        calib = _calibration_faces(job.ds, spec, cfg.calib_faces, cfg.seed)
        log.info("int8 ONNX: onnxruntime calibration on %d training faces", len(calib))
        job.write("onnx_int8", *export.onnx_int8(onnx_b, spec, calib,
                                                 cfg.onnx_int8_from.removeprefix("ort-")))


def _export_qat_builds(job: _ConvertJob) -> None:
    """Calibrate and fine-tune the QAT graph, then write the int8 TFLite and/or the int8 ONNX
    converted from it."""
    from fer_edge.convert import export
    from fer_edge.convert.qat import build_qat_model, run_qat

    cfg, ds, spec = job.cfg, job.ds, job.spec
    qat = build_qat_model(job.float_model)
    job.calibration, chosen = _calibrate(
        qat, job.float_model, _calibration_faces(ds, spec, cfg.calib_faces, cfg.seed + 1),
        ds, spec, cfg)
    steps_full = max(1, len(ds.labels["train"]) // cfg.qat_batch_size)
    steps = min(steps_full, cfg.qat_steps) if cfg.qat_steps else steps_full
    log.info("QAT: %d epoch(s) x %d steps of %d faces, lr %g", cfg.qat_epochs, steps,
             cfg.qat_batch_size, cfg.qat_lr)
    train_ds, smoothing = _qat_training_data(job, steps)
    sel_x, sel_ref = _qat_selection_faces(job)
    job.qat_log = run_qat(qat, train_ds, steps, cfg.qat_epochs, cfg.qat_lr, smoothing,
                          cfg.qat_freeze_bn, sel_x, sel_ref)
    if cfg.qat_epochs == 0 and chosen is not None:
        tfl_b, tfl_spec = chosen  # the selected build itself
    else:
        tfl_b, tfl_spec = export.tflite_int8(qat, spec)
    if "tflite_int8" in job.names:
        job.write("tflite_int8", tfl_b, tfl_spec)
    if job.onnx_int8_from_qat:
        job.write("onnx_int8", *export.onnx_int8_from_tflite(tfl_b, spec, cfg.opset))


def _qat_training_data(job: _ConvertJob, steps: int) -> tuple[object, float]:
    """(QAT training dataset or None, label smoothing): distillation targets from the float
    model with ``--qat-target float``, else the training labels; None without fine-tuning."""
    from fer_edge.convert.qat import distillation_dataset
    from fer_edge.train.pipeline import make_dataset

    cfg, ds = job.cfg, job.ds
    if cfg.qat_epochs <= 0:
        return None, 0.0  # no fine-tuning: no QAT data to prepare
    if cfg.qat_target == "float":
        return distillation_dataset(job.float_model, ds.images["train"], job.spec,
                                    steps * max(cfg.qat_epochs, 1) * cfg.qat_batch_size,
                                    cfg.qat_batch_size, cfg.seed), 0.0
    return (make_dataset(ds.images["train"], ds.labels["train"], job.spec,
                         cfg.qat_batch_size, training=True, seed=cfg.seed).repeat(),
            job.run_cfg.get("label_smoothing", 0.0))


def _qat_selection_faces(job: _ConvertJob) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(validation inputs, float probabilities) to pick the best QAT epoch on, or (None, None)."""
    cfg, ds = job.cfg, job.ds
    if not (cfg.qat_select and cfg.qat_epochs > 0 and len(ds.labels["val"])):
        return None, None
    sel_x = to_model_input(ds.images["val"], job.spec)
    return sel_x, job.float_model.predict(sel_x, batch_size=256, verbose=0)


def _parity_check(job: _ConvertJob) -> tuple[dict, dict]:
    """Every build (new and kept) against the float model through the light runtime.

    Returns ``(result of compare(), facts per file name)``.
    """
    from fer_edge.train.pipeline import predict_probs

    cfg, spec, out = job.cfg, job.spec, job.out
    x, y = job.ds.images[cfg.split], job.ds.labels[cfg.split]
    if cfg.limit:
        x, y = x[:cfg.limit], y[:cfg.limit]
    log.info("parity check on %d %s faces (flip TTA %s)", len(y), cfg.split,
             "on" if spec.tta_flip else "off")
    reference = predict_probs(job.float_model, x, spec, tta_flip=spec.tta_flip)
    probs, facts = {}, {}
    x1 = to_model_input(x[:1], spec)
    earlier = _earlier_facts(out)
    for key, name in build_names(spec).items():
        if key not in job.names and key not in job.kept:
            continue
        pred = load_predictor(out / name)
        probs[name] = predict_all(pred, x)
        facts[name] = (build_facts(out / name, pred, x1, cfg.latency_runs)
                       if key in job.names
                       else _kept_facts(out / name, earlier, pred, x1, cfg.latency_runs))
    facts["float"] = {"file": job.model_path.name, "bytes": job.model_path.stat().st_size}
    _add_qat_facts(job, facts)
    result = compare(spec.labels, y, probs, reference, "float (Keras)", cfg.gate())
    result["split"], result["data"] = cfg.split, Path(job.data).name
    return result, facts


def _add_qat_facts(job: _ConvertJob, facts: dict) -> None:
    """Record the QAT log and the calibration on the builds that came from the QAT graph."""
    if job.qat_log is None:
        return
    for k in ("tflite_int8", "onnx_int8"):
        if k in job.names and not (k == "onnx_int8" and job.ort_int8):
            facts[job.names[k]]["qat"] = job.qat_log
            facts[job.names[k]]["calibration"] = job.calibration


def _report_and_gate(job: _ConvertJob, result: dict, facts: dict) -> dict:
    """Write report.md, log one line per build, raise AccuracyGateError on a gate failure."""
    out = job.out
    write_report(out, result, facts, f"Parity: {job.model_path.parent.name}, {job.cfg.split} split")
    log.info("report: %s", out / "report.md")
    for name, e in result["builds"].items():
        log.info("%-32s acc %.2f%% (%+.2f pp), agreement %.3f, %s", name,
                 100 * e["report"]["accuracy"], e["delta_pp"], e["agreement"],
                 "FAIL" if e["failures"] else "pass")
    fails = [m for e in result["builds"].values() for m in e["failures"]]
    if fails:
        raise AccuracyGateError(f"{len(fails)} gate failure(s): " + "; ".join(fails[:3]) +
                                f" (report: {out / 'report.md'})")
    return result
