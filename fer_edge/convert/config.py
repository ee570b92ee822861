"""``ConvertConfig``: one config object for ``fer-edge convert``. Light tier."""

from __future__ import annotations

from dataclasses import dataclass

from fer_edge.config import check_config, opt
from fer_edge.errors import ConfigError
from fer_edge.gate import CLASS_CORRECTIONS, Gate

_GATE = Gate()


@dataclass(frozen=True)
class ConvertConfig:
    """``fer-edge convert``: QAT, TFLite/ONNX builds and the per-class parity gate."""

    SECTION = "convert"

    source: str = opt("", "a train run folder (model_float.h5 + spec.json) or a float .h5 with "
                      "its spec.json beside it", positional=True)
    data: str = opt("", "dataset for QAT, calibration and the parity check; default: the "
                    "run's training data")
    int8: bool = opt(False, "also build the int8 TFLite (from QAT) and int8 ONNX")
    tflite_fp32: bool = opt(True, "build the float32 TFLite")
    tflite_int8: bool = opt(True, "build the full-integer int8 TFLite (int8 input/output)")
    onnx_fp32: bool = opt(True, "build the float ONNX (tf2onnx)")
    onnx_int8: bool = opt(True, "build the int8 QDQ ONNX")
    skip_unknown_classes: bool = opt(False, "class-folder data: skip folders naming no "
                                     "FER-2013 class (e.g. CK+'s contempt)")
    out: str = opt("", "output folder; default <run>/export")
    force: bool = opt(False, "rebuild requested builds that exist (without it they are kept "
                      "and only missing ones are built)")
    qat_epochs: int = opt(1, "quantization-aware fine-tuning epochs on the train split")
    qat_steps: int = opt(0, "cap on QAT steps per epoch; 0 = full epochs")
    qat_lr: float = opt(1e-5, "QAT learning rate (Adam)", gt=0)
    qat_batch_size: int = opt(32, "QAT batch size", ge=1)
    qat_freeze_bn: bool = opt(True, "keep BatchNorm statistics frozen during QAT")
    qat_target: str = opt("float", "what QAT learns: the float model's probabilities (float: "
                          "distillation, keeps per-class parity) or the training labels "
                          "(labels: moves the class balance; a trained FER model lost 4-5 pp "
                          "of angry and sad that way)", ("float", "labels"))
    qat_select: bool = opt(True, "measure the QAT model's agreement with float on the "
                           "validation split before and after each QAT epoch and keep the best")
    onnx_int8_from: str = opt("qat", "where the int8 ONNX's quantisation comes from: qat (the "
                              "QAT graph's int8 TFLite through tf2onnx: the same ranges as the "
                              "int8 TFLite, uint8 activations), or onnxruntime static "
                              "quantisation of the float ONNX calibrated on training faces, "
                              "with int8 (ort-s8s8) or uint8 (ort-u8s8) activations",
                              ("qat", "ort-s8s8", "ort-u8s8"))
    calib_faces: int = opt(300, "training faces that calibrate the int8 ranges (QAT graph; "
                           "int8 ONNX with --onnx-int8-from ort-*)", ge=1)
    calib_batch_size: int = opt(4, "faces per batch when setting the QAT ranges (each range "
                                "is the mean of per-batch min/max: smaller batches, tighter "
                                "ranges; on a FER-2013 model 4 agreed best with float on "
                                "validation, 1 and 16 worst: "
                                "studies/calibration_batch/calib_study.py)", ge=1)
    calib_select: str = opt("", "calibration batch sizes to try, e.g. 2,4,8: each one's int8 "
                            "TFLite is run on the validation split and the one agreeing best "
                            "with float is kept (about 1.5 min each for InceptionV3 on 2 "
                            "cores); empty = just --calib-batch-size")
    opset: int = opt(17, "ONNX opset (13-18 work with tf2onnx 1.17 and onnxruntime)", ge=13,
                     le=18)
    split: str = opt("test", "split for the parity check (test = PrivateTest)",
                     ("train", "val", "test"))
    limit: int = opt(0, "evaluate at most N faces (0 = all)")
    max_drop_pp: float = opt(_GATE.max_drop_pp, "gate: max overall accuracy drop vs float, "
                             "percentage points", ge=0, le=100)
    max_class_p: float = opt(_GATE.max_class_p, "gate: a class whose accuracy drops with "
                             "McNemar p below this fails", gt=0, le=1)
    class_correction: str = opt(_GATE.class_correction, "gate: correct the per-class p values "
                                "for testing 7 classes at once (holm) or not (none)",
                                CLASS_CORRECTIONS)
    min_agreement: float = opt(_GATE.min_agreement, "gate: min argmax agreement with float "
                               "(0 = off)", ge=0, le=1)
    latency_runs: int = opt(100, "timed batch-1 runs per build and thread count", ge=1)
    seed: int = opt(0, "random seed")

    def validate(self) -> None:
        check_config(self)
        if not self.source:
            raise ConfigError("pass the run folder (or float .h5) to convert, e.g. "
                              "`fer-edge convert runs/train/cpu75 --int8`")
        if (self.qat_epochs < 0 or self.qat_steps < 0 or self.calib_faces < 1
                or self.calib_batch_size < 1):
            raise ConfigError("QAT epochs/steps must be >= 0, calib-faces and "
                              "calib-batch-size >= 1")
        self.calib_batch_sizes()

    def gate(self) -> Gate:
        """The parity gate these settings describe."""
        return Gate(self.max_drop_pp, self.max_class_p, self.min_agreement,
                    self.class_correction)

    def calib_batch_sizes(self) -> list[int]:
        """The calibration batch sizes to try (``--calib-select``), or [--calib-batch-size]."""
        if not self.calib_select.strip():
            return [self.calib_batch_size]
        try:
            sizes = [int(v) for v in self.calib_select.split(",") if v.strip()]
        except ValueError:
            sizes = []
        if not sizes or min(sizes) < 1:
            raise ConfigError(f"--calib-select {self.calib_select!r}: give batch sizes >= 1 "
                              "separated by commas, e.g. 2,4,8")
        return sizes
