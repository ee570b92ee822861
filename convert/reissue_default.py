"""Re-issue a schema-1 int8 TFLite build with the spec schema 2 and an embedding output.

    python convert/reissue_default.py OLD.tflite --data fer2013.npz --out NEW.tflite

Made for the first packaged default (``fer_edge/assets/fer_default_int8.tflite`` from
2026-11-24 to 2026-12-06, spec schema 1, re-issued once on 2026-12-06); it works on any
schema-1 int8 TFLite build whose float weights are gone. The build keeps its flatbuffer
weights and graph; two things change:

1. its pooled features (the int8 ``avg_pool`` tensor that feeds the classifier, already in
   the graph) become a second output, so ``Predictor.embed`` and ``fer-edge enroll`` work. Its
   float weights are gone, so re-exporting from recovered weights would change the model;
   this edits the flatbuffer's output list only;
2. its spec is rewritten in schema 2 (every field explicit, the crop rules of every
   calibrated detector including the default ``blazeface-full+refine``, which the runtime
   used to fill in from ``fer_edge/assets/face_crops.json``), with the embedding's
   per-feature mean and std over the FER-2013 Training faces, and bound to the weights.

It checks, on every PrivateTest face and its mirror image, that the probability output is
bit-identical to the old build's, refuses to write otherwise, and records the check in the
model card. Needs the train extra (TensorFlow's flatbuffer tools); run it on the schema-1 build
(``git show d7eccf9:fer_edge/assets/fer_default_int8.tflite > old.tflite``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import logging
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from fer_edge.data import load_dataset
from fer_edge.detect.crops import crop_fields
from fer_edge.errors import AccuracyGateError, FerEdgeError, ModelFileError, SpecError
from fer_edge.io import atomic_write_bytes, atomic_write_text, check_output_file
from fer_edge.preprocess import to_model_input
from fer_edge.runtime import load_predictor
from fer_edge.runtime.base import quantize
from fer_edge.runtime.embedding import embedding_stats, with_stats
from fer_edge.runtime.spec_io import SPEC_ENTRY, embed_bound_tflite, tflite_model_bytes
from fer_edge.spec import Embedding, ModelSpec

ROOT = Path(__file__).resolve().parents[1]
ASSET = ROOT / "fer_edge" / "assets" / "fer_default_int8.tflite"
POOLED = "fer_inception_v3/quant_avg_pool/Mean"
V1_FIELDS = ("labels", "input_size", "channels", "input_dtype", "norm_scale", "norm_offset",
             "tta_flip", "arch", "extra")


def main() -> int:
    args = _parse()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        out = check_output_file(args.out, "--out", force=True, renames=True)  # before the long part
        old = _read_old(Path(args.old))
        old_spec = _old_spec(old)
        flat = add_output(tflite_model_bytes(old), POOLED)
        spec = _schema2(old_spec, Embedding(POOLED, 2048, (), ()))
        ds = load_dataset(args.data)
        with tempfile.TemporaryDirectory() as tmp:
            pred = _write_and_load(Path(tmp) / "draft.tflite", flat, spec)
            same = bit_exact(tflite_model_bytes(old), pred, ds.images["test"])
            mean, std = embedding_stats(pred, ds.images["train"])
        spec = spec.replace(embedding=with_stats(spec.embedding, mean, std),
                            extra={**spec.extra, "embedding_stats": f"FER-2013 Training, "
                                   f"{len(ds.images['train'])} faces, flip-averaged"})
        data, spec = embed_bound_tflite(flat, spec)
        check_identical(same)
    except FerEdgeError as exc:
        print(f"reissue_default: error: {exc}", file=sys.stderr)
        return exc.exit_code
    atomic_write_bytes(out, data)
    _update_card(out, data, old, same)
    print(f"wrote {out} ({len(data) / 1e6:.2f} MB): probabilities bit-identical on "
          f"{same['identical']}/{same['n']} PrivateTest faces x 2 (face, mirror)")
    return 0


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", nargs="?", default=str(ASSET), help="the schema-1 build")
    ap.add_argument("--data", required=True, help="fer2013.npz (official splits)")
    ap.add_argument("--out", default=str(ASSET), help="where to write (default: the asset)")
    return ap.parse_args()


def _read_old(path: Path) -> bytes:
    if not path.is_file():
        raise ModelFileError(f"{path}: " + ("is a folder" if path.is_dir() else "not found")
                             + "; give the schema-1 build (git show d7eccf9:fer_edge/assets/"
                             "fer_default_int8.tflite > old.tflite)")
    return path.read_bytes()


def _old_spec(data: bytes) -> dict:
    """The schema-1 spec embedded in the build's bytes.

    Raises:
        ModelFileError: no readable spec inside. SpecError: a spec of another schema.
    """
    fix = "give the schema-1 build (git show d7eccf9:fer_edge/assets/fer_default_int8.tflite)"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            d = json.loads(z.read(SPEC_ENTRY))
    except (zipfile.BadZipFile, KeyError, ValueError):
        raise ModelFileError(f"the build holds no readable fer-edge spec; {fix}") from None
    if not isinstance(d, dict) or d.get("schema") != "fer-edge/spec/1":
        schema = d.get("schema") if isinstance(d, dict) else None
        raise SpecError(f"the build's spec is {schema!r}, not schema 1 (already re-issued); "
                        f"{fix}")
    return d


def check_identical(same: dict) -> None:
    """Refuse (AccuracyGateError, exit 3) unless every face and mirror gave the old output."""
    if same["identical"] != same["n"]:
        raise AccuracyGateError(f"probabilities differ from the old build's on "
                        f"{same['n'] - same['identical']} of {same['n']} PrivateTest faces; "
                        "nothing written: the flatbuffer edit changed the model")


def add_output(flat: bytes, tensor_name: str) -> bytes:
    """The flatbuffer with the tensor ``tensor_name`` appended to the main subgraph's outputs
    (and to its serving signature, as ``embedding``); nothing else changes."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils as fu

    model = fu.convert_bytearray_to_object(bytearray(flat))
    sg = model.subgraphs[0]
    names = [t.name.decode() for t in sg.tensors]
    idx = names.index(tensor_name)
    sg.outputs = np.array(list(sg.outputs) + [idx], dtype=np.int32)
    for sig in model.signatureDefs or []:
        tm = schema.TensorMapT()
        tm.name, tm.tensorIndex = b"embedding", idx
        sig.outputs.append(tm)
    return bytes(fu.convert_object_to_bytearray(model))


def _schema2(old: dict, embedding: Embedding) -> ModelSpec:
    """The schema-1 spec's own fields, explicit crop rules, the embedding output."""
    f = {k: old[k] for k in V1_FIELDS}
    f["labels"] = tuple(f["labels"])
    f["extra"] = {**f["extra"], "reissued": dt.date.today().isoformat(),
                  "face_crops": "fer_edge/assets/face_crops.json (FER-2013 calibration)"}
    return ModelSpec(**f, **crop_fields(), embedding=embedding)


def _write_and_load(path: Path, flat: bytes, spec: ModelSpec):
    path.write_bytes(embed_bound_tflite(flat, spec)[0])
    return load_predictor(path, num_threads=1)


def bit_exact(old_flat: bytes, new, faces: np.ndarray) -> dict:
    """Compare the int8 probability outputs of the old flatbuffer and the new build on every
    face and its mirror image, fed the same quantised input (the product's preprocessing)."""
    from ai_edge_litert.interpreter import Interpreter

    old = Interpreter(model_content=old_flat, num_threads=1)
    old.allocate_tensors()
    oi, oo = old.get_input_details()[0], old.get_output_details()[0]
    ni, no = new._interp.get_input_details()[0], new._out
    identical = 0
    for face in faces:
        x = to_model_input(face[None], new.spec)
        ok = True
        for xi in (x, x[:, :, ::-1, :].copy()):
            q = quantize(xi, *oi["quantization"], np.int8)
            old.set_tensor(oi["index"], q)
            old.invoke()
            new._interp.set_tensor(ni["index"], q)
            new._interp.invoke()
            ok &= bool(np.array_equal(old.get_tensor(oo["index"]),
                                      new._interp.get_tensor(no["index"])))
        identical += ok
    return {"split": "test", "n": len(faces), "identical": identical}


def _update_card(model: Path, data: bytes, old: bytes, same: dict) -> None:
    card_path = model.with_name(model.stem + ".card.json")
    if not card_path.is_file():
        return
    card = json.loads(card_path.read_text())
    card["reissued"] = {
        "date": dt.date.today().isoformat(),
        "change": "spec schema 2 (every field explicit, crop rules of every calibrated "
                  "detector) and the pooled features as a second output (embedding)",
        "previous_sha256": hashlib.sha256(old).hexdigest(),
        "probabilities_bit_identical": same,
        "command": "python convert/reissue_default.py OLD.tflite --data fer2013.npz",
    }
    card["sha256"] = hashlib.sha256(data).hexdigest()
    card["size_mb"] = round(len(data) / 1e6, 2)
    atomic_write_text(card_path, json.dumps(card, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
