"""Baselines the ranker is compared with on the test split, one binary model per task on the same
encoded features, position-free: :func:`logistic_baseline` (scikit-learn) and :func:`dcnmix_baseline`
(deepctr-torch's DCNMix, Wang et al., WWW 2021)."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
from collections.abc import Sequence

import numpy as np


def _one_hot(categorical: np.ndarray, cardinalities: Sequence[int]):
    """(B, C) indices -> (B, sum cardinalities) sparse one-hot."""
    from scipy import sparse

    b = categorical.shape[0]
    offsets = np.concatenate([[0], np.cumsum(cardinalities)[:-1]]).astype(np.int64)
    cols = (categorical + offsets).ravel()
    rows = np.repeat(np.arange(b), categorical.shape[1])
    return sparse.csr_matrix((np.ones(cols.size), (rows, cols)), shape=(b, int(sum(cardinalities))))


def logistic_baseline(train, train_labels, test, cardinalities: Sequence[int], train_weight=None,
                      c: float = 1.0, seed: int = 0) -> np.ndarray:
    """Logistic regression per task on dense + one-hot categorical features (no position);
    ``train``/``test`` are encoded batches. Returns (B_test, T) probabilities."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    def design(batch):
        return sparse.hstack([sparse.csr_matrix(batch.dense.astype(np.float64)),
                              _one_hot(batch.categorical, cardinalities)]).tocsr()

    x_train, x_test = design(train), design(test)
    labels = np.asarray(train_labels)
    out = []
    for t in range(labels.shape[1]):
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
        model.fit(x_train, labels[:, t], sample_weight=train_weight)
        out.append(model.predict_proba(x_test)[:, 1])
    return np.stack(out, 1)


def _without_version_check() -> None:
    """Load ``deepctr_torch.utils`` with its ``check_version`` a no-op before the package's ``__init__``
    calls it: that starts a thread asking pypi.python.org for newer releases (a network call from a batch
    job, on a cluster often without egress) and prints to stdout after the import has returned."""
    if "deepctr_torch" in sys.modules or (spec := importlib.util.find_spec("deepctr_torch")) is None:
        return
    utils = importlib.util.spec_from_file_location("deepctr_torch.utils",
                                                   f"{spec.submodule_search_locations[0]}/utils.py")
    module = importlib.util.module_from_spec(utils)
    utils.loader.exec_module(module)  # json, logging, threading, requests: no import of its package
    module.check_version = lambda version: None
    sys.modules["deepctr_torch.utils"] = module


def dcnmix_baseline(train, train_labels, test, cardinalities: Sequence[int], epochs: int = 3,
                    batch_size: int = 1024, embedding_dim: int = 8, seed: int = 0, device: str = "cpu") -> np.ndarray:
    """deepctr-torch's ``DCNMix`` (cross_num 2, low rank 16, 4 experts, DNN (128, 64)) per task,
    Adam and BCE for ``epochs`` epochs (deepctr's ``fit`` takes no sample weights: rows count
    once). Returns (B_test, T) probabilities. Raises ImportError naming the package when
    deepctr-torch is not installed."""
    try:
        _without_version_check()
        from deepctr_torch.inputs import DenseFeat, SparseFeat
        from deepctr_torch.models import DCNMix
    except ImportError as exc:
        raise ImportError("the 'dcnmix' baseline needs deepctr-torch: pip install deepctr-torch "
                          "(or drop it from ranker_job.baselines)") from exc

    columns = ([SparseFeat(f"c{i}", int(n), embedding_dim=embedding_dim) for i, n in enumerate(cardinalities)]
               + [DenseFeat(f"d{j}", 1) for j in range(train.dense.shape[1])])

    def inputs(batch) -> dict[str, np.ndarray]:
        return {**{f"c{i}": batch.categorical[:, i] for i in range(batch.categorical.shape[1])},
                **{f"d{j}": batch.dense[:, j] for j in range(batch.dense.shape[1])}}

    x_train, x_test = inputs(train), inputs(test)
    labels = np.asarray(train_labels, np.float64)
    out = []
    for t in range(labels.shape[1]):
        model = DCNMix(columns, columns, cross_num=2, dnn_hidden_units=(128, 64), low_rank=16, num_experts=4,
                       task="binary", device=device, seed=seed)
        model.compile("adam", "binary_crossentropy")
        with contextlib.redirect_stdout(io.StringIO()):
            model.fit(x_train, labels[:, t], batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True)
            out.append(model.predict(x_test, batch_size=8192).ravel())
    return np.stack(out, 1)
