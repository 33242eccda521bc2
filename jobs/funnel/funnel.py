"""``pinrec eval-funnel``: replay a test day through the serving code on a bundle, as of the day's start.

:func:`replay_day` is what publish runs on its candidate and :func:`eval_funnel` what the CLI, the
training DAG and a notebook run on a stored bundle (the channel's by default):

1. the day: ``day`` or the newest landed day. It must lie in the training window's test days:
   :func:`trained_before` reads the ``graph_edges`` table (PinSage's and the index's training
   edges: ``split = 'train'``) and the ``training_set`` (the ranker's train and validation days)
   and raises when either holds data of the day or later; what it found goes into the notes;
2. the features as of the day's start: a snapshot (:func:`~pinrec.jobs.features.feature_snapshot.build_feature_snapshot`)
   with the cut-off ``day 00:00 + features.publish_delay_s`` (what a bundle published at the end
   of the day before serves: the day's own feature rows are not in it), passed to the
   :class:`~pinrec.export.serving.recommend.Recommender` as ``features=``; requests are made at that cut-off;
3. the day's saves and closeups (``actions`` with ``ts`` in the day, from its partition and the
   next one, where late saves land) and each user's first impression's surface, device and country;
4. on the synthetic world, each user's true top ``funnel.k`` pins (the generator's relevance
   ``<u, v_p>`` from ``<landing>/_truth/``, over the pins the bundle may serve at the cut-off);
5. :func:`pinrec.jobs.funnel.replay.replay` with ``recommend`` (``cfg.recommend``) and ``funnel``;
   when the bundle carries a pre-ranker (``extra/prerank.onnx``), with its arms on and off
   (:func:`prerank_keep`: ``recommend.prerank_keep``, or ``funnel.prerank_keep`` where serving has it off).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile

import numpy as np

from pinrec.jobs.io.lake import Location, as_location
from pinrec.jobs.io.timestamps import from_spark, ts_lit

from .replay import DayEvents, FunnelReport, replay, true_top_pins

log = logging.getLogger(__name__)

__all__ = ["READS", "eval_funnel", "funnel_folder", "prerank_keep", "read_day", "read_funnel", "replay_day",
           "synthetic_truth", "trained_before"]


def _start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())


def trained_before(catalog, day: dt.date) -> list[str]:
    """What the models could have seen, as notes; ValueError when the graph's training edges or
    the training set's train/validation rows reach into ``day`` (the replay would measure recall
    of saves the models were trained on)."""
    from pyspark.sql import functions as F

    from pinrec.jobs.io.training_set import current_training_set

    notes, start = [], _start(day)
    if catalog.exists("graph_edges"):
        last = from_spark(catalog.read("graph_edges").where("split = 'train'").agg(F.max("saved_at")).first()[0])
        if last is not None and last >= start:
            raise ValueError(f"graph_edges holds training edges saved at {last}, on or after {day}: PinSage and the "
                             f"index were trained on the replayed day; replay a day of the graph's eval split "
                             "(publish replays the day its cut-off closes; funnel.at_publish=false skips it)")
        notes.append(f"PinSage/index trained on graph edges saved until {last} (before {day})")
    else:
        notes.append("no graph_edges table: PinSage's training cut-off not checked")
    if catalog.exists("training_set"):
        last = current_training_set(catalog).where("split <> 'test'").agg(F.max("dt")).first()[0]
        if last is not None and last >= day:
            raise ValueError(f"the training_set's train/validation days reach {last}, on or after {day}: the ranker "
                             "was trained or calibrated on the replayed day; replay one of its test days "
                             "(publish replays the day its cut-off closes; funnel.at_publish=false skips it)")
        notes.append(f"ranker trained and calibrated on training_set days until {last} (before {day})")
    else:
        notes.append("no training_set table: the ranker's training days not checked")
    return notes


def read_day(catalog, day: dt.date) -> DayEvents:
    """The day's saves, closeups and first-impression contexts (module docstring, step 3)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    start, end = _start(day), _start(day + dt.timedelta(days=1))
    parts = F.col("dt").isin(day, day + dt.timedelta(days=1))
    actions = (catalog.read("actions").where(parts & (F.col("ts") >= ts_lit(start)) & (F.col("ts") < ts_lit(end))
                                             & F.col("type").isin("save", "closeup"))
               .select("user_id", "pin_id", "type").toArrow())
    first = Window.partitionBy("user_id").orderBy("ts", "event_id")
    seen = (catalog.read("impressions").where((F.col("dt") == F.lit(day)) & (F.col("ts") >= ts_lit(start))
                                              & (F.col("ts") < ts_lit(end)))
            .withColumn("_r", F.row_number().over(first)).where("_r = 1")
            .select("user_id", "surface", "device", "country").toArrow().to_pylist())
    contexts = {r.pop("user_id"): r for r in seen}
    return DayEvents.of(actions.column("user_id").to_pylist(), actions.column("pin_id").to_pylist(),
                        actions.column("type").to_pylist(), contexts)


def synthetic_truth(landing: Location, pins, cutoff: dt.datetime, users: list[int], n: int
                    ) -> dict[int, np.ndarray] | None:
    """Each of ``users``' true top ``n`` pins among ``pins`` (a
    :class:`~pinrec.export.serving.candidates.PinCatalog`) that may be served at ``cutoff`` (eligible, created by
    then), from ``landing/_truth/{users,pins}.parquet``; None when the landing zone has no truth."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    truth = landing / "_truth"
    if not (truth / "users.parquet").is_file() or not (truth / "pins.parquet").is_file():
        return None

    def latent(name: str, key: str) -> tuple[np.ndarray, np.ndarray]:
        table = pq.read_table(pa.BufferReader((truth / name).read_bytes()))
        flat = pc.list_flatten(table.column("latent")).to_numpy().astype(np.float32)
        return table.column(key).to_numpy(), flat.reshape(table.num_rows, -1)

    user_ids, user_latent = latent("users.parquet", "user_id")
    pin_ids, pin_latent = latent("pins.parquet", "pin_id")
    cutoff_us = int((cutoff.replace(tzinfo=dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) / dt.timedelta(microseconds=1))
    servable = pins.ids[pins.eligible & (pins.created_us <= cutoff_us)]
    keep = np.isin(pin_ids, servable)
    chosen = np.isin(user_ids, np.asarray(users, np.int64))
    return true_top_pins(user_ids[chosen], user_latent[chosen], pin_ids[keep], pin_latent[keep], n)


def prerank_keep(bundle, recommend_keep: int, funnel_keep: int) -> tuple[int, str]:
    """(the keep the replay's pre-ranker arm uses, a note saying why): 0 when ``bundle`` carries no
    ``extra/prerank.onnx``, else ``recommend_keep`` (serving's ``recommend.prerank_keep``) or, where
    that is 0, ``funnel_keep`` (``funnel.prerank_keep``; 0: not replayed)."""
    from pinrec.export.serving.prerank import PRERANK_FILE

    if not any(entry.path.rsplit("/", 1)[-1] == PRERANK_FILE for entry in bundle.manifest.of_role("extra")):
        return 0, f"pre-ranker: bundle {bundle.name}/{bundle.version} carries none (no extra/{PRERANK_FILE})"
    if recommend_keep:
        return recommend_keep, f"pre-ranker replayed on and off at recommend.prerank_keep = {recommend_keep}"
    if funnel_keep:
        return funnel_keep, (f"pre-ranker replayed on and off at funnel.prerank_keep = {funnel_keep} (serving "
                             "has it off: recommend.prerank_keep = 0)")
    return 0, "pre-ranker: not replayed (recommend.prerank_keep and funnel.prerank_keep are 0)"


#: The tables a replay reads (the step cache fingerprints their versions: ``pinrec.jobs.orchestration``).
READS = ("graph_edges", "training_set", "actions", "impressions", "features_user", "features_pin",
         "features_user_category")


def replay_cutoff(cfg, day: dt.date) -> dt.datetime:
    """The features' cut-off of a replay of ``day``: the day's start + ``features.publish_delay_s``."""
    return _start(day) + dt.timedelta(seconds=cfg.features.publish_delay_s)


def replay_day(spark, cfg, bundle, day: dt.date | None = None, catalog=None, prebuilt=None) -> FunnelReport:
    """Replay ``day`` (default: the newest landed day) on ``bundle`` (an opened
    :class:`~pinrec.export.serving.loader.Bundle`) as the module docstring says. ``cfg``: the whole
    :class:`~pinrec.jobs.config.PinrecConfig`; ``catalog``: the one to read :data:`READS` through
    (default: its own, so that what it reads is not the caller's lineage); ``prebuilt``: snapshot
    tables built ahead (:class:`~pinrec.jobs.features.feature_snapshot.PrebuiltSnapshot`; see
    :func:`replay_cutoff`)."""
    from pinrec.export.serving.candidates import PinCatalog
    from pinrec.export.serving.recommend import Recommender
    from pinrec.jobs.features.feature_snapshot import (
        build_feature_snapshot,
        open_snapshot,
    )
    from pinrec.jobs.ingest.days import event_days
    from pinrec.jobs.io.catalog import Catalog

    catalog = catalog or Catalog(spark, cfg.storage.warehouse)
    landing = cfg.storage.location("landing")
    day = day or event_days(landing, catalog=catalog)[-1]  # the newest day with events (by month too)
    notes = trained_before(catalog, day)
    cutoff = replay_cutoff(cfg, day)
    notes.append(f"features as of {cutoff.isoformat()} (the day's start + features.publish_delay_s); requests at it")
    keep, note = prerank_keep(bundle, cfg.recommend.prerank_keep, cfg.funnel.prerank_keep)
    notes.append(note)
    events = read_day(catalog, day)
    with tempfile.TemporaryDirectory(prefix="pinrec-funnel-") as tmp:
        build_feature_snapshot(spark, catalog, cutoff, tmp, prebuilt=prebuilt)
        features = open_snapshot(tmp)
        users = sorted(events.saves)[: cfg.funnel.max_users or None]
        truth = synthetic_truth(landing, PinCatalog(bundle.pins), cutoff, users, cfg.funnel.k) \
            if cfg.dataset.kind == "synthetic" else None
        report = replay(lambda rc: Recommender(bundle, rc, features=features), cfg.recommend, events,
                        day=day.isoformat(), k=cfg.funnel.k, cutoffs=cfg.funnel.cutoffs, truth=truth,
                        max_users=cfg.funnel.max_users, notes=notes, prerank_keep=keep)
    log.info("[funnel] %s", report.render())
    return report


def funnel_folder(cfg, version: str) -> Location:
    """Where :func:`eval_funnel` writes the replay of bundle ``version`` by default: ``<artifacts>/funnel/<version>``."""
    return cfg.storage.location("artifacts") / "funnel" / version


def read_funnel(path: str | Location) -> FunnelReport:
    """The :class:`FunnelReport` of a ``funnel.json`` :func:`eval_funnel` wrote."""
    import dataclasses

    data = json.loads(as_location(path).read_text())
    fields = {f.name for f in dataclasses.fields(FunnelReport)}
    report = {k: v for k, v in data.items() if k in fields}
    return FunnelReport(**{**report, **{k: tuple(report[k]) for k in ("cutoffs", "channels", "notes") if k in report}})


def eval_funnel(spark, cfg, *, version: str | None = None, day: dt.date | None = None,
                out: str | Location | None = None, catalog=None) -> tuple[FunnelReport, Location]:
    """Replay ``day`` on the stored bundle ``version`` (default: the one ``publish.channel`` points
    to) and write the report to ``out`` (default :func:`funnel_folder`) as ``funnel.json``; returns
    (report, the file). ``catalog``: as :func:`replay_day`'s."""
    import dataclasses

    from pinrec.export.serving.loader import load
    from pinrec.jobs.config import s3_options

    bundle = load(cfg.bundle_store_uri, cfg.publish.name, cfg.publish.channel, version=version,
                  s3=s3_options(cfg.storage))
    report = replay_day(spark, cfg, bundle, day, catalog=catalog)
    folder = as_location(out, s3_options(cfg.storage)) if out else funnel_folder(cfg, bundle.version)
    target = folder / "funnel.json"
    target.write_text(json.dumps({"bundle": f"{bundle.name}/{bundle.version}", **dataclasses.asdict(report)},
                                 indent=2, sort_keys=True) + "\n")
    return report, target
