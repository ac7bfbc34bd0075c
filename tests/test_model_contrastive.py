"""Score-based contrastive learning (paper §3.3, Eq. 7–10; model.md §6)."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from delcli.errors import DataError
from delcli.model.config import ModelConfig
from delcli.model.contrastive import ScoreContrastive, inter_sample_loss, token_targets
from delcli.model.intra_sample import (
    PairSelection,
    hardest_negatives,
    intra_sample_loss,
    positive_targets,
    select_pairs,
)

D, C, T = 16, 5, 12


def small_config(**overrides) -> ModelConfig:
    return ModelConfig(embed_dim=D, num_classes=C, projection_dim=8, **overrides)


def crafted_module(config: ModelConfig) -> ScoreContrastive:
    """Token heads that read their logits from the features: channel 0 is s_t,
    channels 1..C are c_t; the rest only feed the projection heads."""
    torch.manual_seed(0)
    module = ScoreContrastive(config)
    with torch.no_grad():
        for head in module.heads.values():
            head.score.weight.zero_()
            head.score.weight[0, 0] = 1.0
            head.score.bias.zero_()
            head.category.weight.zero_()
            head.category.weight[:, 1 : C + 1] = torch.eye(C)
            head.category.bias.zero_()
    return module


def crafted_tokens(score: list[float], category: list[int], seed: int) -> torch.Tensor:
    """(1, len, D) features whose crafted heads predict `score` logits and argmax `category`."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(1, len(score), D, generator=generator)
    x[0, :, : C + 1] = 0.0
    x[0, :, 0] = torch.tensor(score)
    x[0, torch.arange(len(score)), 1 + torch.tensor(category)] = 3.0
    return x


def hand_targets(labels: list[int], length: int) -> tuple[torch.Tensor, ...]:
    """mask, in_event, token_label (1, length) from per-step labels (−1 background);
    steps beyond len(labels) are padding."""
    token_label = torch.full((1, length), -1)
    token_label[0, : len(labels)] = torch.tensor(labels)
    mask = torch.zeros(1, length, dtype=torch.bool)
    mask[0, : len(labels)] = True
    return mask, token_label >= 0, token_label


def run_module(module, visual, audio, labels, cls=None):
    mask, in_event, token_label = hand_targets(labels, visual.shape[1])
    cls_visual, cls_audio = cls if cls is not None else (torch.randn(1, D), torch.randn(1, D))
    return module(visual, audio, cls_visual, cls_audio, mask, in_event, token_label)


# token_targets


def test_token_targets_take_the_shortest_covering_event_and_skip_padding():
    segments = [torch.tensor([[1.0, 6.0], [3.0, 4.0], [9.0, 11.0]]), torch.zeros(0, 2)]
    labels = [torch.tensor([2, 4, 1]), torch.zeros(0, dtype=torch.long)]
    mask = torch.ones(2, T, dtype=torch.bool)
    mask[0, 10:] = False
    in_event, token_label = token_targets(segments, labels, mask, C)
    assert token_label[0].tolist() == [-1, 2, 2, 4, 4, 2, 2, -1, -1, 1, -1, -1]
    assert in_event[0].tolist() == [t in (1, 2, 3, 4, 5, 6, 9) for t in range(T)]
    assert not in_event[1].any() and (token_label[1] == -1).all()


def test_token_targets_break_equal_durations_towards_the_lower_index():
    segments = [torch.tensor([[2.0, 5.0], [0.0, 3.0], [4.0, 7.0]])]
    _, token_label = token_targets(segments, [torch.tensor([3, 1, 0])], torch.ones(1, 8).bool(), C)
    assert token_label[0].tolist() == [1, 1, 3, 3, 3, 3, 0, 0]


def test_token_targets_reject_labels_outside_the_classes():
    with pytest.raises(DataError, match="labels"):
        token_targets([torch.tensor([[0.0, 2.0]])], [torch.tensor([C])], torch.ones(1, 4).bool(), C)


# pair selection


def test_select_pairs_marks_positives_and_hard_negatives_exactly():
    # step:            0    1    2    3    4    5    6    7
    score = torch.tensor([[2.0, 2.0, -1.0, 2.0, 2.0, 0.5, 2.0, 2.0]])
    argmax = torch.tensor([[0, 1, 0, 3, 2, 2, 4, 0]])
    labels = [0, 0, 0, -1, 2, 2, 1]  # step 7 is padding
    mask, in_event, token_label = hand_targets(labels, 8)
    pairs = select_pairs(score, F.one_hot(argmax, C).float(), in_event, token_label, mask)
    # 0: right class; 1: wrong class; 2: not confident; 3: confident background;
    # 4, 5: right class; 6: wrong class; 7: padding.
    assert pairs.positives[0].nonzero().flatten().tolist() == [0, 4, 5]
    assert pairs.hard_negatives[0].nonzero().flatten().tolist() == [1, 3, 6]


def test_hardest_negatives_keep_the_most_confident_ones():
    confidence = torch.tensor([[5.0, 1.0, 3.0, 9.0, 2.0, 4.0]])
    hard = torch.tensor([[True, True, True, False, True, False]])
    index, valid = hardest_negatives(hard, confidence, max_negatives=2)
    assert set(index[valid].tolist()) == {0, 2}
    index, valid = hardest_negatives(hard, confidence, max_negatives=64)
    assert sorted(index[valid].tolist()) == [0, 1, 2, 4]


def test_positive_is_the_same_step_token_else_the_class_mean():
    z_other = F.normalize(torch.randn(1, 8, 4), dim=-1)
    token_label = torch.tensor([[0, 0, 0, 2, 1, 1, -1, 0]])
    other_positives = torch.tensor([[False, True, True, False, True, False, False, False]])
    z_plus, has_positive = positive_targets(z_other, other_positives, token_label)
    torch.testing.assert_close(z_plus[0, 1], z_other[0, 1])  # same step is a positive
    class_0 = F.normalize(z_other[0, 1] + z_other[0, 2], dim=-1)
    torch.testing.assert_close(z_plus[0, 0], class_0)
    torch.testing.assert_close(z_plus[0, 7], class_0)
    torch.testing.assert_close(z_plus[0, 5], z_other[0, 4])  # the only class-1 positive
    assert has_positive[0].tolist() == [True, True, True, False, True, True, False, True]


def test_intra_loss_matches_eq8_on_a_hand_example():
    basis = torch.eye(4)
    z_visual = basis[[0, 1, 2]].unsqueeze(0)
    z_audio = F.normalize(torch.tensor([[[1.0, 1.0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]]), dim=-1)
    token_label = torch.tensor([[0, -1, -1]])
    flags = torch.tensor
    visual = PairSelection(
        flags([[True, False, False]]), flags([[False, False, False]]), torch.zeros(1, 3)
    )
    audio = PairSelection(
        flags([[True, False, False]]), flags([[False, True, True]]), torch.zeros(1, 3)
    )
    tau = torch.tensor(0.5)
    loss = intra_sample_loss(z_visual, z_audio, visual, audio, token_label, tau, 64)
    # One visual anchor e0: z⁺ · = 1/√2, negatives e2, e3 (dot 0); the audio anchor has no HN_V.
    positive = math.exp(1 / math.sqrt(2) / 0.5)
    expected = -math.log(positive / (positive + 2.0))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_negatives_by_ground_truth_exclude_the_anchors_moment_and_class():
    """Visual anchor at step 0 (class 0); its z⁺ is the audio positive at step 1 (class 0).
    Audio hard negatives: step 0 (the anchor's own moment), step 2 (class 0, mispredicted),
    step 3 (class 1), step 4 (background). Only the last two may oppose the anchor; the
    paper's literal rule keeps all four."""
    z_visual = torch.eye(5).unsqueeze(0)
    z_audio = F.normalize(torch.eye(5) + torch.eye(5)[[1, 0, 0, 0, 0]], dim=-1).unsqueeze(0)
    token_label = torch.tensor([[0, 0, 0, 1, -1]])
    flags = torch.tensor
    visual = PairSelection(flags([[True] + [False] * 4]), flags([[False] * 5]), torch.zeros(1, 5))
    audio = PairSelection(
        flags([[False, True, False, False, False]]),
        flags([[True, False, True, True, True]]),
        torch.zeros(1, 5),
    )
    tau = torch.tensor(0.5)

    def expected(negative_steps):
        logit = lambda k: float(z_visual[0, 0] @ z_audio[0, k]) / 0.5  # noqa: E731
        positive = math.exp(logit(1))
        return -math.log(positive / (positive + sum(math.exp(logit(k)) for k in negative_steps)))

    new = intra_sample_loss(z_visual, z_audio, visual, audio, token_label, tau, 64, True)
    old = intra_sample_loss(z_visual, z_audio, visual, audio, token_label, tau, 64, False)
    assert new.item() == pytest.approx(expected([3, 4]), rel=1e-6)
    assert old.item() == pytest.approx(expected([0, 2, 3, 4]), rel=1e-6)


def test_an_anchor_left_without_negatives_by_ground_truth_has_no_term():
    z = F.normalize(torch.ones(1, 2, 4), dim=-1)
    token_label = torch.tensor([[0, 0]])
    flags = torch.tensor
    visual = PairSelection(flags([[True, False]]), flags([[False, False]]), torch.zeros(1, 2))
    audio = PairSelection(flags([[False, True]]), flags([[True, False]]), torch.zeros(1, 2))
    tau = torch.tensor(0.5)
    assert intra_sample_loss(z, z, visual, audio, token_label, tau, 64, True).item() == 0.0
    assert intra_sample_loss(z, z, visual, audio, token_label, tau, 64, False).item() > 0.0


# inter-sample loss


def test_inter_loss_is_log_batch_per_direction_for_identical_embeddings():
    z = F.normalize(torch.ones(6, 8), dim=-1)
    loss = inter_sample_loss(z, z.clone(), torch.tensor(0.07))
    assert loss.item() == pytest.approx(2 * math.log(6), rel=1e-5)


def test_inter_loss_vanishes_for_perfectly_separated_pairs():
    z = torch.eye(4, 8)
    loss = inter_sample_loss(z, z.clone(), torch.tensor(0.25))
    assert loss.item() == pytest.approx(2 * math.log(1 + 3 * math.exp(-1 / 0.25)), rel=1e-5)
    assert inter_sample_loss(z, z.clone(), torch.tensor(0.01)).item() < 1e-6


# the module


def test_video_without_anchor_or_negative_gives_zero_not_nan():
    module = crafted_module(small_config())
    labels = [0, 0, 0, 1, 1, -1, -1, -1]
    unsure = crafted_tokens([-2.0] * 8, [0, 0, 0, 1, 1, 0, 0, 0], seed=1)
    correct = crafted_tokens([2.0] * 5 + [-2.0] * 3, [0, 0, 0, 1, 1, 0, 0, 0], seed=2)
    for visual, audio in ((unsure, unsure), (correct, correct.clone())):
        visual.requires_grad_(True)
        losses = run_module(module, visual, audio, labels)
        assert losses["intra"].item() == 0.0
        sum(losses.values()).backward()
        assert torch.isfinite(visual.grad).all()
        assert all(torch.isfinite(p.grad).all() for p in module.parameters() if p.grad is not None)
        module.zero_grad()


def test_videos_without_terms_do_not_dilute_the_intra_loss():
    module = crafted_module(small_config())
    labels = [0, 0, 0, 1, 1, -1, -1, -1]
    visual = crafted_tokens([2.0] * 8, [0, 0, 0, 0, 0, 0, 0, 3], seed=3)
    audio = crafted_tokens([2.0] * 8, [0, 0, 2, 1, 1, 0, 0, 0], seed=4)
    alone = run_module(module, visual, audio, labels)["intra"]
    assert alone.item() > 0
    quiet = crafted_tokens([-2.0] * 8, [0] * 8, seed=5)
    mask, in_event, token_label = hand_targets(labels, 8)
    losses = module(
        torch.cat([visual, quiet]),
        torch.cat([audio, quiet]),
        torch.randn(2, D),
        torch.randn(2, D),
        mask.repeat(2, 1),
        in_event.repeat(2, 1),
        token_label.repeat(2, 1),
    )
    torch.testing.assert_close(losses["intra"], alone)


def test_gradients_reach_temperature_and_projection_heads_through_intra():
    module = crafted_module(small_config())
    labels = [0, 0, 0, 1, 1, -1, -1, -1]
    visual = crafted_tokens([2.0] * 8, [0, 0, 0, 0, 0, 0, 0, 3], seed=3)
    audio = crafted_tokens([2.0] * 8, [0, 0, 2, 1, 1, 0, 0, 0], seed=4)
    intra = run_module(module, visual, audio, labels)["intra"]
    intra.backward()
    assert module.log_temperature.grad.abs() > 0
    for head in module.heads.values():
        assert all(p.grad.abs().sum() > 0 for p in head.projection.parameters())
        assert head.score.weight.grad is None  # the selection is discrete


def test_batch_of_one_gives_finite_losses_and_gradients():
    torch.manual_seed(0)
    module = ScoreContrastive(small_config())
    visual, audio = torch.randn(1, T, D, requires_grad=True), torch.randn(1, T, D)
    losses = run_module(module, visual, audio, [0, 0, 1, 1, -1, -1, 2, 2, -1, -1])
    assert losses["inter"].item() == pytest.approx(0.0, abs=1e-6)  # log 1
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert torch.isfinite(visual.grad).all()
    assert torch.isfinite(module.log_temperature.grad)


@pytest.mark.parametrize("modalities", ["a", "v"])
def test_single_modality_has_zero_contrastive_terms_and_a_finite_score(modalities):
    torch.manual_seed(0)
    module = ScoreContrastive(small_config(modalities=modalities))
    x = torch.randn(2, T, D)
    mask = torch.ones(2, T, dtype=torch.bool)
    _, _, token_label = hand_targets([0, 0, 1, 1, -1, -1, 2, 2, -1, -1, 3, 3], T)
    token_label = token_label.repeat(2, 1)
    features = (x, None, torch.randn(2, D), None) if modalities == "v" else (None, x, None, None)
    losses = module(*features, mask, token_label >= 0, token_label)
    assert losses["inter"].item() == 0.0 and losses["intra"].item() == 0.0
    assert torch.isfinite(losses["score"]) and losses["score"].item() > 0
    sum(losses.values()).backward()
    assert module.log_temperature is None
    assert all(p.grad is not None for p in module.parameters())  # nothing unused under DDP


def test_score_loss_is_bce_over_valid_steps_plus_ce_over_event_steps():
    module = crafted_module(small_config(modalities="v"))
    labels = [1, 1, -1, 4]
    x = crafted_tokens([0.0, 1.0, -1.0, 2.0, 7.0, 7.0], [1, 0, 0, 4, 0, 0], seed=0)
    x[0, :, 1 : C + 1] *= 0.0
    mask, in_event, token_label = hand_targets(labels, 6)
    score = module(x, None, None, None, mask, in_event, token_label)["score"]
    logits, targets = torch.tensor([0.0, 1.0, -1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0, 1.0])
    expected = F.binary_cross_entropy_with_logits(logits, targets) + math.log(C)
    assert score.item() == pytest.approx(expected.item(), rel=1e-6)


def test_padding_does_not_change_the_losses():
    module = crafted_module(small_config())
    labels = [0, 0, 0, 1, 1, -1, -1, -1]
    visual = crafted_tokens([2.0] * 8, [0, 0, 0, 0, 0, 0, 0, 3], seed=3)
    audio = crafted_tokens([2.0] * 8, [0, 0, 2, 1, 1, 0, 0, 0], seed=4)
    cls = (torch.randn(1, D), torch.randn(1, D))
    short = run_module(module, visual, audio, labels, cls)
    pad = torch.randn(1, 8, D)  # padded steps are zero in the model; any value must be ignored
    long = run_module(module, torch.cat([visual, pad], 1), torch.cat([audio, pad], 1), labels, cls)
    for name in ("score", "inter", "intra"):
        torch.testing.assert_close(long[name], short[name])


def test_temperature_starts_at_its_init_and_is_clamped():
    module = ScoreContrastive(small_config(temperature_init=0.1))
    assert module.temperature().item() == pytest.approx(0.1)
    with torch.no_grad():
        module.log_temperature.fill_(math.log(1e-4))
    assert module.temperature().item() == pytest.approx(0.01)


# DDP: the negatives are the global batch


def _ddp_inter_worker(rank, world_size, init_file, z_visual, z_audio, tau, out_dir):
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    rows = slice(rank * len(z_visual) // world_size, (rank + 1) * len(z_visual) // world_size)
    local_visual = z_visual[rows].clone().requires_grad_(True)
    local_audio = z_audio[rows].clone().requires_grad_(True)
    loss = inter_sample_loss(local_visual, local_audio, tau)
    loss.backward()
    torch.save(
        {"loss": loss.detach(), "grad_visual": local_visual.grad, "grad_audio": local_audio.grad},
        os.path.join(out_dir, f"rank{rank}.pt"),
    )
    dist.destroy_process_group()
    os._exit(0)  # gloo's teardown aborts now and then after a clean run


def test_ddp_inter_loss_equals_the_single_process_loss_on_the_global_batch(tmp_path):
    world_size = 2
    torch.manual_seed(0)
    z_visual = F.normalize(torch.randn(6, 8), dim=-1)
    z_audio = F.normalize(z_visual + 0.5 * torch.randn(6, 8), dim=-1)
    tau = torch.tensor(0.2)
    mp.spawn(
        _ddp_inter_worker,
        args=(world_size, str(tmp_path / "rendezvous"), z_visual, z_audio, tau, str(tmp_path)),
        nprocs=world_size,
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world_size)]

    global_visual = z_visual.clone().requires_grad_(True)
    global_audio = z_audio.clone().requires_grad_(True)
    single = inter_sample_loss(global_visual, global_audio, tau)
    single.backward()
    # DDP averages over ranks: the mean of the rank losses and of their gradients
    # (each rank's gradient already sums every rank's loss through the gather).
    torch.testing.assert_close(torch.stack([r["loss"] for r in ranks]).mean(), single.detach())
    grad_visual = torch.cat([r["grad_visual"] for r in ranks]) / world_size
    grad_audio = torch.cat([r["grad_audio"] for r in ranks]) / world_size
    torch.testing.assert_close(grad_visual, global_visual.grad)
    torch.testing.assert_close(grad_audio, global_audio.grad)
