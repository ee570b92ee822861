"""``ConvertConfig``: one config object for ``fer-edge convert``. Light tier."""

from __future__ import annotations

from dataclasses import dataclass

from fer_edge.config import check_config, opt
from fer_edge.errors import ConfigError
from fer_edge.options import GateOptions, gate_opt, latency_runs_opt, split_opt


@dataclass(frozen=True)
class ConvertConfig(GateOptions):
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
    embedding_faces: int = opt(2000, "training faces (a seeded random pick; 0 = all) on which "
                               "each build's embedding output is measured: the per-feature mean "
                               "and std recorded in its spec (embedding.mean/std)", ge=0)
    opset: int = opt(17, "ONNX opset (13-18 work with tf2onnx 1.17 and onnxruntime)", ge=13,
                     le=18)
    split: str = split_opt("split for the parity check (test = PrivateTest)")
    limit: int = opt(0, "evaluate at most N faces (0 = all)")
    max_drop_pp: float = gate_opt("max_drop_pp")
    max_class_p: float = gate_opt("max_class_p")
    class_correction: str = gate_opt("class_correction")
    min_agreement: float = gate_opt("min_agreement")
    latency_runs: int = latency_runs_opt()
    seed: int = opt(0, "random seed")

    def validate(self) -> None:
        check_config(self)
        if not self.source:
            raise ConfigError("pass the run folder (or float .h5) to convert, e.g. "
                              "`fer-edge convert runs/train/cpu75 --int8`")
        self.calib_batch_sizes()

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
