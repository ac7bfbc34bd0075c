"""Specification of post-processing: tIoU, greedy NMS, Soft-NMS, batched NMS, voting.

Hand examples pin the semantics; property tests check the vectorised functions
against the one-candidate-at-a-time loops in `delcli.inference.nms_oracle`.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from delcli.errors import ConfigError
from delcli.inference import NMSConfig, batched_nms, nms, segment_iou, soft_nms, tiou
from delcli.inference.nms_oracle import (
    reference_batched_nms,
    reference_nms,
    reference_soft_nms,
)

METHODS = ["gaussian", "linear", "hard"]


def seg(*pairs: tuple[float, float]) -> torch.Tensor:
    return torch.tensor(pairs, dtype=torch.float64).reshape(-1, 2)


def vec(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# --- tIoU -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0.0, 2.0), (1.0, 3.0), 1 / 3),  # overlap 1, union 3
        ((0.0, 4.0), (1.0, 2.0), 1 / 4),  # contained
        ((0.0, 1.0), (2.0, 3.0), 0.0),  # disjoint
        ((0.0, 1.0), (1.0, 2.0), 0.0),  # touching
        ((2.0, 5.0), (2.0, 5.0), 1.0),  # identical
        ((1.0, 1.0), (0.0, 2.0), 0.0),  # zero length inside another
        ((1.0, 1.0), (1.0, 1.0), 0.0),  # two zero-length: 0, not NaN
    ],
)
def test_tiou_matches_hand_computed_values(a, b, expected):
    assert tiou(seg(a), seg(b)).item() == pytest.approx(expected)
    assert tiou(seg(b), seg(a)).item() == pytest.approx(expected)


def test_segment_iou_is_pairwise_and_symmetric():
    a = seg((0, 2), (1, 1), (5, 9))
    b = seg((1, 3), (0, 10))
    iou = segment_iou(a, b)
    assert iou.shape == (3, 2)
    assert iou[0, 0].item() == pytest.approx(1 / 3)
    assert iou[2, 1].item() == pytest.approx(4 / 10)
    assert torch.equal(segment_iou(b, a), iou.T)
    assert not iou.isnan().any()


# --- Hand examples --------------------------------------------------------------------

# A and B overlap with tIoU 9/11; D overlaps A and C with tIoU 5/25 = 0.2 each.
HARD_SEGMENTS = seg((0, 10), (1, 11), (20, 30), (5, 25))
HARD_SCORES = vec(0.9, 0.8, 0.7, 0.6)


def test_hard_nms_matches_hand_example():
    assert nms(HARD_SEGMENTS, HARD_SCORES, iou_threshold=0.5).tolist() == [0, 2, 3]


def test_hard_nms_suppresses_at_exactly_the_threshold():
    assert nms(HARD_SEGMENTS, HARD_SCORES, iou_threshold=0.2).tolist() == [0, 2]


def test_hard_nms_drops_candidates_below_min_score_before_suppression():
    # Without B's competitor A (score under min_score), B survives.
    assert nms(HARD_SEGMENTS, vec(0.05, 0.8, 0.7, 0.6), 0.5, min_score=0.1).tolist() == [1, 2, 3]


def test_hard_nms_caps_at_max_seg_num():
    assert nms(HARD_SEGMENTS, HARD_SCORES, 0.5, max_seg_num=2).tolist() == [0, 2]


def test_equal_scores_keep_the_lower_index_first():
    twins = seg((0, 10), (0, 10), (20, 30))
    assert nms(twins, vec(0.5, 0.5, 0.5), 0.5).tolist() == [0, 2]
    _, _, order = soft_nms(twins, vec(0.5, 0.5, 0.5), min_score=0.0)
    assert order.tolist() == [0, 2, 1]


# A and B overlap with tIoU 5/15 = 1/3; C is disjoint from both.
SOFT_SEGMENTS = seg((0, 10), (5, 15), (30, 40))
SOFT_SCORES = vec(0.9, 0.8, 0.7)


def test_gaussian_soft_nms_matches_hand_example():
    kept, scores, order = soft_nms(SOFT_SEGMENTS, SOFT_SCORES, sigma=0.5, method="gaussian")
    # B decays to 0.8 * exp(-(1/3)^2 / 0.5) = 0.6406 and falls behind C.
    assert order.tolist() == [0, 2, 1]
    assert scores.tolist() == pytest.approx([0.9, 0.7, 0.8 * math.exp(-(1 / 9) / 0.5)])
    assert torch.equal(kept, SOFT_SEGMENTS[[0, 2, 1]])


def test_linear_soft_nms_matches_hand_example():
    _, scores, order = soft_nms(SOFT_SEGMENTS, SOFT_SCORES, iou_threshold=0.3, method="linear")
    assert order.tolist() == [0, 2, 1]
    assert scores.tolist() == pytest.approx([0.9, 0.7, 0.8 * (1 - 1 / 3)])


def test_linear_soft_nms_leaves_overlaps_below_threshold_untouched():
    _, scores, order = soft_nms(SOFT_SEGMENTS, SOFT_SCORES, iou_threshold=0.5, method="linear")
    assert order.tolist() == [0, 1, 2]
    assert scores.tolist() == pytest.approx([0.9, 0.8, 0.7])


def test_gaussian_soft_nms_ignores_iou_threshold():
    results = [soft_nms(SOFT_SEGMENTS, SOFT_SCORES, iou_threshold=t) for t in (0.0, 0.5, 1.0)]
    for _, scores, order in results[1:]:
        assert torch.equal(order, results[0][2])
        assert torch.equal(scores, results[0][1])


def test_soft_nms_drops_candidates_whose_decayed_score_falls_below_min_score():
    _, scores, order = soft_nms(SOFT_SEGMENTS, SOFT_SCORES, sigma=0.5, min_score=0.65)
    assert order.tolist() == [0, 2]
    assert scores.tolist() == pytest.approx([0.9, 0.7])


def test_soft_nms_caps_at_max_seg_num():
    _, _, order = soft_nms(SOFT_SEGMENTS, SOFT_SCORES, max_seg_num=2)
    assert order.tolist() == [0, 2]


def test_multiclass_nms_only_suppresses_within_a_class():
    segments, scores, classes = seg((0, 10), (1, 11)), vec(0.9, 0.8), torch.tensor([0, 1])
    options = dict(iou_threshold=0.5, use_soft_nms=False)
    per_class = batched_nms(segments, scores, classes, multiclass=True, **options)
    agnostic = batched_nms(segments, scores, classes, multiclass=False, **options)
    assert per_class.indices.tolist() == [0, 1]
    assert per_class.class_ids.tolist() == [0, 1]
    assert agnostic.indices.tolist() == [0]


def test_multiclass_nms_merges_classes_by_score_and_caps_the_union():
    segments = seg((0, 1), (2, 3), (4, 5), (6, 7))
    scores, classes = vec(0.2, 0.9, 0.5, 0.7), torch.tensor([3, 3, 8, 8])
    result = batched_nms(segments, scores, classes, max_seg_num=3, use_soft_nms=False)
    assert result.indices.tolist() == [1, 3, 2]
    assert result.scores.tolist() == [0.9, 0.7, 0.5]
    assert result.class_ids.tolist() == [3, 8, 8]


# A and B overlap with tIoU 8/12; C is far away.
VOTE_SEGMENTS = seg((0, 10), (2, 12), (50, 60))
VOTE_SCORES = vec(0.9, 0.6, 0.3)


def test_voting_replaces_boundaries_by_score_weighted_mean_of_overlapping_inputs():
    result = batched_nms(
        VOTE_SEGMENTS, VOTE_SCORES, torch.tensor([0, 0, 0]),
        iou_threshold=0.5, use_soft_nms=False, voting_threshold=0.6,
    )  # fmt: skip
    assert result.indices.tolist() == [0, 2]
    # A absorbs the suppressed B: (0.9 * [0, 10] + 0.6 * [2, 12]) / 1.5.
    assert torch.allclose(result.segments, seg((0.8, 10.8), (50, 60)))
    assert result.scores.tolist() == [0.9, 0.3]


def test_multiclass_voting_only_counts_votes_of_the_same_class():
    result = batched_nms(
        VOTE_SEGMENTS, VOTE_SCORES, torch.tensor([0, 1, 0]),
        iou_threshold=0.5, use_soft_nms=False, voting_threshold=0.6,
    )  # fmt: skip
    assert result.indices.tolist() == [0, 1, 2]
    assert torch.equal(result.segments, VOTE_SEGMENTS)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_empty_input_gives_empty_outputs_of_the_right_types(dtype):
    segments, scores = torch.empty(0, 2, dtype=dtype), torch.empty(0, dtype=dtype)
    classes = torch.empty(0, dtype=torch.long)
    assert nms(segments, scores, 0.5).dtype == torch.long
    assert nms(segments, scores, 0.5).shape == (0,)
    kept, kept_scores, order = soft_nms(segments, scores)
    assert (kept.shape, kept_scores.shape, order.shape) == ((0, 2), (0,), (0,))
    for multiclass in (True, False):
        result = batched_nms(segments, scores, classes, multiclass=multiclass, voting_threshold=0.5)
        assert result.segments.shape == (0, 2) and result.segments.dtype == dtype
        assert result.scores.shape == (0,) and result.scores.dtype == dtype
        assert result.class_ids.dtype == torch.long and result.indices.dtype == torch.long


def test_float32_results_stay_float32_and_agree_with_float64():
    result32 = batched_nms(SOFT_SEGMENTS.float(), SOFT_SCORES.float(), torch.tensor([0, 0, 0]))
    result64 = batched_nms(SOFT_SEGMENTS, SOFT_SCORES, torch.tensor([0, 0, 0]))
    assert result32.scores.dtype == torch.float32
    assert torch.equal(result32.indices, result64.indices)
    assert torch.allclose(result32.scores.double(), result64.scores, atol=1e-6)


def test_config_defaults_are_actionformer_settings_and_feed_batched_nms():
    config = NMSConfig()
    assert (config.iou_threshold, config.sigma, config.min_score) == (0.1, 0.5, 0.001)
    assert (config.max_seg_num, config.method, config.multiclass) == (200, "gaussian", True)
    assert config.use_soft_nms and config.voting_threshold is None
    result = batched_nms(SOFT_SEGMENTS, SOFT_SCORES, torch.tensor([0, 0, 0]), **asdict(config))
    assert result.indices.tolist() == [0, 2, 1]


@pytest.mark.parametrize(
    "bad", [dict(method="cosine"), dict(sigma=0.0), dict(max_seg_num=0), dict(iou_threshold=1.5)]
)
def test_config_rejects_invalid_values_naming_the_key(bad):
    with pytest.raises(ConfigError, match=f"nms.{next(iter(bad))}"):
        NMSConfig(**bad)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_results_equal_cpu_results():
    generator = torch.Generator().manual_seed(0)
    starts = torch.rand(500, generator=generator, dtype=torch.float64) * 100
    segments = torch.stack([starts, starts + torch.rand(500, generator=generator) * 10], 1)
    scores = torch.rand(500, generator=generator, dtype=torch.float64)
    classes = torch.randint(0, 20, (500,), generator=generator)
    for multiclass in (True, False):
        options = dict(multiclass=multiclass, voting_threshold=0.7)
        cpu = batched_nms(segments, scores, classes, **options)
        gpu = batched_nms(segments.cuda(), scores.cuda(), classes.cuda(), **options)
        assert gpu.scores.is_cuda
        assert torch.equal(gpu.indices.cpu(), cpu.indices)
        assert torch.allclose(gpu.scores.cpu(), cpu.scores, atol=1e-9)
        assert torch.allclose(gpu.segments.cpu(), cpu.segments, atol=1e-9)


# --- Properties against the reference loops --------------------------------------------

_coordinate = st.floats(0, 20, allow_subnormal=False)
_length = st.one_of(st.just(0.0), st.floats(0, 8, allow_subnormal=False))


@st.composite
def candidate_sets(draw, max_size: int = 30, num_classes: int = 3):
    """`(segments (N, 2), distinct scores (N,), class ids (N,))`, float64, heavy overlap."""
    n = draw(st.integers(0, max_size))
    starts = draw(st.lists(_coordinate, min_size=n, max_size=n))
    lengths = draw(st.lists(_length, min_size=n, max_size=n))
    scores = draw(
        st.lists(st.floats(0, 1, allow_subnormal=False), min_size=n, max_size=n, unique=True)
    )
    classes = draw(st.lists(st.integers(0, num_classes - 1), min_size=n, max_size=n))
    segments = torch.stack([vec(*starts), vec(*starts) + vec(*lengths)], dim=1)
    return segments, vec(*scores), torch.tensor(classes, dtype=torch.long)


_iou_threshold = st.floats(0, 1)
_min_score = st.sampled_from([0.0, 0.001, 0.2, 0.5])
_max_seg_num = st.one_of(st.none(), st.integers(1, 8))
_sigma = st.floats(0.05, 2.0)


@settings(max_examples=120, deadline=None)
@given(candidate_sets(), _iou_threshold, _min_score, _max_seg_num)
def test_nms_matches_reference_loop_on_random_inputs(data, iou_threshold, min_score, cap):
    segments, scores, _ = data
    keep = nms(segments, scores, iou_threshold, min_score, cap)
    assert torch.equal(keep, reference_nms(segments, scores, iou_threshold, min_score, cap))


@settings(max_examples=120, deadline=None)
@given(candidate_sets(), _iou_threshold, _sigma, _min_score, _max_seg_num, st.sampled_from(METHODS))
def test_soft_nms_matches_reference_loop_on_random_inputs(
    data, iou_threshold, sigma, min_score, cap, method
):
    segments, scores, _ = data
    args = (segments, scores, iou_threshold, sigma, min_score, cap, method)
    kept, kept_scores, order = soft_nms(*args)
    ref_kept, ref_scores, ref_order = reference_soft_nms(*args)
    assert torch.equal(order, ref_order)
    assert torch.equal(kept, ref_kept)
    assert torch.allclose(kept_scores, ref_scores, atol=1e-6)


@settings(max_examples=120, deadline=None)
@given(
    candidate_sets(),
    _iou_threshold,
    _sigma,
    _min_score,
    _max_seg_num,
    st.sampled_from(METHODS),
    st.booleans(),
    st.booleans(),
    st.one_of(st.none(), st.floats(0, 1)),
)
def test_batched_nms_matches_reference_loop_on_random_inputs(
    data, iou_threshold, sigma, min_score, cap, method, use_soft_nms, multiclass, voting
):
    segments, scores, classes = data
    options = dict(
        iou_threshold=iou_threshold, sigma=sigma, min_score=min_score, max_seg_num=cap,
        method=method, use_soft_nms=use_soft_nms, multiclass=multiclass, voting_threshold=voting,
    )  # fmt: skip
    result = batched_nms(segments, scores, classes, **options)
    expected = reference_batched_nms(segments, scores, classes, **options)
    assert torch.equal(result.indices, expected.indices)
    assert torch.equal(result.class_ids, expected.class_ids)
    assert torch.allclose(result.scores, expected.scores, atol=1e-6)
    assert torch.allclose(result.segments, expected.segments, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(candidate_sets(), _iou_threshold, _min_score)
def test_hard_nms_output_is_a_non_overlapping_subset_of_the_input(data, iou_threshold, min_score):
    segments, scores, _ = data
    keep = nms(segments, scores, iou_threshold, min_score)
    assert len(set(keep.tolist())) == len(keep)
    assert ((keep >= 0) & (keep < len(scores))).all()
    assert (scores[keep] >= min_score).all()
    assert torch.equal(scores[keep], scores[keep].sort(descending=True).values)
    pairs = ~torch.eye(len(keep), dtype=torch.bool)
    assert (segment_iou(segments[keep], segments[keep])[pairs] < iou_threshold).all()


@settings(max_examples=100, deadline=None)
@given(candidate_sets(), _iou_threshold, _sigma, st.sampled_from(METHODS))
def test_soft_nms_scores_never_increase(data, iou_threshold, sigma, method):
    segments, scores, _ = data
    _, kept_scores, order = soft_nms(segments, scores, iou_threshold, sigma, 0.0, None, method)
    assert (kept_scores <= scores[order]).all()
    assert (kept_scores[1:] <= kept_scores[:-1]).all()


@settings(max_examples=100, deadline=None)
@given(candidate_sets(), _iou_threshold, _min_score, _max_seg_num)
def test_hard_soft_nms_equals_greedy_nms(data, iou_threshold, min_score, cap):
    segments, scores, _ = data
    _, kept_scores, order = soft_nms(segments, scores, iou_threshold, 1.0, min_score, cap, "hard")
    assert torch.equal(order, nms(segments, scores, iou_threshold, min_score, cap))
    assert torch.equal(kept_scores, scores[order])
