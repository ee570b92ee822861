"""``TrainConfig``: one config object for ``fer-edge train``. Light tier (no TensorFlow)."""

from __future__ import annotations

from dataclasses import dataclass

from fer_edge.config import MAX_THREADS, check_config, opt
from fer_edge.errors import ConfigError
from fer_edge.options import check_labels, ferplus_opt, labels_opt
from fer_edge.train.backbones import ARCHS, check_input_size

#: the largest --batch-size (large-batch multi-GPU runs use a few thousand)
MAX_BATCH = 65536


@dataclass(frozen=True)
class TrainConfig:
    """``fer-edge train``: InceptionV3 on FER-2013, transfer learning then fine-tuning."""

    SECTION = "train"

    data: str = opt("", "FER-2013 as fer2013.csv, a .npz (images, labels, usage), the Kaggle "
                    "train/+test/ folder, or a folder of <class>/ folders")
    name: str = opt("", "run name (folder under --runs-dir); default <arch>_<input-size>, "
                    "numbered when taken")
    runs_dir: str = opt("runs/train", "where run folders go")
    labels: str = labels_opt("label source: the FER-2013 labels, FER+ plurality labels, or "
                             "FER+ vote distributions as soft targets (needs --ferplus; see "
                             "fer_edge/data/ferplus.py for contempt/unknown/not-a-face votes)")
    ferplus: str = ferplus_opt()
    fer2013_weight: float = opt(0.0, "--labels ferplus-soft: share of the FER-2013 one-hot "
                                "label mixed into the FER+ vote target, in [0, 1]", ge=0, le=1)
    skip_unknown_classes: bool = opt(False, "class-folder data: skip folders naming no FER-2013 "
                                     "class (e.g. contempt) instead of failing")
    resume: bool = opt(False, "continue the run --name (or the newest run) from its last epoch")
    arch: str = opt("inception_v3", "backbone, a Keras application with include_top=False ("
                    + ", ".join(ARCHS) + "; tiny_cnn is a test-size stand-in; sizes and "
                    "normalisation: train/README.md)", ARCHS)
    weights: str = opt("imagenet", "backbone init: imagenet (downloaded by Keras), none "
                       "(from scratch), or PATH to a local include_top=False weights .h5 of "
                       "the arch")
    input_size: int = opt(0, "model input side in pixels; 0 = the arch's default (75 for "
                          "inception_v3, its minimum; see train/README.md for each arch)")
    init: str = opt("", "start from a trained fer-edge model: a run folder or a model_float.h5 "
                    "with its spec.json beside it (arch, input size and normalisation come "
                    "from it; with --data a folder of <class>/ folders the classes are the "
                    "folder names, and a new head replaces its own when they differ)")
    budget_min: float = opt(0.0, "stop training after this many minutes of training "
                            "(all stages; the best model so far is kept); 0 = no limit", ge=0)
    batch_size: int = opt(64, "batch size (global, across GPUs; at most the number of "
                          "training faces)", ge=1, le=MAX_BATCH)
    head_epochs: int = opt(5, "stage 1 (transfer learning): epochs with the base frozen; "
                           "skipped with --weights none")
    head_lr: float = opt(1e-3, "stage 1 learning rate", gt=0)
    finetune_epochs: int = opt(20, "stage 2 (fine-tuning) epochs")
    finetune_lr: float = opt(1e-4, "stage 2 peak learning rate (cosine decay)", gt=0)
    unfreeze_blocks: int = opt(2, "stage 2: unfreeze the top N of the 11 Inception blocks "
                               "(mixed0..mixed10); -1 = all layers", ge=-1)
    freeze_bn: str = opt("auto", "keep BatchNorm in inference mode while fine-tuning: auto = "
                         "yes for pretrained weights, no from scratch", ("auto", "yes", "no"))
    warmup_epochs: int = opt(1, "linear learning-rate warm-up epochs at the start of each stage")
    patience: int = opt(8, "early stopping: epochs without val accuracy gain")
    weight_decay: float = opt(1e-4, "AdamW weight decay")
    clip_norm: float = opt(0.0, "clip the global gradient norm to this (0 = off)")
    dropout: float = opt(0.5, "dropout before the softmax head", ge=0, lt=1)
    bn_momentum: float = opt(0.0, "BatchNorm moving-average momentum; 0 = the architecture's "
                             "default (0.99 for InceptionV3). 0.9 tracks a network trained from "
                             "scratch closely enough for early validation to mean something",
                             ge=0, lt=1)
    imbalance: str = opt("none", "class-imbalance handling", ("none", "inverse", "sqrt_inverse",
                                                              "effective", "oversample"))
    effective_beta: float = opt(0.999, "beta of the effective-number class weights", gt=0, lt=1)
    loss: str = opt("ce", "loss: cross-entropy or focal", ("ce", "focal"))
    label_smoothing: float = opt(0.1, "label smoothing of the cross-entropy/focal loss",
                                 ge=0, lt=1)
    focal_gamma: float = opt(2.0, "focal loss gamma")
    augment: bool = opt(True, "augment train faces (flip, rotation, shift, zoom, "
                        "brightness, contrast)")
    rotation_deg: float = opt(10.0, "max random rotation, degrees", ge=0, le=180)
    shift: float = opt(0.1, "max random shift, fraction of the side", ge=0, lt=1)
    zoom: float = opt(0.1, "max random zoom, fraction", ge=0, lt=1)
    brightness: float = opt(0.2, "max random brightness change, fraction of 255", ge=0, le=1)
    contrast: float = opt(0.2, "max random contrast change, fraction", ge=0, le=1)
    box_spread: str = opt("", "crop jitter from a detector's measured box spread "
                          "(blazeface-full, auto, ...; fer_edge/assets/face_crops.json): Gaussian "
                          "shift, scale and rotation with its stds, replacing --shift, --zoom "
                          "and --rotation-deg; '' = those uniform ranges")
    fill_mode: str = opt("reflect", "how the affine warp fills outside the face: reflect, or "
                         "nearest (edge replication, what the demo's crop does past the frame)",
                         ("reflect", "nearest"))
    gamma: float = opt(0.0, "max |log gamma| of a random gamma curve per face (0 = off)",
                       ge=0, le=2)
    blur_sigma: float = opt(0.0, "max Gaussian blur sigma in 48-px face pixels, drawn per face "
                            "with probability --degrade-prob (0 = off)", ge=0, le=8)
    noise: float = opt(0.0, "max std of additive Gaussian noise, fraction of 255, per face "
                       "with probability --degrade-prob (0 = off)", ge=0, le=1)
    jpeg_quality: int = opt(0, "lowest JPEG quality of a random re-encode per face (uniform up "
                            "to 95) with probability --degrade-prob (0 = off)", ge=0, le=95)
    degrade_prob: float = opt(0.5, "probability of each of blur, noise and JPEG per face",
                              ge=0, le=1)
    mix: str = opt("none", "batch mixing of faces and targets", ("none", "mixup", "cutmix"))
    mix_alpha: float = opt(0.2, "mixup/cutmix Beta(alpha, alpha) parameter", gt=0)
    mix_prob: float = opt(0.5, "fraction of batches mixed", ge=0, le=1)
    ema: float = opt(0.0, "exponential moving average of the weights with this decay per "
                     "step, e.g. 0.999 (0 = off); validation, the best model and the test "
                     "report then use the averaged weights", ge=0, lt=1)
    tta_flip: bool = opt(True, "evaluate (and run the demo) on face + mirror, probabilities "
                         "averaged; stored in the model spec")
    val_fraction: float = opt(0.1, "val carved from train when the data has no PublicTest",
                              gt=0, lt=1)
    skip_bad: bool = opt(False, "drop and count bad rows/images instead of failing")
    limit: int = opt(0, "use at most N faces per split (smoke runs); 0 = all")
    seed: int = opt(0, "random seed (data order, augmentation, init)")
    threads: int = opt(0, "CPU threads for TensorFlow ops; 0 = all cores", ge=0, le=MAX_THREADS)
    mixed_precision: str = opt("auto", "compute dtype (variables, softmax and loss stay "
                               "float32): auto = float16 on GPUs with compute capability >= 7.0, "
                               "else float32; no = float32", ("auto", "float16", "bfloat16",
                                                              "no"))
    xla: bool = opt(False, "compile the train step with XLA (jit_compile)")
    distribute: str = opt("auto", "tf.distribute strategy: mirrored = MirroredStrategy over "
                          "this host's GPUs; multiworker = MultiWorkerMirroredStrategy over the "
                          "hosts in the TF_CONFIG environment variable; auto = multiworker when "
                          "TF_CONFIG lists several tasks, else mirrored with >1 GPU, else none",
                          ("auto", "none", "mirrored", "multiworker"))
    peer_timeout: float = opt(120.0, "multiworker: seconds to wait for the other workers (at "
                              "start, in each collective op and at shutdown) before failing",
                              gt=0)
    tensorboard: bool = opt(True, "write TensorBoard logs to <run>/tensorboard")

    def validate(self) -> None:
        check_config(self)
        if not self.data:
            raise ConfigError("no data: pass --data PATH (fer2013.csv, fer2013.npz or the "
                              "Kaggle train/+test/ folder)")
        check_input_size(self.arch, self.input_size)
        check_labels(self.labels, self.ferplus)
        check_run_name(self.name)


#: settings that make a run what it is: ``--resume`` refuses to change them (the checkpoint,
#: the spec and the test report all belong to them). Fields other stages add (e.g. labels)
#: are covered by name as soon as TrainConfig has them.
RUN_IDENTITY = ("data", "arch", "input_size", "labels", "weights", "init", "tta_flip")


def check_run_name(name: str) -> None:
    """A run name is one plain folder name under ``--runs-dir``, never a path out of it."""
    if not name:
        return
    bad = (name in (".", "..") or "/" in name or "\\" in name or name.startswith(".")
           or name != name.strip() or "\0" in name)
    if bad:
        raise ConfigError(f"--name {name!r}: use a plain folder name (letters, digits, - _), "
                          "no path; the run goes under --runs-dir (set that for another place)")
