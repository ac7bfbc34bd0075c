"""`train.activation_checkpointing`: the pyramids and PAN recompute their activations in
backward — the same losses and gradients, fewer tensors kept for backward."""

from __future__ import annotations

import torch

from delcli.model.config import ModelConfig
from delcli.model.del_model import DELModel
from delcli.recipe import TrainConfig

from helpers import TINY_MODEL, tiny_training_batch


def _step(checkpointing: bool, **model):
    """Losses and gradients of one training step; dropout and drop path on, so the
    recomputation must replay the same random masks."""
    torch.manual_seed(0)
    network = DELModel(ModelConfig(**{**TINY_MODEL, "dropout": 0.2, "drop_path": 0.2, **model}))
    network.activation_checkpointing = checkpointing
    network.train()
    visual, audio, mask, segments, labels = tiny_training_batch()
    torch.manual_seed(1)
    saved = []

    def keep(tensor):
        saved.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        terms = network.losses(network(visual, audio, mask), segments, labels)
    terms["total"].backward()
    grads = {n: p.grad.clone() for n, p in network.named_parameters() if p.grad is not None}
    return terms, grads, sum(saved)


def test_off_by_default():
    assert TrainConfig().activation_checkpointing is False
    assert DELModel(ModelConfig(**TINY_MODEL)).activation_checkpointing is False


def test_same_losses_and_gradients_with_fewer_saved_activations():
    plain_terms, plain_grads, plain_saved = _step(False)
    terms, grads, saved = _step(True)
    assert set(terms) == set(plain_terms)
    for name, value in plain_terms.items():
        assert torch.allclose(terms[name], value, rtol=1e-5, atol=1e-6), name
    assert grads.keys() == plain_grads.keys()
    assert len(grads) > 50  # every stage of the network took part
    for name, grad in plain_grads.items():
        assert torch.allclose(grads[name], grad, rtol=1e-4, atol=1e-6), name
    # what autograd keeps for backward: the checkpointed modules keep only their inputs
    assert saved < 0.7 * plain_saved


def test_single_modality_and_evaluation_are_unaffected():
    terms, _, _ = _step(True, modalities="v")
    plain, _, _ = _step(False, modalities="v")
    assert torch.allclose(terms["total"], plain["total"], rtol=1e-5, atol=1e-6)
    network = DELModel(ModelConfig(**TINY_MODEL)).eval()
    network.activation_checkpointing = True
    visual, audio, mask, _, _ = tiny_training_batch()
    with torch.no_grad():
        first = network(visual, audio, mask)
    network.activation_checkpointing = False
    with torch.no_grad():
        second = network(visual, audio, mask)
    for a, b in zip(first.cls_logits, second.cls_logits, strict=True):
        assert torch.equal(a, b)


def test_freed_memory_goes_back_to_the_system_before_validation():
    """glibc keeps freed heap blocks; `release_freed_memory` (called between an epoch's
    steps and validation) returns them, so validation does not stack on them."""
    import pytest

    from delcli.train.memory import release_freed_memory

    def resident_mib() -> int:
        with open("/proc/self/status") as status:
            return int(status.read().split("VmRSS:")[1].split()[0]) // 1024

    if not release_freed_memory():
        pytest.skip("no glibc malloc_trim here")
    blocks = [bytes(4000) + bytes([i % 256]) for i in range(40_000)]  # ~160 MB of heap
    kept = blocks[::10]  # every tenth stays: the freed blocks lie between live ones
    del blocks
    before = resident_mib()
    assert release_freed_memory()
    assert before - resident_mib() >= 50
    assert len(kept) == 4_000
