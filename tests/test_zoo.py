"""The benchmark recipes of the zoo: they load, and agree with the benchmarks and the paper."""

from __future__ import annotations

import pytest

from delcli.data.benchmarks import get_benchmark
from delcli.model.del_model import DELModel
from delcli.recipe import load_recipe, zoo_names

BENCHMARK_RECIPES = ["thumos14", "anet13", "epic100-verb", "epic100-noun", "unav100"]
CLASS_COUNTS = {
    "thumos14": (20, 20),
    "anet13": (200, 1),  # class-agnostic model; external scores name the 200 classes
    "epic100-verb": (97, 97),
    "epic100-noun": (300, 300),
    "unav100": (100, 100),
}


@pytest.mark.parametrize("name", BENCHMARK_RECIPES)
def test_every_benchmark_recipe_loads_by_name(name):
    assert name in zoo_names()
    recipe = load_recipe(name)
    assert recipe.name == name and recipe.title
    assert recipe.data.benchmark == name


@pytest.mark.parametrize("name", BENCHMARK_RECIPES)
def test_class_lists_are_the_bundled_annotations_lists(name, real_annotations):
    recipe = load_recipe(name)
    classes, outputs = CLASS_COUNTS[name]
    assert len(recipe.data.classes) == classes
    assert recipe.model.num_classes == outputs
    assert recipe.data.classes == real_annotations[name].classes


@pytest.mark.parametrize("name", BENCHMARK_RECIPES)
def test_streams_and_model_agree_on_feature_widths(name):
    recipe = load_recipe(name)
    assert recipe.data.visual.dim == recipe.model.visual_dim
    assert recipe.data.audio.dim == recipe.model.audio_dim
    assert recipe.model.max_seq_len % recipe.model.length_divisor == 0
    for spec in (recipe.data.visual, recipe.data.audio):
        assert all("{video}" in pattern for pattern in spec.files)


@pytest.mark.parametrize("name", BENCHMARK_RECIPES)
def test_paper_rows_have_one_value_per_threshold_of_the_benchmark(name):
    recipe = load_recipe(name)
    paper, benchmark = recipe.paper, get_benchmark(name)
    assert len(paper.map) == len(paper.tious) > 0
    assert set(paper.tious) <= set(benchmark.tious)
    assert paper.table.startswith("Table")
    if tuple(paper.tious) == benchmark.average_tious:  # the average is of the printed columns,
        # each rounded to 0.1 before the paper averaged the unrounded ones
        assert sum(paper.map) / len(paper.map) == pytest.approx(paper.average, abs=0.1)


@pytest.mark.parametrize(
    ("name", "sigma", "multiclass", "voting"),
    [
        ("thumos14", 0.5, True, None),
        ("anet13", 0.75, False, 0.9),
        ("epic100-verb", 0.4, True, None),
        ("unav100", 0.4, True, None),
    ],
)
def test_post_processing_follows_each_benchmarks_reference_setting(name, sigma, multiclass, voting):
    nms = load_recipe(name).inference.nms
    assert (nms.sigma, nms.multiclass, nms.voting_threshold) == (sigma, multiclass, voting)
    assert nms.use_soft_nms and nms.method == "gaussian"


def test_activitynet_is_resized_with_position_encoding_and_a_narrower_model():
    recipe = load_recipe("anet13")
    assert recipe.data.resize_length == recipe.model.max_seq_len == 160
    assert recipe.model.position_encoding and recipe.model.embed_dim == 256
    assert recipe.inference.external_top_k == 2


@pytest.mark.parametrize("name", BENCHMARK_RECIPES)
def test_the_recipe_builds_its_network(name):
    recipe = load_recipe(name, ["model.embed_dim=32", "model.head_dim=32"])
    DELModel(recipe.model)  # smaller widths keep the test quick; the geometry is the recipe's
