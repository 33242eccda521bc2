"""Training losses for the embedding models; kept out of the models so exported graphs hold none.

* :func:`max_margin_loss`: PinSage's hinge over shared or per-query negatives (Ying et al., KDD 2018);
* :func:`ranking_loss`: PinSage's margin or sampled-softmax loss over scores with a validity mask
  (:mod:`pinrec.models.pinsage_batches`);
* :func:`in_batch_softmax_loss`: the two-tower's in-batch softmax with logQ correction (Yi et al.,
  RecSys 2019; :mod:`pinrec.models.two_tower_loop`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def max_margin_loss(query: Tensor, positive: Tensor, negatives: Tensor, margin: float = 0.1) -> Tensor:
    r"""The max-margin ranking loss of PinSage (Ying et al., KDD 2018, eq. 1):

    .. math::
        J = \frac{1}{BK} \sum_{b, k} \max(0,\; \mathbf{z}_q \cdot \mathbf{z}_{n_k}
            - \mathbf{z}_q \cdot \mathbf{z}_i + \Delta)

    Args:
        query (Tensor): (B, D) query embeddings :math:`\mathbf{z}_q`.
        positive (Tensor): (B, D) embeddings :math:`\mathbf{z}_i` of the related items.
        negatives (Tensor): (K, D) negatives shared by the whole batch (as in the paper), or
            (B, K, D) negatives per query.
        margin (float, optional): :math:`\Delta`. (default: :obj:`0.1`)

    Returns: the mean hinge over B x K, a scalar.
    """
    if query.dim() != 2 or positive.shape != query.shape:
        raise ValueError(f"query and positive must both be (B, D), got {tuple(query.shape)} "
                         f"and {tuple(positive.shape)}")
    if negatives.dim() == 2 and negatives.size(1) == query.size(1):
        neg_scores = query @ negatives.T
    elif negatives.dim() == 3 and negatives.shape[0::2] == query.shape:
        neg_scores = (query.unsqueeze(1) * negatives).sum(-1)
    else:
        raise ValueError(f"negatives must be (K, D) or (B, K, D) for query {tuple(query.shape)}, "
                         f"got {tuple(negatives.shape)}")
    pos_scores = (query * positive).sum(-1, keepdim=True)
    return F.relu(neg_scores - pos_scores + margin).mean()


def ranking_loss(pos_scores: Tensor, neg_scores: Tensor, valid: Tensor, kind: str = "softmax",
                 margin: float = 0.1, temperature: float = 0.1) -> Tensor:
    r"""Loss of B positive scores (B,) against their negatives' scores (B, K), where ``valid``
    (B, K) marks the negatives that count (an in-batch "negative" that is the query's own positive
    does not). ``"margin"``: mean over valid negatives of :math:`\max(0, s_n - s_p + \Delta)` (PinSage,
    eq. 1); ``"softmax"``: sampled-softmax cross-entropy
    :math:`-\log \frac{e^{s_p / \tau}}{e^{s_p / \tau} + \sum_n e^{s_n / \tau}}`, averaged over the B queries."""
    if neg_scores.dim() != 2 or pos_scores.shape != neg_scores.shape[:1] or valid.shape != neg_scores.shape:
        raise ValueError(f"pos_scores (B,), neg_scores and valid (B, K) expected, got {tuple(pos_scores.shape)}, "
                         f"{tuple(neg_scores.shape)} and {tuple(valid.shape)}")
    if kind == "margin":
        hinge = torch.relu(neg_scores - pos_scores.unsqueeze(1) + margin) * valid
        return hinge.sum() / valid.sum().clamp_min(1)
    if kind == "softmax":
        logits = torch.cat([pos_scores.unsqueeze(1), neg_scores.masked_fill(~valid, float("-inf"))], dim=1)
        return torch.nn.functional.cross_entropy(logits / temperature, torch.zeros_like(pos_scores, dtype=torch.long))
    raise ValueError(f"loss must be 'margin' or 'softmax', got {kind!r}")


def in_batch_softmax_loss(user: Tensor, pin: Tensor, temperature: float, log_q: Tensor | None = None,
                          same: Tensor | None = None) -> Tensor:
    r"""Mean cross-entropy of the diagonal of the (B, B) logits
    :math:`s_{ij} = \langle \mathbf{u}_i, \mathbf{p}_j \rangle / \tau - \log q_j` (Yi et al., eq. 3 with
    the correction of section 4). ``user`` and ``pin``: (B, D); ``log_q`` (B,): log sampling
    probability of each column's pin (None: no correction); ``same`` (B, B) bool: column j holds row
    i's own positive (masked out off the diagonal)."""
    if user.dim() != 2 or user.shape != pin.shape:
        raise ValueError(f"user and pin must both be (B, D), got {tuple(user.shape)} and {tuple(pin.shape)}")
    logits = user @ pin.T / temperature
    if log_q is not None:
        logits = logits - log_q.unsqueeze(0)
    if same is not None:
        eye = torch.eye(len(user), dtype=torch.bool, device=user.device)
        logits = logits.masked_fill(same & ~eye, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(user), device=user.device))


__all__ = ["in_batch_softmax_loss", "max_margin_loss", "ranking_loss"]
