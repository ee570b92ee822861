"""Score a model on photos of people through the whole pipeline a user runs. Light tier.

Each photo is read as a user's program reads it (``cv2.imread``: BGR), goes through
``Predictor.analyze`` (detect -> align -> crop -> classify, with the spec's flip TTA), and the
largest face found is the answer; a photo where no face is found counts as wrong. Figures are
given over all photos and per person (``fer_edge.data.people`` reads the folder).

    import fer_edge
    from fer_edge.data.people import scan_people
    from fer_edge.evaluate_people import people_report, predict_photos

    photos, _ = scan_people("tfeid_dev")
    model = fer_edge.load()
    probs, found = predict_photos(model, photos)
    rep = people_report(photos, probs, found, model.spec.labels)
"""

from __future__ import annotations

import logging
import time
from typing import Any

import cv2
import numpy as np

from fer_edge.data.people import PersonPhoto
from fer_edge.errors import DataError
from fer_edge.metrics import classification_report
from fer_edge.runtime import Predictor

log = logging.getLogger(__name__)

#: the extra "class" a photo gets when no face is found in it (never a true label)
MISSED = "missed"


def largest_face(faces: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The face of ``Predictor.analyze``'s answer with the largest box area, or None."""
    return max(faces, key=lambda f: f["box"][2] * f["box"][3], default=None)


def predict_photos(pred: Predictor, photos: list[PersonPhoto], detector: Any = "auto"
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of the largest face of every photo, whole pipeline.

    Args:
        pred: a loaded build (``fer_edge.load(path)``).
        photos: the photos (``fer_edge.data.people.scan_people``).
        detector: as ``Predictor.analyze`` ("auto" = what the demo uses).

    Returns:
        ``(probs, found)``: (N, C) float32 probabilities in the spec's label order (zeros for a
        photo where no face was found) and (N,) bool.

    Raises:
        DataError: a file cannot be read as an image.
    """
    labels = pred.spec.labels
    probs = np.zeros((len(photos), len(labels)), np.float32)
    found = np.zeros(len(photos), bool)
    t0 = time.time()
    for i, photo in enumerate(photos):
        frame = cv2.imread(str(photo.path))  # BGR, as a user's program reads it
        if frame is None:
            raise DataError(f"{photo.path}: cannot be read as an image; remove or replace it")
        face = largest_face(pred.analyze(frame, detector))
        if face is not None:
            probs[i] = [face["probs"][k] for k in labels]
            found[i] = True
        if (i + 1) % 100 == 0 or i + 1 == len(photos):
            log.info("  %s: %d/%d photos (%.0fs)", pred.path.name, i + 1, len(photos),
                     time.time() - t0)
    return probs, found


def photo_classes(photos: list[PersonPhoto], labels: tuple[str, ...]) -> np.ndarray:
    """(N,) int64 index of each photo's label in ``labels`` (a model's label order).

    Raises:
        DataError: a photo's expression is not one of the model's classes.
    """
    missing = sorted({p.label for p in photos} - set(labels))
    if missing:
        raise DataError(f"photos labelled {', '.join(missing)}: not a class of the model "
                        f"({', '.join(labels)}); score them with a model that has it")
    return np.array([labels.index(p.label) for p in photos], np.int64)


def answers(probs: np.ndarray, found: np.ndarray) -> np.ndarray:
    """(N,) int64 argmax class per photo, ``C`` (= index of :data:`MISSED`) where no face."""
    return np.where(found, probs.argmax(1), probs.shape[1]).astype(np.int64)


def people_report(photos: list[PersonPhoto], probs: np.ndarray, found: np.ndarray,
                  labels: tuple[str, ...]) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class recall over all photos, per person, and per person
    averaged (each person counts once, whatever their number of photos).

    Args:
        photos: the N photos scored.
        probs: (N, C) float32 probabilities (:func:`predict_photos`).
        found: (N,) bool face found.
        labels: the model's C class names in output order.

    Returns:
        JSON-ready dict: ``all`` (a ``classification_report`` over the C classes; a missed
        face is a wrong answer), ``found`` (share of photos with a face), ``per_person``
        (person -> the same report plus ``found``), ``person_mean`` (``accuracy``: mean of the
        people's accuracies; ``recall``: label -> mean over the people who show it).
    """
    y, pred = photo_classes(photos, labels), answers(probs, found)
    people = np.array([p.person for p in photos], dtype=object)
    out: dict[str, Any] = {"all": _report(y, pred, labels), "found": float(np.mean(found))}
    out["per_person"] = {}
    for person in sorted(set(people)):
        m = people == person
        out["per_person"][str(person)] = {**_report(y[m], pred[m], labels),
                                     "found": float(np.mean(found[m]))}
    per = out["per_person"].values()
    out["person_mean"] = {
        "people": len(out["per_person"]),
        "accuracy": float(np.mean([r["accuracy"] for r in per])),
        "recall": {lab: float(np.mean([r["per_class"][c]["recall"] for r in per
                                       if r["per_class"][c]["support"]]))
                   for c, lab in enumerate(labels) if np.any(y == c)},
    }
    return out


def _report(y: np.ndarray, pred: np.ndarray, labels: tuple[str, ...]) -> dict[str, Any]:
    """classification_report with a missed face as an extra, never-true class, then dropped
    from the per-class list (its support is 0, so macro-F1 is over the true classes)."""
    rep = classification_report(y, pred, (*labels, MISSED))
    rep["per_class"] = rep["per_class"][:len(labels)]
    rep["missed"] = int(np.sum(pred == len(labels)))
    return rep


def render_people_md(reports: dict[str, dict[str, Any]], title: str) -> str:
    """Markdown of :func:`people_report` results, one per build: overall, per class, per
    person."""
    first = next(iter(reports.values()))
    labels = [c["label"] for c in first["all"]["per_class"] if c["support"]]
    lines = [f"# {title}", "", f"Photos: n = {first['all']['n']}, people: "
             f"{first['person_mean']['people']}; a photo without a face found counts as wrong.",
             "", "| build | accuracy | macro-F1 | mean over people | faces found | "
             + " | ".join(labels) + " |", "|---|---|---|---|---|" + "---|" * len(labels)]
    for name, r in reports.items():
        rec = {c["label"]: c["recall"] for c in r["all"]["per_class"]}
        lines.append(f"| {name} | {r['all']['accuracy']:.2%} | {r['all']['macro_f1']:.2%} | "
                     f"{r['person_mean']['accuracy']:.2%} | {r['found']:.1%} | "
                     + " | ".join(f"{rec[k]:.1%}" for k in labels) + " |")
    lines += ["", "## Accuracy per person (n photos)", "",
              "| person | n | " + " | ".join(reports) + " |", "|---|---|" + "---|" * len(reports)]
    for person, pr in first["per_person"].items():
        cells = [f"{r['per_person'][person]['accuracy']:.1%}" for r in reports.values()]
        lines.append(f"| {person} | {pr['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""])
