"""What one run of the ranker job found: :class:`RankerReport`, the typed result its export step
returns (and ``metrics.json`` holds)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .ranker_eval import AucGap, DebiasComparison, MetricRow


@dataclass(frozen=True)
class RankerReport:
    """``model_version`` (``ranker-`` + content hash), ``tasks`` (T, in label order), rows per split, the
    negative sampling rate, the early-stopping epoch and epochs run, the training device; ``metrics``:
    one :class:`~pinrec.jobs.ranking.ranker_eval.MetricRow` per (model, task) on the test split;
    ``debias`` (one per task, with the oracle and the twin), ``auc_gaps`` (with the oracle and
    bootstrap resamples); the ONNX export's checks, the published folder, the training set's input
    Delta versions, the MLflow run, wall seconds, the embeddings' version and the DDP world size;
    ``prerank`` (empty without a pre-ranker): its model, input columns, training losses and, when
    exported, ``onnx_max_abs_diff`` (its test metrics are the rows of the model ``pre-ranker``)."""

    model_version: str
    tasks: tuple[str, ...]
    rows_by_split: dict[str, int]
    negative_rate: float
    best_epoch: int
    epochs_run: int
    device: str
    metrics: tuple[MetricRow, ...]
    debias: tuple[DebiasComparison, ...] = ()
    auc_gaps: tuple[AucGap, ...] = ()
    int8_auc_drop: dict[str, float] = field(default_factory=dict)
    onnx_max_abs_diff: float = math.nan
    artifacts: str = ""
    input_versions: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    seconds: float = 0.0
    embedding_version: str = ""
    world_size: int = 1
    prerank: dict[str, Any] = field(default_factory=dict)

    def metric(self, model: str, task: str, name: str) -> float:
        for row in self.metrics:
            if row.model == model and row.task == task:
                return getattr(row, name)
        raise KeyError(f"no metrics for model {model!r} and task {task!r}")

    def render(self) -> str:
        from .ranker_eval import render_table

        splits = ", ".join(f"{k}={v}" for k, v in sorted(self.rows_by_split.items()))
        lines = [(f"ranker           {self.model_version}; rows ({splits}); negative_rate={self.negative_rate}; "
                  f"best epoch {self.best_epoch} of {self.epochs_run}; {self.device}"
                  + (f" x {self.world_size} ranks (DDP)" if self.world_size > 1 else "") + f"; {self.seconds:.1f} s"
                  + (f"; embedding features from {self.embedding_version}" if self.embedding_version else "")),
                 "", render_table(self.metrics)]
        lines += [d.render() for d in self.debias]
        lines += [g.render() for g in self.auc_gaps]
        if not math.isnan(self.onnx_max_abs_diff):
            lines.append(f"onnx vs torch on the test rows: max |diff| = {self.onnx_max_abs_diff:.2e}")
        if self.prerank:
            p = self.prerank
            lines.append(f"pre-ranker: {p['model']} regression on {len(p['categorical'])} categorical and "
                         f"{len(p['dense'])} dense inputs (no embeddings, no ids)"
                         + (f"; onnx vs torch max |diff| = {p['onnx_max_abs_diff']:.2e}"
                            if "onnx_max_abs_diff" in p else ""))
        for task, drop in self.int8_auc_drop.items():
            lines.append(f"int8 AUC drop ({task}): {drop:+.5f}")
        if self.artifacts:
            lines.append(f"artifacts: {self.artifacts}")
        return "\n".join(lines)

