"""The packaged default model: loads without TensorFlow, runs the demo's default path, and
is the model its card describes (accuracy re-measured on PrivateTest when FER-2013 is here)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from fer_edge.runtime import default_model_path
from fer_edge.spec import FER2013_LABELS

MODEL = default_model_path()
pytestmark = pytest.mark.skipif(MODEL is None, reason="this checkout has no packaged model")


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads(MODEL.with_name("fer_default_int8.card.json").read_text())


def test_card_matches_file(card):
    assert hashlib.sha256(MODEL.read_bytes()).hexdigest() == card["sha256"]
    assert card["labels"] == list(FER2013_LABELS)


def test_load_without_argument_is_int8_with_fer_labels():
    import fer_edge

    model = fer_edge.load()
    assert model.path == MODEL
    assert tuple(model.spec.labels) == FER2013_LABELS
    assert str(model.input_dtype) == "int8"
    probs = model.predict(np.full((2, 48, 48), 128, np.uint8))
    assert probs.shape == (2, 7) and probs.dtype == np.float32
    assert np.allclose(probs.sum(1), 1.0, atol=0.05)


def test_demo_default_model_on_sample_without_tensorflow(tmp_path):
    log = tmp_path / "faces.csv"
    code = ("import sys; from fer_edge.cli import main; "
            f"rc = main(['demo', '--video', 'sample', '--headless', '--log', r'{log}', "
            "'--max-frames', '30']); "
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
            "print('HEAVY', heavy); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-800:]
    assert "HEAVY []" in r.stdout
    rows = log.read_text().splitlines()
    assert len(rows) > 20  # header + one row per frame with the astronaut's face


@pytest.mark.data
def test_privatetest_accuracy_is_the_card_figure(card, fer_npz):
    import fer_edge
    from fer_edge.metrics import classification_report

    d = np.load(fer_npz)
    test = d["usage"] == 2
    x, y = d["images"][test], d["labels"][test].astype(int)
    model = fer_edge.load(num_threads=None)
    probs = np.concatenate([model.predict(x[i:i + 256]) for i in range(0, len(x), 256)])
    rep = classification_report(y, probs.argmax(1), FER2013_LABELS)
    ev = card["evaluation"]
    assert rep["n"] == ev["n"] == 3589
    # same faces, same preprocessing, same runtime: the same figure up to thread-order noise
    assert abs(rep["accuracy"] - ev["accuracy"]) <= 0.002
    for c in rep["per_class"]:
        assert abs(c["recall"] - ev["recall"][c["label"]]) <= 0.01


# --- the embedding output (spec schema 2) ----------------------------------------------------

def test_embedding_shape_determinism_and_flip_average():
    import fer_edge

    m = fer_edge.load()
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    d = m.spec.embedding.size
    e = m.embed(faces)
    assert e.shape == (3, d) and e.dtype == np.float32 and d == 2048
    assert np.array_equal(e, m.embed(faces))  # deterministic
    one = m.embed(faces, tta_flip=False)
    mirror = m.embed(faces[:, :, ::-1], tta_flip=False)
    assert np.allclose(e, (one + mirror) / 2, atol=1e-6)  # the flip average, as predict does
    probs, e2 = m.predict(faces, embedding=True)
    assert np.array_equal(probs, m.predict(faces)) and np.array_equal(e2, e)
    assert len(m.spec.embedding.mean) == d and min(m.spec.embedding.std) > 0
