"""Training losses for the embedding models; kept out of the models so exported graphs hold none."""
from __future__ import annotations

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
