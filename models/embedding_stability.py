r"""How much an embedding version moved from the previous one (torch, CPU).

A retrained embedding model changes every pin's vector; downstream (the index, the ranker's
embedding features, cached user vectors) is built on one version, and a user's feed should not
jump because the model was retrained. Three measures compare the previous version's vectors
:math:`X` with the new :math:`Y` on the pins both embed (rows aligned by pin id):

* :func:`neighbour_overlap` — for sampled query pins, :math:`|N_k^X(i) \cap N_k^Y(i)| / k` with
  :math:`N_k` the k nearest other pins by cosine: what serving sees (the ANN channel returns
  neighbours), invariant to any rotation of the space;
* :func:`procrustes_cosine` — the mean cosine between :math:`x_i` and :math:`R y_i` after the
  orthogonal Procrustes alignment :math:`R = \arg\min_{R^T R = I} \lVert Y R - X \rVert_F`
  (Schönemann, Psychometrika 1966: :math:`R = U V^T` from the SVD :math:`Y^T X = U \Sigma V^T`):
  whether the vectors themselves stayed put once a global rotation is allowed for. Not centred, unlike
  Procrustes analysis in shape statistics: serving compares vectors by cosine about the origin, so a
  shift of the whole cloud changes neighbours and scores and is movement this should count;
* :func:`heldout_recall` — recall@k of held-out (board, pin) saves, each board's query the
  normalised mean of its training pins, ranked among all pins: the retrieval quality of each version
  on the same new day.

Shapes: ``(N, D)`` float vectors (zero rows allowed: a pin that was not embedded); both sides must
have the same D for the Procrustes cosine.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pinrec.models.warm_start import row_map

__all__ = ["align", "heldout_recall", "neighbour_overlap", "procrustes_cosine"]


def align(old_ids: Tensor, new_ids: Tensor) -> tuple[Tensor, Tensor]:
    """Rows of the pins both id lists hold: ``(old_rows, new_rows)`` (P,) int64 each, in the order
    of ``new_ids``. ``old_ids`` (N,) and ``new_ids`` (M,) are int64 and unique."""
    rows = row_map(old_ids, new_ids)
    new_rows = torch.nonzero(rows >= 0).flatten()
    return rows[new_rows], new_rows


def _topk_neighbours(x: Tensor, queries: Tensor, k: int, chunk: int = 1024) -> Tensor:
    """(Q, k) rows of the k most cosine-similar other rows of ``x`` for each query row."""
    z = F.normalize(x.float(), dim=-1)
    out = []
    for part in queries.split(chunk):
        sim = z[part] @ z.T
        sim[torch.arange(len(part)), part] = float("-inf")  # not its own neighbour
        out.append(sim.topk(k, dim=1).indices)
    return torch.cat(out) if out else torch.zeros(0, k, dtype=torch.long)


def neighbour_overlap(old: Tensor, new: Tensor, k: int = 10, sample: int = 2000, seed: int = 0) -> float:
    """Mean share of each sampled pin's k nearest neighbours (cosine, itself excluded) that the two
    versions agree on. ``old`` (P, D1) and ``new`` (P, D2) are aligned rows (same pin per row);
    ``sample`` query pins (all when P <= sample) drawn with ``seed``. Needs P > k."""
    if old.size(0) != new.size(0):
        raise ValueError(f"old and new must hold the same pins, got {old.size(0)} and {new.size(0)} rows")
    p = old.size(0)
    if p <= k:
        raise ValueError(f"neighbour_overlap@{k} needs more than {k} common pins, got {p}")
    gen = torch.Generator().manual_seed(seed)
    queries = torch.arange(p) if p <= sample else torch.randperm(p, generator=gen)[:sample].sort().values
    a, b = _topk_neighbours(old, queries, k), _topk_neighbours(new, queries, k)
    same = (a.unsqueeze(2) == b.unsqueeze(1)).any(2).sum(1).double()
    return float(same.mean() / k)


def procrustes_cosine(old: Tensor, new: Tensor) -> float:
    """Mean cosine between each pin's old vector and its new vector rotated by the orthogonal
    Procrustes solution (module docstring). ``old``, ``new``: (P, D) aligned rows, P >= 1."""
    if old.shape != new.shape or old.dim() != 2 or not old.size(0):
        raise ValueError(f"old and new must be aligned (P, D) with P >= 1 and one D, got {tuple(old.shape)} and "
                         f"{tuple(new.shape)}")
    x, y = old.double(), new.double()
    u, _, vh = torch.linalg.svd(y.T @ x)
    rotated = y @ (u @ vh)
    return float(F.cosine_similarity(rotated, x, dim=1).mean())


def heldout_recall(vectors: Tensor, heldout_pins: Tensor, heldout_boards: Tensor, board_ptr: Tensor,
                   board_pins: Tensor, k: int = 10) -> float:
    """Recall@k of held-out saves: for each (board, pin) pair, the query is the normalised mean of
    the board's training pins (CSR ``board_ptr`` (M + 1,), ``board_pins`` (E,)); the pin counts as
    found when it is among the k highest-cosine pins that are not already on the board.
    ``vectors`` (N, D); ``heldout_pins`` / ``heldout_boards`` (H,) int64. Pairs whose board has no
    training pin are skipped; NaN when none is left."""
    z = F.normalize(vectors.float(), dim=-1)
    hits, counted = 0, 0
    for board in torch.unique(heldout_boards).tolist():
        on_board = board_pins[board_ptr[board]:board_ptr[board + 1]]
        if not len(on_board):
            continue
        query = F.normalize(z[on_board].mean(0), dim=0)
        scores = z @ query
        scores[on_board] = float("-inf")
        top = scores.topk(min(k, len(scores))).indices
        targets = heldout_pins[heldout_boards == board]
        hits += int(torch.isin(targets, top).sum())
        counted += len(targets)
    return hits / counted if counted else float("nan")
