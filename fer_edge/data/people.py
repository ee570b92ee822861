"""Photos of people with their expression labels, for scoring a model on real faces. Light tier.

Two layouts (picked from the folder):

- ``<root>/<person>/<class>/*.jpg``: one folder per person, in it one folder per expression
  (class names as :func:`fer_edge.data.readers.class_id` accepts them: ``angry``, ``anger``,
  ``Happiness``, ...); the person is the folder name.
- TFEID file names ``PPTVEnn.jpg`` directly in ``<root>`` (the Taiwanese Facial Expression
  Image Database): ``PP`` the person, ``T`` the performance type, ``V`` the view, ``E`` the
  expression letter (``a`` neutral, ``b`` happy, ``c`` sad, ``d`` angry, ``e`` disgust, ``f``
  fear, ``g`` surprise), ``nn`` a serial number. A file whose ``E`` is no such letter is
  unlabelled: skipped and counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fer_edge.data.readers import _IMAGE_EXT, class_id
from fer_edge.errors import DataError
from fer_edge.spec import FER2013_LABELS

#: TFEID's expression letters (its Readme) -> expression name
TFEID_EXPRESSIONS = {"a": "neutral", "b": "happy", "c": "sad", "d": "angry", "e": "disgust",
                     "f": "fear", "g": "surprise"}
_TFEID_NAME = re.compile(r"^(\d{2})(\d)(\d)(.)(\d{2})$")


@dataclass(frozen=True)
class PersonPhoto:
    """One labelled photo: ``path`` (a colour or grey image file), ``person`` (an id string),
    ``label`` (a FER-2013 class name, e.g. ``"happy"``) and ``take`` (TFEID's performance type,
    or "" in the folder layout)."""

    path: Path
    person: str
    label: str
    take: str = ""


def scan_people(root: str | Path) -> tuple[list[PersonPhoto], int]:
    """The labelled photos of a folder of people, sorted by person then file name.

    Args:
        root: a folder in one of the layouts of this module.

    Returns:
        (photos, number of image files skipped as unlabelled).

    Raises:
        DataError: the folder is missing, holds no labelled photo, or a class folder names no
            FER-2013 class.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: " + ("is a file, not a folder" if root.exists() else
                                       "no such folder") + "; pass a folder of "
                        "<person>/<class>/ photos or of TFEID-named photos (PPTVEnn.jpg)")
    people = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    _refuse_one_person(root, people)
    photos, skipped = (_scan_person_folders(people) if people else _scan_tfeid(root))
    if not photos:
        raise DataError(f"{root}: no labelled photo found (expected <person>/<class>/*.jpg or "
                        "TFEID names PPTVEnn.jpg with an expression letter a-g)")
    return sorted(photos, key=lambda p: (p.person, p.path.name)), skipped


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_EXT)


def _refuse_one_person(root: Path, people: list[Path]) -> None:
    """Raise DataError when ``root``'s folders are expressions holding photos (one person's
    ``<class>/`` folders, as ``fer-edge enroll --images`` takes) instead of people."""
    if people and all(class_id(p.name) is not None and _images(p) for p in people):
        raise DataError(f"{root}: its folders ({', '.join(p.name for p in people[:3])}) are "
                        "expressions: that is one person's photos; put it in a folder of "
                        f"people (e.g. PEOPLE/{root.resolve().name}/happy/) and pass "
                        "--people PEOPLE")


def _scan_person_folders(people: list[Path]) -> tuple[list[PersonPhoto], int]:
    """Photos of ``<person>/<class>/``; images directly in a person's folder (no class) are
    skipped and counted."""
    photos, skipped = [], 0
    for person in people:
        skipped += len(_images(person))
        for sub in sorted(p for p in person.iterdir() if p.is_dir()):
            cid = class_id(sub.name)
            if cid is None:
                raise DataError(f"{sub}: unknown class folder {sub.name!r}: it maps to none of "
                                f"the 7 classes ({', '.join(FER2013_LABELS)}); rename it")
            photos += [PersonPhoto(p, person.name, FER2013_LABELS[cid]) for p in _images(sub)]
    return photos, skipped


def _scan_tfeid(root: Path) -> tuple[list[PersonPhoto], int]:
    photos, skipped = [], 0
    for p in _images(root):
        m = _TFEID_NAME.match(p.stem)
        expression = TFEID_EXPRESSIONS.get(m.group(4).lower()) if m else None
        if expression is None:
            skipped += 1
            continue
        label = FER2013_LABELS[class_id(expression)]
        photos.append(PersonPhoto(p, m.group(1), label, take=m.group(2)))
    return photos, skipped
