"""train/select_default.py: the default-model rule on a synthetic table of candidates (CLI)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

SCRIPT = ROOT / "train" / "select_default.py"
PACKAGED = {"fer2013": 67.90, "tfeid": 52.20, "ck": 70.10}
# name -> (FER-2013, tfeid_dev, CK+48 per subject, gate failures)
CANDIDATES = {
    "best": (67.00, 56.00, 75.00, []),          # -0.90 FER, +3.80 tfeid, +4.9 CK: wins
    "tied": (67.50, 56.00, 74.00, []),          # same tfeid as best: CK+48 decides
    "edge": (66.90, 54.20, 70.10, []),          # exactly -1.00 FER, +2.00 tfeid, equal CK
    "ferdrop": (66.85, 60.00, 76.00, []),       # -1.05 pp FER-2013
    "gatefail": (67.90, 60.00, 76.00, ["x.tflite: accuracy -0.80 pp vs float"]),
    "small": (67.90, 54.10, 76.00, []),         # +1.90 pp tfeid
    "ckloss": (67.90, 60.00, 70.00, []),        # -0.10 pp CK+48 per subject
}
BUILD = "fer_inception_v3_75_int8.tflite"


def _rows(build: str, fer: float, tfeid: float, ck: float) -> list[dict]:
    base = {"build": build, "n": 1, "macro_f1": ""}
    return [{**base, "set": "fer2013-privatetest", "labels": "fer2013", "accuracy": f"{fer:.2f}"},
            {**base, "set": "fer2013-privatetest", "labels": "ferplus-majority",
             "accuracy": "99.00"},  # another labelling of the same faces: never the FER figure
            {**base, "set": "ckplus48-image", "labels": "ckplus48", "accuracy": "99.00"},
            {**base, "set": "ckplus48-subject", "labels": "ckplus48", "accuracy": f"{ck:.2f}"},
            {**base, "set": "tfeid_dev-photo", "labels": "tfeid", "accuracy": f"{tfeid:.2f}"},
            {**base, "set": "tfeid_dev-person", "labels": "tfeid", "accuracy": "99.00"}]


def _write_csv(path, rows) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _candidate(tmp_path, run: str, fer, tfeid, ck, failures, peer: bool = False) -> list[str]:
    export = tmp_path / run / "export"
    export.mkdir(parents=True)
    rows = _rows(BUILD, fer, tfeid, ck) + (_rows("fer 25.10.3", 90, 90, 90) if peer else [])
    _write_csv(tmp_path / f"generalization_{run}.csv", rows)
    report = {"parity": {"builds": {BUILD: {"failures": failures},
                                    "fer_inception_v3_75_fp32.tflite": {"failures": []}}},
              "builds": {}}
    (export / "report.json").write_text(json.dumps(report))
    return ["--candidate", str(tmp_path / f"generalization_{run}.csv"),
            str(export / "report.json")]


@pytest.fixture
def packaged_csv(tmp_path):
    p = tmp_path / "generalization_packaged.csv"
    _write_csv(p, _rows("fer_default_int8.tflite", PACKAGED["fer2013"], PACKAGED["tfeid"],
                        PACKAGED["ck"]))
    return p


def _run(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=60)


def _verdicts(path) -> dict[str, str]:
    with open(path, newline="") as f:
        return {r["build"].split("/")[0]: r["verdict"] for r in csv.DictReader(f)}


def test_the_rule_picks_the_best_qualified_candidate_and_says_why_others_are_refused(
        tmp_path, packaged_csv):
    args = [packaged_csv]
    for run, (fer, tfeid, ck, fails) in CANDIDATES.items():
        args += _candidate(tmp_path, run, fer, tfeid, ck, fails, peer=run == "best")
    out = tmp_path / "decision.csv"
    r = _run(*args, "--out", out)
    assert r.returncode == 0, r.stderr
    assert f"decision: best/{BUILD} replaces fer_default_int8.tflite" in r.stdout
    v = _verdicts(out)
    assert v["best"] == "WINS: replaces the default"
    assert v["fer_default_int8.tflite (packaged)"] == f"replaced by best/{BUILD}"
    assert v["tied"].startswith("qualifies, not the best: tied on tfeid_dev; CK+48 per subject")
    assert v["edge"] == "qualifies, not the best: tfeid_dev 54.20 < 56.00"
    assert v["ferdrop"] == ("refused: FER-2013 -1.05 pp (more than 1.0 pp below the packaged "
                            "model)")
    assert v["gatefail"].startswith("refused: parity gate failed (x.tflite: accuracy")
    assert v["small"] == "refused: tfeid_dev +1.90 pp (needs +2.0 pp)"
    assert v["ckloss"] == "refused: CK+48 per subject -0.10 pp (must not lose)"
    assert "fer 25.10.3" not in out.read_text()  # a peer's rows are never a candidate
    assert len(v) == 1 + len(CANDIDATES)  # the fp32 build in the report has no rows: not one


def test_every_reason_of_a_refusal_is_listed(tmp_path, packaged_csv):
    r = _run(packaged_csv, *_candidate(tmp_path, "bad", 60.0, 53.0, 60.0, ["g: failed"]))
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("| bad/"))
    for reason in ("FER-2013 -7.90 pp", "parity gate failed (g: failed)", "tfeid_dev +0.80 pp",
                   "CK+48 per subject -10.10 pp"):
        assert reason in line
    assert "decision: fer_default_int8.tflite stays the default" in r.stdout


def test_a_tie_on_every_figure_is_decided_by_the_name(tmp_path, packaged_csv):
    r = _run(packaged_csv, *_candidate(tmp_path, "zeta", 67.5, 56.0, 75.0, []),
             *_candidate(tmp_path, "alpha", 67.5, 56.0, 75.0, []))
    assert r.returncode == 0, r.stderr
    assert f"decision: alpha/{BUILD} replaces" in r.stdout
    assert "tied on every figure; the name decides" in r.stdout


def test_without_candidates_the_packaged_model_stays(packaged_csv):
    r = _run(packaged_csv)
    assert r.returncode == 0, r.stderr
    assert "stays the default (no candidate qualifies)" in r.stdout


@pytest.mark.parametrize("case", ["no_file", "no_column", "no_tfeid_row", "no_report",
                                  "report_without_build", "report_not_json"])
def test_bad_input_is_one_line_and_exit_2_and_writes_nothing(tmp_path, packaged_csv, case):
    cand = _candidate(tmp_path, "c", 67.0, 56.0, 75.0, [])
    csv_path, report = tmp_path / "generalization_c.csv", tmp_path / "c" / "export" / "report.json"
    if case == "no_file":
        cand[1] = str(tmp_path / "missing.csv")
    elif case == "no_column":
        csv_path.write_text(csv_path.read_text().replace("accuracy", "acc"))
    elif case == "no_tfeid_row":
        _write_csv(csv_path, [r for r in _rows(BUILD, 67.0, 56.0, 75.0)
                              if r["set"] != "tfeid_dev-photo"])
    elif case == "no_report":
        report.unlink()
    elif case == "report_without_build":
        report.write_text(json.dumps({"parity": {"builds": {"other.tflite": {"failures": []}}}}))
    else:
        report.write_text("{not json")
    out = tmp_path / "decision.csv"
    r = _run(packaged_csv, *cand, "--out", out)
    assert r.returncode == 2
    assert r.stderr.startswith("select_default: ") and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr and not out.exists()
