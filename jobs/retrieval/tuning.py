"""Data-dependent settings chosen on the dataset's own validation split, within a time budget.

:func:`select_settings` takes an interaction log, removes each user's test pin (the leave-one-out
test split's held-out pin: never seen here), and holds out the next one (each user's second-latest
pin) as validation, with sampled negatives as in the test protocol. On that split it runs a
coordinate search over the small space that ``retrieval_eval.tune_*`` declares, scoring NDCG@K:

* baselines: each grid value of ``tune_als_regularization``, ``tune_bpr_learning_rate`` and
  ``tune_ease_lambda`` (the other settings as configured), for the baselines evaluated;
* PinSage (when a model factory is given): the positive-pair mode (``tune_positives``), then the
  window (``tune_windows``; modes ``sequence`` / ``next`` only), the history half-life
  (``tune_half_lives``, positions; it also weights the user's items when scoring, as
  ``retrieval_eval.recent_half_life``) and the id-embedding scale (``tune_id_scales``; 0: no id
  embedding), each step keeping the best value so far.

Time order: a log whose record says ``row_order`` or ``none`` (:mod:`pinrec.jobs.ingest.dataset_info`),
or whose timestamps are mostly ties (:func:`timestamp_ties` >= ``TIES_UNUSABLE``), has no usable
time: the time-aware modes (``sequence``, ``next``) and half-lives are not offered there.

Grid edges: when a numeric setting's best value is the largest of its grid, or the smallest above 0,
and every value was measured, the notes say so (``grid_edge``, naming the ``tune_*`` field to widen).

Budget: ``tune_budget_s`` wall seconds for the whole search; each model's first (configured)
setting always runs, later trials start only while time is left, and the report says when the
budget cut the search short.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pinrec.models.retrieval_metrics import hit_rate_at_k, ndcg_at_k

from .baselines import EASE_MAX_ITEMS, EmbeddingSource, check_log
from .config import RetrievalEvalConfig
from .retrieval_protocols import leave_one_out_ranks

TIME_AWARE = ("sequence", "next")
#: Share of a log's interactions that tie with another of the same user at which time order is unusable.
TIES_UNUSABLE = 0.9
BASELINE_GRIDS = {"als": ("als_regularization", "tune_als_regularization"),
                  "bpr": ("bpr_learning_rate", "tune_bpr_learning_rate"),
                  "ease": ("ease_lambda", "tune_ease_lambda")}


def timestamp_ties(log: pd.DataFrame) -> float:
    """Share of ``log``'s distinct (user, pin) interactions whose time equals that of an earlier
    one of the same user (0: every interaction at its own instant; close to 1: no time order)."""
    log = check_log(log).drop_duplicates(["user_id", "pin_id"])
    return float(1.0 - len(log.drop_duplicates(["user_id", "ts"])) / max(len(log), 1))


def timestamps_usable(log: pd.DataFrame, recorded: str | None = None) -> tuple[bool, str]:
    """``(usable, why)``: False when the dataset record says ``row_order`` / ``none`` or when
    :func:`timestamp_ties` reaches ``TIES_UNUSABLE``."""
    if recorded in ("row_order", "none"):
        return False, f"the dataset record says timestamps={recorded}"
    ties = timestamp_ties(log)
    if ties >= TIES_UNUSABLE:
        return False, f"{ties:.0%} of the interactions tie in time with another of the same user"
    return True, f"timestamps={recorded or 'column'}, {ties:.1%} ties"


@dataclass
class Selection:
    """What :func:`select_settings` chose: ``cfg`` (retrieval_eval with the chosen baseline settings
    and user scoring), ``pinsage`` (None without a model factory), ``trials`` (one row per
    validation run: model, setting, value, HR@K, NDCG@K, seconds, chosen), and ``notes``."""

    cfg: RetrievalEvalConfig
    pinsage: object | None
    trials: pd.DataFrame
    notes: dict = field(default_factory=dict)

    def chosen(self) -> dict[str, object]:
        """The chosen value of every tuned setting, ``model.setting`` -> value."""
        rows = self.trials[self.trials["chosen"]]
        return {f"{m}.{s}": v for m, s, v in zip(rows["model"], rows["setting"], rows["value"])}

    def render(self) -> str:
        lines = ["validation (each user's second-latest pin; test pins unseen):",
                 *(f"  {r.model:<8} {r.setting:<22} {r.value!s:<10} HR {r.hr:.4f}  NDCG {r.ndcg:.4f}  "
                   f"{r.seconds:6.1f}s{'  *' if r.chosen else ''}" for r in self.trials.itertuples())]
        return "\n".join(lines + [f"{k}: {v}" for k, v in self.notes.items()])


def _metrics(split, scorer, k: int) -> tuple[float, float]:
    ranks = leave_one_out_ranks(split, scorer)  # in batches of users, as evaluation scores them
    return hit_rate_at_k(ranks, k), ndcg_at_k(ranks, k)


class _Search:
    def __init__(self, split, cfg: RetrievalEvalConfig, budget_s: float, clock: Callable[[], float]) -> None:
        self.split, self.cfg, self.clock, self.rows = split, cfg, clock, []
        self.deadline, self.cut, self.cache, self.edges = clock() + budget_s, [], {}, []

    def trial(self, model: str, setting: str, value, make_scorer: Callable[[], object], first: bool,
              key=None) -> float:
        """NDCG@K of one setting (None when the budget is spent and this is not the first trial);
        a ``key`` measured before (the same full setting reached by another coordinate) is reused."""
        if key is not None and key in self.cache:
            hr, ndcg = self.cache[key]
            self.rows.append({"model": model, "setting": setting, "value": value, "hr": hr, "ndcg": ndcg,
                              "seconds": 0.0, "chosen": False})
            return ndcg
        if not first and self.clock() > self.deadline:
            self.cut.append(f"{model}.{setting}={value}")
            return None
        start = self.clock()
        hr, ndcg = _metrics(self.split, make_scorer(), self.cfg.k)
        if key is not None:
            self.cache[key] = hr, ndcg
        self.rows.append({"model": model, "setting": setting, "value": value, "hr": hr, "ndcg": ndcg,
                          "seconds": self.clock() - start, "chosen": False})
        return ndcg

    def choose(self, model: str, setting: str, value) -> None:
        for row in self.rows:
            if row["model"] == model and row["setting"] == setting:
                row["chosen"] = row["value"] == value


def _coordinate(search: _Search, model: str, setting: str, values, current, score_of, key_of=None,
                grid: str | None = None) -> object:
    """Try ``values`` of ``setting`` (``current`` first), keep the best by NDCG; returns it.
    ``key_of(value)``: the full setting a value stands for (measured once). ``grid``: the config field
    of a numeric grid, named in the search's ``edges`` when the best is its largest value, or its
    smallest above 0 (0 means "off" for these settings), after every value was measured."""
    ordered = [current, *[v for v in values if v != current]]
    best, best_score, measured = current, None, 0
    for i, value in enumerate(ordered):
        score = search.trial(model, setting, value, lambda v=value: score_of(v), first=i == 0,
                             key=None if key_of is None else key_of(value))
        measured += score is not None
        if score is not None and (best_score is None or score > best_score):
            best, best_score = value, score
    search.choose(model, setting, best)
    if grid is not None and measured == len(ordered) > 1 and (best == max(ordered) or 0 < best == min(ordered)):
        side = "largest" if best == max(ordered) else "smallest"
        search.edges.append(f"{model}.{setting}={best:g} (the {side} of {', '.join(f'{v:g}' for v in sorted(ordered))}:"
                            f" widen retrieval_eval.{grid})")
    return best


def select_settings(log: pd.DataFrame, cfg: RetrievalEvalConfig, pins: np.ndarray | None = None,
                    pinsage_cfg=None, make_pinsage: Callable[[object], EmbeddingSource] | None = None,
                    recorded_timestamps: str | None = None,
                    clock: Callable[[], float] = time.monotonic, negatives: pd.DataFrame | None = None) -> Selection:
    """Choose the data-dependent settings on ``log``'s validation split (module docstring).

    ``pins``: extra catalogue pins; ``pinsage_cfg``: the starting :class:`~pinrec.models.config.PinSageTrainConfig`
    and ``make_pinsage``: a function of such a config returning an embedding source (a function of
    the training log), e.g. ``lambda c: landing_model(landing, c)``; ``recorded_timestamps``: the
    dataset record's ``timestamps``; ``negatives``: the test split's given negatives (an NCF file), whose
    held-out pins are then the ones removed. Returns the choice; the test split is never read: its pins
    are neither validation targets nor validation negatives."""
    from .retrieval_eval import RecentEmbeddingScorer, _baseline, _embed
    from .retrieval_protocols import leave_one_out

    log = check_log(log)
    catalogue = np.union1d(log["pin_id"].to_numpy(), [] if pins is None else pins).astype(np.int64)
    usable, why = timestamps_usable(log, recorded_timestamps)
    train = leave_one_out(log, 0, cfg.seed, catalogue, negatives).train  # the test pins, removed
    split = leave_one_out(train, cfg.num_negatives, cfg.seed, catalogue, also_seen=log)  # nor drawn as negatives
    search = _Search(split, cfg, cfg.tune_budget_s, clock)
    notes = {"timestamps_usable": usable, "timestamps": why, "validation_users": len(split.test)}
    if not usable:  # position recency means nothing without time order
        cfg = dataclasses.replace(cfg, recent_half_life=0.0, recent_items=0, half_life_days=0.0)

    for name in cfg.baselines:
        if name not in BASELINE_GRIDS:
            continue
        key, grid = BASELINE_GRIDS[name]
        if name == "ease" and len(split.catalogue) > EASE_MAX_ITEMS:  # evaluation skips it too, with a note
            notes["ease"] = f"not tuned: {len(split.catalogue):,} items exceed EASE's {EASE_MAX_ITEMS:,}"
            continue
        best = _coordinate(search, name, key, getattr(cfg, grid), getattr(cfg, key),
                           lambda v, n=name, k=key, c=cfg: _baseline(n, split.train, split.catalogue,
                                                                     dataclasses.replace(c, **{k: v})), grid=grid)
        cfg = dataclasses.replace(cfg, **{key: best})

    chosen = None
    if make_pinsage is not None and pinsage_cfg is not None:
        chosen = pinsage_cfg
        modes = [m for m in cfg.tune_positives if usable or m not in TIME_AWARE]
        if not usable and chosen.positives in TIME_AWARE:
            chosen = dataclasses.replace(chosen, positives=modes[0] if modes else "board", history_half_life=0.0)
        state = {"cfg": cfg, "pinsage": chosen}

        def settings(change: dict):
            run_cfg = dataclasses.replace(state["pinsage"], **{k: v for k, v in change.items() if k != "_recent"})
            return run_cfg, change.get("_recent", state["cfg"].recent_half_life)

        def score(**change):
            run_cfg, recent_hl = settings(change)
            emb = _embed(make_pinsage(run_cfg), split.train)
            return RecentEmbeddingScorer(emb, split.train, state["cfg"].recent_items, recent_hl,
                                         state["cfg"].half_life_days)

        def step(setting: str, values, current, apply, grid: str | None = None):
            best = _coordinate(search, "pinsage", setting, values, current, lambda v: score(**apply(v)),
                               lambda v: repr(settings(apply(v))), grid)
            return apply(best)

        if modes:
            state["pinsage"] = dataclasses.replace(state["pinsage"], **step(
                "positives", modes, state["pinsage"].positives, lambda v: {"positives": v}))
        if state["pinsage"].positives in TIME_AWARE:
            state["pinsage"] = dataclasses.replace(state["pinsage"], **step(
                "positive_window", cfg.tune_windows, state["pinsage"].positive_window,
                lambda v: {"positive_window": v}, "tune_windows"))
        if usable:
            change = step("history_half_life", cfg.tune_half_lives, state["pinsage"].history_half_life,
                          lambda v: {"history_half_life": v, "_recent": v}, "tune_half_lives")
            state["cfg"] = dataclasses.replace(state["cfg"], recent_half_life=change.pop("_recent"))
            state["pinsage"] = dataclasses.replace(state["pinsage"], **change)
        scale = state["pinsage"].id_embedding_std if state["pinsage"].id_embedding else 0.0
        state["pinsage"] = dataclasses.replace(state["pinsage"], **step(
            "id_embedding_std", cfg.tune_id_scales, scale,
            lambda v: {"id_embedding": v > 0, "id_embedding_std": v if v > 0 else 1.0}, "tune_id_scales"))
        cfg, chosen = state["cfg"], state["pinsage"]
    if search.cut:
        notes["budget_cut"] = f"{len(search.cut)} trial(s) skipped after {cfg.tune_budget_s:g} s"
    if search.edges:  # the best may lie beyond the declared grid: say so rather than let it pass as optimal
        notes["grid_edge"] = "; ".join(search.edges)
    trials = pd.DataFrame(search.rows, columns=["model", "setting", "value", "hr", "ndcg", "seconds", "chosen"])
    return Selection(cfg, chosen, trials, notes)


def log_selection(selection: Selection, tracking_uri: str, experiment: str = "pinrec-retrieval",
                  artifact_root=None) -> str:
    """Record the choice (params), the validation table (``validation.csv``, ``selection.txt``)
    and the notes in an MLflow run; returns its run id."""
    from pinrec.jobs.io.tracking import tracked_run

    params = {k: str(v) for k, v in selection.chosen().items()}
    with tracked_run(tracking_uri, experiment, "select-settings", params, {"job": "eval-retrieval"},
                     artifact_root=artifact_root) as run:
        run.log_metrics({f"val_ndcg.{r.model}.{r.setting}.{r.value}": r.ndcg
                         for r in selection.trials.itertuples()})
        run.log_text(selection.trials.to_csv(index=False), "validation.csv")
        run.log_text(selection.render() + "\n", "selection.txt")
        run.log_dict({k: v if isinstance(v, int | float | bool | str) else str(v)
                      for k, v in selection.notes.items()}, "notes.json")
        return run.run_id


__all__ = ["Selection", "log_selection", "select_settings", "timestamp_ties", "timestamps_usable"]
