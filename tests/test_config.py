"""fer_edge.config: every recipe in the repository loads and validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from fer_edge.config import make_config, read_toml
from fer_edge.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]

RECIPES = sorted(p for d in ("train", "convert", "demo") for p in (ROOT / d).glob("*.toml"))


@pytest.mark.parametrize("path", RECIPES, ids=[f"{p.parent.name}/{p.name}" for p in RECIPES])
def test_every_recipe_loads(path):
    import tomllib

    from fer_edge.convert.config import ConvertConfig
    from fer_edge.demo.config import DemoConfig

    classes = {"train": TrainConfig, "convert": ConvertConfig, "demo": DemoConfig}
    sections = [k for k, v in tomllib.loads(path.read_text()).items() if isinstance(v, dict)]
    assert sections and set(sections) <= set(classes), sections
    for s in sections:
        cfg = make_config(classes[s], read_toml(path, classes[s]))
        if s == "convert":
            cfg.calib_batch_sizes()
        if s == "train" and cfg.data:
            cfg.validate()


def test_recipes_exist():
    assert {p.name for p in RECIPES} >= {"smoke.toml", "cpu.toml", "gpu.toml"}


def test_a_recipe_path_starting_with_tilde_is_in_the_home_folder(tmp_path):
    """As in a shell: ``out = "~/me.profile"`` names the home folder, not a folder "~"."""
    from fer_edge.personal.config import EnrollConfig

    recipe = tmp_path / "enroll.toml"
    recipe.write_text('[enroll]\nimages = "~/photos"\nout = "~/me.profile"\ndetector = "auto"\n')
    got = read_toml(recipe, EnrollConfig)
    assert got["out"] == str(Path.home() / "me.profile")
    assert got["images"] == str(Path.home() / "photos") and got["detector"] == "auto"
