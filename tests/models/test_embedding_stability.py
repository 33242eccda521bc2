"""Version-to-version stability measures: neighbour overlap, Procrustes cosine, held-out recall."""
from __future__ import annotations

import math

import pytest
import torch

from pinrec.models.embedding_stability import (
    align,
    heldout_recall,
    neighbour_overlap,
    procrustes_cosine,
)


def vectors(n: int = 50, d: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def rotation(d: int = 8, seed: int = 1) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed)))
    return q


def test_align_matches_rows_by_pin_id():
    old, new = align(torch.tensor([30, 10, 20]), torch.tensor([20, 40, 30, 10]))
    assert old.tolist() == [2, 0, 1] and new.tolist() == [0, 2, 3]
    old, new = align(torch.zeros(0, dtype=torch.long), torch.tensor([1]))
    assert old.numel() == new.numel() == 0


def test_a_rotated_copy_is_perfectly_stable_and_noise_is_not():
    x = vectors()
    turned = x @ rotation()
    assert neighbour_overlap(x, turned) == pytest.approx(1.0)  # cosine neighbours survive any rotation
    assert procrustes_cosine(x, turned) == pytest.approx(1.0, abs=1e-9)
    assert float(torch.nn.functional.cosine_similarity(x, turned).mean()) < 0.5  # unaligned they differ
    other = vectors(seed=5)
    assert neighbour_overlap(x, other) < 0.4 and procrustes_cosine(x, other) < 0.6
    # a little noise moves a little: between the two
    noisy = turned + 0.3 * vectors(seed=9)
    assert 0.4 < neighbour_overlap(x, noisy) < 1.0 and 0.8 < procrustes_cosine(x, noisy) < 1.0


def test_overlap_counts_shared_neighbours_exactly():
    # points on the unit circle, pin 2 and 3 swap places between the versions
    angle = torch.tensor([0.0, 0.1, 0.2, 0.9, 2.0, 3.0])
    old = torch.stack([angle.cos(), angle.sin()], 1)
    new_angle = torch.tensor([0.0, 0.1, 0.95, 0.2, 2.0, 3.0])
    new = torch.stack([new_angle.cos(), new_angle.sin()], 1)
    per_pin = neighbour_overlap(old, new, k=2, sample=6)
    # the same count by brute force; pin 0's 2-NN go from {1, 2} to {1, 3}: half kept
    z_old, z_new = torch.nn.functional.normalize(old, dim=1), torch.nn.functional.normalize(new, dim=1)
    want = []
    for i in range(6):
        a = (z_old @ z_old[i]).index_fill(0, torch.tensor([i]), -2).topk(2).indices.tolist()
        b = (z_new @ z_new[i]).index_fill(0, torch.tensor([i]), -2).topk(2).indices.tolist()
        want.append(len(set(a) & set(b)) / 2)
    assert per_pin == pytest.approx(sum(want) / 6) and want[0] == 0.5


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="more than 10 common pins"):
        neighbour_overlap(vectors(5), vectors(5))
    with pytest.raises(ValueError, match="same pins"):
        neighbour_overlap(vectors(20), vectors(21))
    with pytest.raises(ValueError, match=r"aligned \(P, D\)"):
        procrustes_cosine(vectors(20, 8), vectors(20, 4))


def test_heldout_recall_finds_the_pin_next_to_its_board():
    # pins on a circle; board 0 holds pins 0, 1; the held-out save of pin 2 (next to them) is found at k=1,
    # pin 5 (opposite) is not; board 1 has no training pin: skipped
    angle = torch.tensor([0.0, 0.3, 0.6, 1.0, 2.5, 3.14, 4.0, 5.5])
    z = torch.stack([angle.cos(), angle.sin()], 1)
    ptr, members = torch.tensor([0, 2, 2]), torch.tensor([0, 1])
    assert heldout_recall(z, torch.tensor([2]), torch.tensor([0]), ptr, members, k=1) == 1.0
    assert heldout_recall(z, torch.tensor([2, 5, 3]), torch.tensor([0, 0, 1]), ptr, members, k=1) == 0.5
    assert math.isnan(heldout_recall(z, torch.tensor([3]), torch.tensor([1]), ptr, members, k=1))
