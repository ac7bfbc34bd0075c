"""Heads, points, label assignment, detection losses and decoding (model.md §5, §7, §9)."""

from __future__ import annotations

import math

import pytest
import torch

from delcli.model.assign import assign_batch, assign_labels, make_points
from delcli.model.config import LossConfig, ModelConfig
from delcli.model.decode import decode_candidates
from delcli.model.heads import ClassificationHead, RegressionHead
from delcli.model.losses import (
    PositiveCountNormalizer,
    ctr_diou_loss_1d,
    detection_losses,
    sigmoid_focal_loss,
    smooth_l1_offset_loss,
    softmax_cross_entropy_loss,
)

INF = float("inf")


def small_config(**overrides) -> ModelConfig:
    settings = dict(
        num_classes=3,
        embed_dim=16,
        n_heads=2,
        adapter_heads=2,
        head_dim=8,
        n_levels=2,
        max_seq_len=16,
        window_size=0,
    )
    settings.update(overrides)
    return ModelConfig(**settings)


def pyramid(batch: int, length: int, valid: list[int], config: ModelConfig, seed: int = 0):
    """Random level features with the given valid length at level 0, padded to `length`."""
    generator = torch.Generator().manual_seed(seed)
    levels, masks = [], []
    for stride in config.strides:
        steps = length // stride
        x = torch.randn(batch, steps, config.embed_dim, generator=generator)
        mask = (
            torch.arange(steps)[None, :] < torch.tensor([-(-v // stride) for v in valid])[:, None]
        )
        levels.append(x * mask[..., None])
        masks.append(mask)
    return levels, masks


# --- heads -------------------------------------------------------------------------------


def test_heads_give_one_output_per_level_with_the_documented_shapes():
    config = small_config()
    levels, masks = pyramid(2, 16, [16, 11], config)
    logits = ClassificationHead(config)(levels, masks)
    offsets = RegressionHead(config)(levels, masks)
    assert [tuple(y.shape) for y in logits] == [(2, 16, 3), (2, 8, 3)]
    assert [tuple(y.shape) for y in offsets] == [(2, 16, 2), (2, 8, 2)]
    for y, mask in zip(logits + offsets, masks + masks, strict=True):
        assert torch.all(y[~mask] == 0)


def test_classification_starts_at_the_prior_probability():
    config = small_config(prior_prob=0.01)
    head = ClassificationHead(config)
    assert torch.allclose(head.logits.conv.bias, torch.full((3,), -math.log(99.0)))
    levels = [torch.zeros(1, 8, 16), torch.zeros(1, 4, 16)]
    masks = [torch.ones(1, 8, dtype=torch.bool), torch.ones(1, 4, dtype=torch.bool)]
    for logits in head(levels, masks):
        assert torch.allclose(torch.sigmoid(logits), torch.full_like(logits, 0.01))


def test_regression_head_has_one_learnable_scale_per_level_and_non_negative_offsets():
    config = small_config(n_levels=3)
    head = RegressionHead(config)
    assert len(head.scales) == 3
    assert all(s.scale.requires_grad and s.scale.item() == 1.0 for s in head.scales)
    levels, masks = pyramid(2, 16, [16, 9], config, seed=3)
    offsets = head(levels, masks)
    assert all(torch.all(y >= 0) for y in offsets)
    assert any(torch.any(y > 0) for y in offsets)
    with torch.no_grad():
        head.scales[1].scale.fill_(2.0)
    doubled = head(levels, masks)
    assert torch.allclose(doubled[1], 2 * offsets[1])
    assert torch.equal(doubled[0], offsets[0])


def test_head_layers_one_is_a_single_conv_on_the_features():
    config = small_config(head_layers=1)
    levels, masks = pyramid(1, 16, [16], config)
    assert len(ClassificationHead(config).trunk) == 0
    assert ClassificationHead(config)(levels, masks)[0].shape == (1, 16, 3)


@pytest.mark.parametrize("head_type", [ClassificationHead, RegressionHead])
def test_padding_does_not_change_valid_outputs(head_type):
    config = small_config()
    head = head_type(config).eval()
    short, short_masks = pyramid(1, 8, [8], config, seed=5)  # no padding at all
    long = [torch.cat([x, torch.zeros_like(x)], dim=1) for x in short]
    long_masks = [torch.cat([m, torch.zeros_like(m)], dim=1) for m in short_masks]
    for a, b, mask in zip(
        head(short, short_masks), head(long, long_masks), short_masks, strict=True
    ):
        valid = mask.shape[1]
        assert torch.allclose(a, b[:, :valid], atol=1e-6)
        assert torch.all(b[:, valid:] == 0)


# --- points and assignment ---------------------------------------------------------------


def test_make_points_lists_every_step_of_every_level():
    config = small_config(regression_ranges=((0, 4), (4, INF)))
    points = make_points([4, 2], config)
    expected = torch.tensor(
        [
            [0, 0, 4, 1],
            [1, 0, 4, 1],
            [2, 0, 4, 1],
            [3, 0, 4, 1],
            [0, 4, INF, 2],
            [2, 4, INF, 2],
        ]
    )
    assert points.dtype == torch.float32
    assert torch.equal(points, expected.float())


def two_level_points() -> torch.Tensor:
    """16 points at stride 1 (range 0–4) and 8 at stride 2 (range 4–∞)."""
    return make_points([16, 8], small_config(regression_ranges=((0, 4), (4, INF))))


def test_regression_range_picks_the_level_by_the_farther_boundary():
    points = two_level_points()
    segments = torch.tensor([[2.0, 6.0], [4.0, 16.0]])  # lengths 4 and 12
    cls, reg = assign_labels(points, segments, torch.tensor([0, 1]), 3, 1.5)
    positive = cls.sum(-1) > 0
    # Short event: centre 4, radius 1.5 → t ∈ {3, 4, 5} at stride 1; max distance ≤ 3 ≤ 4.
    # At stride 2 its window is 4 ± 3 clipped to (2, 6): t = 4 with distance 2 < 4 → out of range.
    level0 = positive[:16].nonzero().squeeze(1).tolist()
    assert level0 == [3, 4, 5]
    assert torch.equal(cls[4], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(reg[4], torch.tensor([2.0, 2.0]))
    # Long event: centre 10, window (7, 13); stride-1 points there have max distance > 4;
    # stride-2 points t = 8, 10, 12 (indices 4, 5, 6), targets in units of 2.
    level1 = positive[16:].nonzero().squeeze(1).tolist()
    assert level1 == [4, 5, 6]
    assert torch.equal(cls[16 + 5], torch.tensor([0.0, 1.0, 0.0]))
    assert torch.allclose(reg[16 + 4], torch.tensor([2.0, 4.0]))  # t=8: (4, 8) / 2
    assert torch.allclose(reg[16 + 5], torch.tensor([3.0, 3.0]))


def test_centre_sampling_excludes_points_away_from_the_centre():
    config = small_config(n_levels=1, regression_ranges=((0, INF),))
    points = make_points([16], config)
    segments = torch.tensor([[0.0, 12.0]])
    cls, _ = assign_labels(points, segments, torch.tensor([2]), 3, 1.5)
    # Centre 6 ± 1.5 → strictly inside (4.5, 7.5): t = 5, 6, 7.
    assert cls[:, 2].nonzero().squeeze(1).tolist() == [5, 6, 7]
    cls, _ = assign_labels(points, segments, torch.tensor([2]), 3, 0.0)
    # Radius 0: anywhere strictly inside the event.
    assert cls[:, 2].nonzero().squeeze(1).tolist() == list(range(1, 12))


def test_overlapping_events_go_to_the_shortest():
    config = small_config(n_levels=1, regression_ranges=((0, INF),))
    points = make_points([16], config)
    segments = torch.tensor([[0.0, 12.0], [4.0, 8.0]])  # both cover t = 5, 6, 7
    cls, reg = assign_labels(points, segments, torch.tensor([0, 1]), 3, 1.5)
    for t in (5, 6, 7):
        assert torch.equal(cls[t], torch.tensor([0.0, 1.0, 0.0]))
        assert torch.allclose(reg[t], torch.tensor([t - 4.0, 8.0 - t]))


def test_equal_lengths_give_multi_hot_labels_and_the_first_events_regression():
    config = small_config(n_levels=1, regression_ranges=((0, INF),))
    points = make_points([16], config)
    segments = torch.tensor([[4.0, 8.0], [5.0, 9.0], [4.0, 8.0005]])  # the third within 1e-3
    cls, reg = assign_labels(points, segments, torch.tensor([2, 0, 1]), 3, 1.5)
    # t = 6: all three match with lengths 4, 4, 4.0005 → multi-hot; regression of event 0.
    assert torch.equal(cls[6], torch.ones(3))
    assert torch.allclose(reg[6], torch.tensor([2.0, 2.0]))
    # t = 5: events 0 and 2 match (event 1's window is (5.5, 8.5)).
    assert torch.equal(cls[5], torch.tensor([0.0, 1.0, 1.0]))
    assert torch.allclose(reg[5], torch.tensor([1.0, 3.0]))


def test_no_events_means_every_point_is_negative():
    points = two_level_points()
    cls, reg = assign_labels(points, torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), 3, 1.5)
    assert cls.shape == (24, 3) and reg.shape == (24, 2)
    assert torch.all(cls == 0) and torch.all(reg == 0)


def test_assign_batch_stacks_per_video_targets():
    points = two_level_points()
    segments = [torch.tensor([[2.0, 6.0]]), torch.zeros(0, 2)]
    labels = [torch.tensor([1]), torch.zeros(0, dtype=torch.long)]
    cls, reg = assign_batch(points, segments, labels, 3, 1.5)
    single_cls, single_reg = assign_labels(points, segments[0], labels[0], 3, 1.5)
    assert cls.shape == (2, 24, 3) and reg.shape == (2, 24, 2)
    assert torch.equal(cls[0], single_cls) and torch.equal(reg[0], single_reg)
    assert torch.all(cls[1] == 0)


# --- losses ------------------------------------------------------------------------------


def test_diou_matches_hand_computed_values():
    same = ctr_diou_loss_1d(torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 1.0]]))
    assert same.item() == pytest.approx(0.0, abs=1e-7)
    # pred (1, 3), target (2, 2): inter 1 + 2 = 3, union 8 − 3 = 5, IoU 0.6;
    # enclosing 2 + 3 = 5, ρ = ½·((3 − 1) − 0) = 1 → 1 − 0.6 + (1/5)² = 0.44.
    loss = ctr_diou_loss_1d(torch.tensor([[1.0, 3.0]]), torch.tensor([[2.0, 2.0]]))
    assert loss.item() == pytest.approx(0.44)
    both = ctr_diou_loss_1d(
        torch.tensor([[1.0, 1.0], [1.0, 3.0]]), torch.tensor([[1.0, 1.0], [2.0, 2.0]]), "none"
    )
    assert torch.allclose(both, torch.tensor([0.0, 0.44]))


def test_diou_of_empty_segments_is_finite():
    pred = torch.zeros(1, 2, requires_grad=True)
    loss = ctr_diou_loss_1d(pred, torch.zeros(1, 2))
    loss.backward()
    assert torch.isfinite(loss) and torch.all(torch.isfinite(pred.grad))


def test_focal_loss_matches_hand_computed_values():
    # x = 0 → p = ½, BCE = log 2, (1 − p_t)² = ¼; target 1 → α = 0.25, target 0 → 0.75.
    logits = torch.zeros(2)
    loss = sigmoid_focal_loss(logits, torch.tensor([1.0, 0.0]), reduction="none")
    log2 = math.log(2.0)
    assert torch.allclose(loss, torch.tensor([0.25 * 0.25 * log2, 0.75 * 0.25 * log2]))
    # x = log 3 → p = ¾; target 1: BCE = log(4/3), (¼)² = 1/16, α = 0.25.
    one = sigmoid_focal_loss(torch.tensor([math.log(3.0)]), torch.tensor([1.0]))
    assert one.item() == pytest.approx(0.25 / 16 * math.log(4.0 / 3.0))
    assert sigmoid_focal_loss(torch.zeros(2, 2, dtype=torch.bfloat16), torch.zeros(2, 2)).dtype == (
        torch.float32
    )


def test_smooth_l1_is_quadratic_below_beta_and_linear_above():
    pred = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    target = torch.tensor([[1.5, 2.0], [3.0, 0.0]])
    per_point = smooth_l1_offset_loss(pred, target, beta=1.0, reduction="none")
    assert torch.allclose(per_point, torch.tensor([0.5 * 0.25, 3.0 - 0.5]))
    assert smooth_l1_offset_loss(pred, target).item() == pytest.approx(0.125 + 2.5)


def test_cross_entropy_option_uses_an_implicit_zero_background_logit():
    logits = torch.tensor([[math.log(2.0), 0.0], [0.0, 0.0], [0.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    loss = softmax_cross_entropy_loss(logits, targets, reduction="none")
    # Row 0: softmax over [log 2, 0, 0] = [½, ¼, ¼], target class 0 → log 2.
    # Row 1: no class → background, P = ⅓ → log 3. Row 2: ½ on each class → log 3.
    assert torch.allclose(loss, torch.tensor([math.log(2.0), math.log(3.0), math.log(3.0)]))
    smoothed = softmax_cross_entropy_loss(logits[:1], targets[:1], label_smoothing=0.3)
    # q = 0.7·[1, 0, 0] + 0.1 = [0.8, 0.1, 0.1] against [½, ¼, ¼].
    expected = -(0.8 * math.log(0.5) + 0.2 * math.log(0.25))
    assert smoothed.item() == pytest.approx(expected)


def test_normalizer_follows_the_positive_count_ema_in_training_only():
    normalizer = PositiveCountNormalizer(LossConfig(normalizer_init=100.0, normalizer_momentum=0.9))
    assert "value" in normalizer.state_dict()
    assert normalizer(torch.tensor(20)).item() == pytest.approx(92.0)
    assert normalizer(0).item() == pytest.approx(0.9 * 92.0 + 0.1)  # max(n_pos, 1)
    normalizer.eval()
    assert normalizer(1000).item() == pytest.approx(0.9 * 92.0 + 0.1)


def detection_inputs(positive_points: int):
    generator = torch.Generator().manual_seed(7)
    cls_logits = torch.randn(2, 6, 3, generator=generator, requires_grad=True)
    offsets = torch.rand(2, 6, 2, generator=generator).requires_grad_()
    cls_targets = torch.zeros(2, 6, 3)
    reg_targets = torch.zeros(2, 6, 2)
    cls_targets[0, :positive_points, 1] = 1.0
    reg_targets[0, :positive_points] = torch.tensor([1.0, 2.0])
    valid = torch.ones(2, 6, dtype=torch.bool)
    valid[1, 4:] = False
    return cls_logits, offsets, cls_targets, reg_targets, valid


@pytest.mark.parametrize("cls_loss", ["focal", "ce"])
@pytest.mark.parametrize("reg_loss", ["diou", "smooth_l1"])
def test_zero_positives_give_a_finite_cls_and_a_zero_reg(cls_loss, reg_loss):
    config = LossConfig(cls_loss=cls_loss, reg_loss=reg_loss)
    inputs = detection_inputs(positive_points=0)
    losses = detection_losses(*inputs, config, PositiveCountNormalizer(config))
    assert set(losses) == {"cls", "reg"}
    assert torch.isfinite(losses["cls"]) and losses["reg"].item() == 0.0
    (losses["cls"] + losses["reg"]).backward()
    assert torch.all(torch.isfinite(inputs[0].grad)) and torch.all(torch.isfinite(inputs[1].grad))


@pytest.mark.parametrize("reg_loss", ["smooth_l1", "diou"])
def test_detection_losses_sum_over_valid_points_and_divide_by_the_normalizer(reg_loss):
    config = LossConfig(normalizer_init=10.0, normalizer_momentum=0.5, reg_loss=reg_loss)
    cls_logits, offsets, cls_targets, reg_targets, valid = detection_inputs(positive_points=2)
    losses = detection_losses(
        cls_logits,
        offsets,
        cls_targets,
        reg_targets,
        valid,
        config,
        PositiveCountNormalizer(config),
    )
    norm = 0.5 * 10.0 + 0.5 * 2.0
    focal = sigmoid_focal_loss(cls_logits[valid], cls_targets[valid])
    regression = {"diou": ctr_diou_loss_1d, "smooth_l1": smooth_l1_offset_loss}[reg_loss]
    reg = regression(offsets[0, :2], reg_targets[0, :2])
    assert losses["cls"].item() == pytest.approx(focal.item() / norm, rel=1e-5)
    assert losses["reg"].item() == pytest.approx(reg.item() / norm, rel=1e-5)


def test_label_smoothing_spreads_epsilon_over_classes_plus_one():
    config = LossConfig(label_smoothing=0.2, normalizer_init=1.0, normalizer_momentum=1.0)
    cls_logits, offsets, cls_targets, reg_targets, valid = detection_inputs(positive_points=2)
    losses = detection_losses(
        cls_logits,
        offsets,
        cls_targets,
        reg_targets,
        valid,
        config,
        PositiveCountNormalizer(config),
    )
    smoothed = cls_targets * 0.8 + 0.2 / 4
    expected = sigmoid_focal_loss(cls_logits[valid], smoothed[valid])
    assert losses["cls"].item() == pytest.approx(expected.item(), rel=1e-5)


# --- decoding ----------------------------------------------------------------------------


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def test_decode_thresholds_ranks_and_maps_points_to_grid_segments():
    config = small_config(num_classes=2, pre_nms_thresh=0.1, pre_nms_topk=2, min_duration=0.5)
    low = logit(0.05)
    level0 = torch.full((1, 4, 2), low)
    level0[0, 1, 0] = logit(0.9)
    level0[0, 2, 1] = logit(0.6)
    level0[0, 3, 0] = logit(0.3)  # third best: cut by top-k = 2
    level1 = torch.full((1, 2, 2), low)
    level1[0, 1, 1] = logit(0.8)
    level1[0, 0, 0] = logit(0.7)  # zero offsets → length 0 ≤ min_duration: dropped
    offsets0 = torch.tensor([[[0.0, 0.0], [1.0, 2.0], [0.5, 0.25], [1.0, 1.0]]])
    offsets1 = torch.tensor([[[0.0, 0.0], [1.0, 0.5]]])
    masks = [torch.ones(1, 4, dtype=torch.bool), torch.ones(1, 2, dtype=torch.bool)]
    (video,) = decode_candidates([level0, level1], [offsets0, offsets1], masks, config)
    # Level 0 (stride 1): t=1 → [0, 3] class 0; t=2 → [1.5, 2.25] class 1.
    # Level 1 (stride 2): t=2 → [2 − 2, 2 + 1] class 1.
    assert torch.allclose(video.segments, torch.tensor([[0.0, 3.0], [1.5, 2.25], [0.0, 3.0]]))
    assert torch.allclose(video.scores, torch.tensor([0.9, 0.6, 0.8]))
    assert video.labels.tolist() == [0, 1, 1]
    assert video.labels.dtype == torch.long


def test_decode_ignores_padded_points_and_breaks_ties_by_position():
    config = small_config(num_classes=2, pre_nms_thresh=0.1, pre_nms_topk=3, min_duration=0.0)
    logits = [torch.full((2, 4, 2), logit(0.5)), torch.full((2, 2, 2), -20.0)]
    offsets = [torch.ones(2, 4, 2), torch.ones(2, 2, 2)]
    masks = [torch.tensor([[True] * 4, [True, False, False, False]]), torch.ones(2, 2).bool()]
    first, second = decode_candidates(logits, offsets, masks, config)
    # Equal scores: lowest (point, class) first; top-k keeps three.
    assert first.labels.tolist() == [0, 1, 0]
    assert torch.allclose(first.segments, torch.tensor([[-1.0, 1.0], [-1.0, 1.0], [0.0, 2.0]]))
    # Only point 0 of the second video is valid.
    assert second.labels.tolist() == [0, 1]
    assert torch.allclose(second.segments, torch.tensor([[-1.0, 1.0], [-1.0, 1.0]]))


def test_decode_of_a_batch_equals_decoding_each_video_alone():
    config = small_config(pre_nms_thresh=0.3)
    generator = torch.Generator().manual_seed(11)
    logits = [torch.randn(3, 16, 3, generator=generator), torch.randn(3, 8, 3, generator=generator)]
    offsets = [torch.rand(3, 16, 2, generator=generator), torch.rand(3, 8, 2, generator=generator)]
    masks = [torch.ones(3, 16, dtype=torch.bool), torch.ones(3, 8, dtype=torch.bool)]
    batched = decode_candidates(logits, offsets, masks, config)
    for b in range(3):
        (alone,) = decode_candidates(
            [y[b : b + 1] for y in logits],
            [d[b : b + 1] for d in offsets],
            [m[b : b + 1] for m in masks],
            config,
        )
        for x, y in zip(batched[b], alone, strict=True):
            assert torch.equal(x, y)
