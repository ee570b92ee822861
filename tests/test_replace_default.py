"""convert/replace_default.py: refuses a run without a parity report (exit 2, one line, nothing
written); renders the README card block from a card; lists the prose and the results files that
still belong to the outgoing default. Light tier, no model run."""

from __future__ import annotations

import importlib

import pytest
from cli_sweep import snapshot

OLD, NEW = "a" * 64, "b" * 64
CARD = {"sha256": NEW, "source_run": "long40", "source_build": "m_int8.tflite", "size_mb": 22.4,
        "packaged": "2026-12-06", "trained_epochs": 40, "training_minutes": 512.3,
        "commands": ["fer-edge train X", "fer-edge convert X --int8"],
        "evaluation": {"n": 3589, "accuracy": 0.6712, "macro_f1": 0.6401,
                       "float_accuracy": 0.6725, "delta_pp_vs_float": -0.13,
                       "agreement_with_float": 0.981, "gate": "pass",
                       "recall": {"angry": 0.6, "disgust": 0.5}}}


@pytest.fixture()
def rd(tmp_path, monkeypatch):
    mod = importlib.import_module("convert.replace_default")
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    monkeypatch.setattr(mod, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(mod, "CARD", tmp_path / "card.json")
    (tmp_path / "results").mkdir()
    return mod


def test_run_without_report_is_refused_exit_2_nothing_written(rd, tmp_path, capsys):
    before = snapshot(tmp_path)
    rc = rd.main([str(tmp_path / "run"), "--commands", "x"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "report.json not found" in err[0]
    assert "fer-edge convert" in err[0]  # the fix
    assert snapshot(tmp_path) == before


def test_card_block_holds_the_cards_figures_and_the_readme_block_is_rewritten(rd, tmp_path):
    block = rd.card_block(CARD)
    assert "**67.12 %**" in block and "macro-F1 64.0 %" in block and "-0.13 pp" in block
    flat = " ".join(block.split())  # the bullets are wrapped at 98 columns
    assert "`long40`" in flat and "`fer-edge convert X --int8`" in flat
    assert all(len(line) <= 100 for line in block.splitlines())
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- card: fer_default_int8.card.json -->\nold 67.90\n"
                      "<!-- /card -->\nb\n")
    rd.rewrite_card_block(CARD)
    text = readme.read_text()
    assert "old 67.90" not in text and block in text and text.startswith("a\n")
    readme.write_text("no markers\n")
    with pytest.raises(rd.StepError, match="no <!-- card"):
        rd.rewrite_card_block(CARD)


def test_checklist_finds_old_prose_outside_generated_blocks_and_stale_results(rd, tmp_path):
    for doc in rd.DOCS:
        (tmp_path / doc).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / doc).write_text("nothing here 167.905\n")
    (tmp_path / "README.md").write_text(
        "The default scores 67.90 % (run cpu75x).\n<!-- table: x.csv -->\n| 67.90 |\n"
        "<!-- /table -->\nsha aaaaaaaa here\n")
    old = {"sha256": OLD, "source_run": "cpu75x", "evaluation": {"accuracy": 0.679}}
    needles = rd.old_figures(old)
    assert {"67.90", "cpu75x", "aaaaaaaa"} <= needles
    assert rd.stale_prose(needles) == ["README.md:1: The default scores 67.90 % (run cpu75x).",
                                       "README.md:5: sha aaaaaaaa here"]
    (tmp_path / "results" / "MANIFEST.csv").write_text(
        "file,script,command,commit,model_sha256,run,note\n"
        f"fps.csv,s,python fps.py,abc,fer_default_int8.tflite={OLD},,\n"
        f"gen.csv,s,python gen.py,abc,fer_default_int8.tflite={NEW},,\n"
        "other.csv,s,python o.py,abc,,,\n")
    stale = rd.stale_results(NEW)
    assert len(stale) == 1 and stale[0].startswith("fps.csv: measured on aaaaaaaa")



def test_card_without_commands_says_so(rd):
    assert "Commands: not recorded." in rd.card_block({**CARD, "commands": []})
