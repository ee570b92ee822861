"""The protocols of ``benchmarks/personal.py`` on a synthetic photo set: who is enrolled and
who is tested (no photo both, the held-out performance type exactly the test)."""

from __future__ import annotations

import sys

import numpy as np
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import personal as bench  # noqa: E402


def photos() -> bench.Photos:
    """2 people x (1 neutral photo of type 0 + 3 types x 7 expressions); person 2's FACS
    surprise has no face found."""
    rows = [(p, 0, 6) for p in (1, 2)]
    rows += [(p, t, c) for p in (1, 2) for t in (1, 2, 3) for c in range(7)]
    person, ptype, y = (np.array(c) for c in zip(*rows))
    found = ~((person == 2) & (ptype == 2) & (y == 5))
    n = len(rows)
    return bench.Photos(np.array([f"{i}" for i in range(n)]), person, ptype, y, found,
                        np.zeros((n, 48, 48), np.uint8), np.zeros((n, 7), np.float32),
                        np.zeros((n, 4), np.float32), {})


def checked(ph: bench.Photos, splits) -> list:
    """The splits, after the checks every protocol passes: 6 folds (2 people x 3 types), no
    photo both shot and test, one person per fold, shots with a face."""
    splits = list(splits)
    assert len(splits) == 6
    for p, _, shots, test in splits:
        assert not set(shots) & set(test)
        assert (ph.person[np.r_[shots, test]] == p).all() and ph.found[shots].all()
    return splits


def test_cross_type_enrols_one_type_and_neutral_and_tests_the_other_two():
    ph = photos()
    for _, _, shots, test in checked(ph, bench.cross_splits(ph)):
        (t,) = set(ph.ptype[shots]) - {0}
        assert set(ph.ptype[test]) == {1, 2, 3} - {t}
        assert (ph.ptype[shots] == 0).sum() == 1


def test_two_types_enrols_two_types_and_tests_the_third():
    ph = photos()
    splits = checked(ph, bench.two_type_splits(ph))
    for _, name, shots, test in splits:
        assert set(ph.ptype[test]) == {int(ph.ptype[test][0])}
        held = int(ph.ptype[test][0])
        assert name == f"all but {bench.TYPES[held]}"
        assert set(ph.ptype[shots]) == {0, 1, 2, 3} - {held}
    # a photo without a face is never a shot but is still tested (it counts as wrong)
    missing = int(np.flatnonzero(~ph.found)[0])
    assert any(missing in test for *_, test in splits)
    assert not any(missing in shots for _, _, shots, _ in splits)


def test_others_applies_each_cross_type_profile_to_everybody_else():
    ph = photos()
    cross, others = list(bench.cross_splits(ph)), list(bench.other_splits(ph))
    assert len(others) == len(cross) == 6
    for (p, fold, shots, _), (q, name, shots2, test) in zip(cross, others):
        assert (p, f"{fold} -> others") == (q, name) and np.array_equal(shots, shots2)
        assert (ph.person[test] != p).all() and len(test) == (ph.person != p).sum()


def test_sittings_count_shots_linked_by_short_distances_once():
    """Round 6 (n): shots of one expression under SITTING widths apart (directly or through
    another shot) are one sitting."""
    near, far = bench.SITTING / 2, bench.SITTING * 2
    d = np.array([[0, near, far, far],
                  [near, 0, near, far],
                  [far, near, 0, far],
                  [far, far, far, 0]])
    assert bench._sittings(d) == 2
    assert bench._sittings(np.zeros((1, 1))) == 1
    assert bench._sittings(np.full((3, 3), far) - np.eye(3) * far) == 3


def test_profile_columns_count_each_enrolment_on_its_own():
    """Two profiles of one person: +50 pp and -50 pp average to 0 for the person, but one
    profile makes them worse by 50 pp."""
    ph = photos()
    test = np.flatnonzero((ph.person == 1) & (ph.ptype == 1))[:4]
    y = ph.y[test]
    wrong = (y + 1) % 7
    plain = [(1, test, np.r_[y[:2], wrong[2:]]), (1, test, np.r_[y[:2], wrong[2:]])]
    personal = [(1, test, y), (1, test, wrong)]
    got = bench.profile_columns(ph, plain, personal)
    assert got == {"profiles": 2, "profiles_worse": 1, "profiles_worse_5pp": 1,
                   "worst_profile_pp": -50.0}
