"""SegmentationTask: Dice metrics against hand-computed values, and the loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from torchsci_neuro.task import Dice, SegmentationTask, soft_dice_loss


def _logits(predicted: torch.Tensor, classes: int = 4) -> torch.Tensor:
    return F.one_hot(predicted, classes).movedim(-1, 1).float()


def test_dice_matches_hand_computed_values_across_batches():
    # One scan of 8 voxels (as 2x2x2), then a second one: Dice sums over both before dividing.
    target = torch.tensor([0, 1, 1, 2, 2, 2, 3, 3]).reshape(1, 2, 2, 2)
    predicted = torch.tensor([1, 1, 2, 2, 2, 3, 3, 0]).reshape(1, 2, 2, 2)
    task = SegmentationTask()
    metrics = task.metrics()
    task.update_metrics(metrics, _logits(predicted), (None, target))
    task.update_metrics(metrics, _logits(target), (None, target))  # a perfect second scan
    # CSF: scan 1 has intersection 1, |pred| 2, |true| 2; scan 2 adds 2, 2, 2 -> 2*3 / (4 + 4)
    assert metrics["dice_csf"].compute() == pytest.approx(6 / 8)
    # GM: scan 1: 2, 3, 3; scan 2: 3, 3, 3 -> 2*5 / 12
    assert metrics["dice_gm"].compute() == pytest.approx(10 / 12)
    # WM: scan 1: 1, 2, 2; scan 2: 2, 2, 2 -> 2*3 / 8
    assert metrics["dice_wm"].compute() == pytest.approx(6 / 8)
    # Brain (label > 0): scan 1: pred 7 voxels, true 7, intersection 6; scan 2: 7, 7, 7 -> 2*13 / 28
    assert metrics["dice_brain"].compute() == pytest.approx(26 / 28)
    assert metrics["dice_brain"].sums.dtype == torch.float64


def test_dice_of_empty_prediction_and_target_is_nan():
    metric = Dice(label=3)
    metric.update(_logits(torch.zeros(1, 2, 2, 2, dtype=torch.long)), torch.zeros(1, 2, 2, 2, dtype=torch.long))
    assert metric.compute() != metric.compute()


def test_loss_is_small_for_confident_correct_logits_and_large_otherwise():
    target = torch.randint(0, 4, (2, 4, 4, 4))
    task = SegmentationTask()
    good = task.loss(_logits(target) * 50, (None, target))
    bad = task.loss(_logits((target + 1) % 4) * 50, (None, target))
    assert float(good) < 1e-3
    assert float(bad) > 1.0
    assert float(soft_dice_loss(_logits(target) * 50, target, [1, 2, 3])) < 1e-3


def test_boundary_weight_counts_errors_at_the_brain_edge_more_than_errors_inside():
    from torchsci_neuro.task import brain_boundary

    target = torch.zeros(1, 11, 11, 11, dtype=torch.long)
    target[0, 2:9, 2:9, 2:9] = 3
    target[0, 4:7, 4:7, 4:7] = 2
    band = brain_boundary(target, width=1)
    assert band[0, 2, 5, 5] and band[0, 1, 5, 5] and not band[0, 5, 5, 5] and not band[0, 0, 0, 0]
    plain, weighted = SegmentationTask(dice_weight=0.0), SegmentationTask(dice_weight=0.0, boundary_weight=4.0,
                                                                          boundary_width=1)
    correct = _logits(target) * 5
    wrong_at_edge, wrong_inside = target.clone(), target.clone()
    wrong_at_edge[0, 2, 2:9, 2:9] = 0  # one face of the brain called background (49 voxels, in the band)
    wrong_inside[0, 4:7, 4:7, 4:7] = 3  # 27 GM voxels called WM, all deep inside (outside the band)
    edge_plain = plain.loss(_logits(wrong_at_edge) * 5, (None, target)) - plain.loss(correct, (None, target))
    edge_weighted = weighted.loss(_logits(wrong_at_edge) * 5, (None, target)) - weighted.loss(correct, (None, target))
    inside_plain = plain.loss(_logits(wrong_inside) * 5, (None, target)) - plain.loss(correct, (None, target))
    inside_weighted = weighted.loss(_logits(wrong_inside) * 5, (None, target)) - weighted.loss(correct, (None, target))
    # the edge error's share of the loss grows with the band's weight, the deep error's shrinks
    assert float(edge_weighted) > 1.5 * float(edge_plain)
    assert float(inside_weighted) < float(inside_plain)
    # the weighted loss has gradients and is float64-clean
    logits = (_logits(wrong_at_edge) * 5).double().requires_grad_()
    weighted.loss(logits, (None, target)).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    with pytest.raises(Exception, match="boundary_weight"):
        SegmentationTask(boundary_weight=-1.0)
