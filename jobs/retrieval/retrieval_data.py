"""Inputs of retrieval evaluation: interaction logs, graph edges, true latents, pin embeddings.

Every reader returns plain pandas / numpy for :func:`pinrec.jobs.retrieval.retrieval_eval.evaluate_retrieval`:

* :func:`read_landing_interactions`: ``(user_id, pin_id, ts)`` straight from a dataset adapter's
  landing JSON files (:mod:`pinrec.jobs.ingest.datasets`; no Spark). Landing data is unvalidated, so this is for
  adapters (which write no faults), not for the synthetic world's raw logs;
* :func:`read_delta_interactions`: the same from the validated Delta ``impressions`` / ``actions``;
* :func:`read_graph_edges`: the ``graph_edges`` snapshot (:mod:`pinrec.jobs.graph.graph`);
* :func:`read_true_latents`: ``<landing>/_truth/pins.parquet`` of the synthetic generator;
* :func:`read_pin_embeddings`: the ``pin_embeddings`` table (pin_id, embedding, model_version);
* :func:`read_content_embeddings`: the landed pins' ``content_embedding`` (MovieLens: genre flags;
  synthetic: true latent + noise), an item embedding model that needs no training.

:func:`evaluate_storage` reads what a pinrec storage layout holds and evaluates it (the CLI's job).

``source`` picks the interactions: every ``impressions`` row (MovieLens: every rating), or the
``actions`` of one type (``closeup``, ``save``).
"""
from __future__ import annotations

import dataclasses
import io
import itertools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pinrec.jobs.ingest.dataset_info import read_dataset_info
from pinrec.jobs.ingest.landing import list_partitions, partition_dir
from pinrec.jobs.io.lake import Location, as_location

from .baselines import ItemEmbeddings, check_log

if TYPE_CHECKING:
    from pinrec.jobs.retrieval.config import RetrievalEvalConfig

    from .retrieval_eval import RetrievalReport

SOURCES = ("impressions", "closeup", "save")


def _landed_files(landing: str | Path | Location, table: str) -> list:
    days = list_partitions(landing, table)
    if not days:
        raise FileNotFoundError(f"no {table} partitions under {as_location(landing) / table}")
    folders = [partition_dir(landing, table, day) for day in days]
    return [folder / name for folder in folders for name, is_dir in folder.entries()
            if not is_dir and name.endswith(".jsonl")]


def _read_landed(landing: str | Path | Location, table: str, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """The landed rows of ``table``. ``columns``: read file by file and keep only these (their values
    must have one JSON type in every file: ids, times, kinds), so a large landing zone is never held
    as one text plus its parsed copy; else all columns, parsed together (one type per column)."""
    files = _landed_files(landing, table)
    if columns:
        frames = []
        for f in files:
            if (text := f.read_text()).strip():
                frames.append(pd.read_json(io.StringIO(text), lines=True, dtype=False,
                                           convert_dates=False)[list(columns)])
        if not frames:
            raise ValueError(f"the {table} partitions under {landing} are all empty")
        return pd.concat(frames, ignore_index=True)
    text = "".join(f.read_text() for f in files)
    if not text.strip():
        raise ValueError(f"the {table} partitions under {landing} are all empty")
    return pd.read_json(io.StringIO(text), lines=True, dtype=False, convert_dates=False)


def read_landed_table(landing: str | Path | Location, table: str) -> pd.DataFrame:
    """Every landed row of ``table`` (all its day partitions), as the JSON lines hold them."""
    return _read_landed(landing, table)


def _source(source: str) -> str:
    if source not in SOURCES:
        raise ValueError(f"interaction source must be one of {list(SOURCES)}, got {source!r}")
    return "impressions" if source == "impressions" else "actions"


def interaction_source(landing: str | Path | Location, source: str) -> str:
    """The table the loaders read for ``source`` on this landing zone: ``closeup`` (one per interaction)
    for ``impressions`` when the dataset was landed with sampled negative impressions, else ``source``."""
    info = read_dataset_info(landing) or {}
    return "closeup" if source == "impressions" and info.get("negative_impressions") else source


def read_landing_interactions(landing: str | Path, source: str = "impressions") -> pd.DataFrame:
    """``(user_id, pin_id, ts)`` of every landed partition of the source table, in file order."""
    table = _source(source)
    rows = _read_landed(landing, table, ("user_id", "pin_id", "ts") + (("type",) if table == "actions" else ()))
    if table == "actions":
        rows = rows[rows["type"] == source]
    return check_log(rows.assign(ts=pd.to_datetime(rows["ts"], utc=True, format="ISO8601")))


def read_delta_interactions(spark, warehouse, source: str = "impressions") -> pd.DataFrame:
    """``(user_id, pin_id, ts)`` from the validated Delta table of ``source``. ``warehouse``: a
    path, Location or :class:`~pinrec.jobs.io.catalog.Catalog` (here and below)."""
    from pyspark.sql import functions as F

    from pinrec.jobs.io.catalog import Catalog

    table = _source(source)
    df = Catalog.of(spark, warehouse).read(table)
    if table == "actions":
        df = df.where(F.col("type") == source)
    return check_log(df.select("user_id", "pin_id", "ts").toPandas())


def read_graph_edges(spark, warehouse) -> pd.DataFrame:
    """The ``graph_edges`` snapshot: pin_id, board_id, saved_at (UTC), split."""
    from pinrec.jobs.io.catalog import Catalog

    edges = (Catalog.of(spark, warehouse).read("graph_edges")
             .select("pin_id", "board_id", "saved_at", "split").toPandas())
    return edges.assign(saved_at=pd.to_datetime(edges["saved_at"], utc=True))


def read_true_latents(landing: str | Path) -> ItemEmbeddings:
    """The synthetic generator's pin latents (``_truth/pins.parquet``: pin_id, category, latent)."""
    import pyarrow.parquet as pq

    path = as_location(landing) / "_truth" / "pins.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: only the synthetic world writes true latents")
    table = pq.read_table(path.path, columns=["pin_id", "latent"], filesystem=path.arrow_fs)
    latent = table.column("latent").combine_chunks()
    dim = len(latent[0]) if len(latent) else 0
    return ItemEmbeddings(table.column("pin_id").to_numpy(), latent.flatten().to_numpy().reshape(-1, dim))


def read_pin_embeddings(spark, warehouse, model_version: str | None = None) -> ItemEmbeddings:
    """``pin_embeddings`` rows of ``model_version`` (required when the table holds several)."""
    from pyspark.sql import functions as F

    from pinrec.jobs.io.catalog import Catalog

    df = Catalog.of(spark, warehouse).read("pin_embeddings")
    versions = sorted(str(r[0]) for r in df.select("model_version").distinct().collect())
    if model_version is None and len(versions) > 1:
        raise ValueError(f"pin_embeddings holds model versions {versions}; pass model_version")
    if model_version is not None:
        if model_version not in versions:
            raise ValueError(f"model_version {model_version!r} is not in pin_embeddings (has {versions})")
        df = df.where(F.col("model_version") == model_version)
    rows = df.select("pin_id", "embedding").toPandas()
    if rows.empty:
        raise ValueError("pin_embeddings is empty")
    return ItemEmbeddings(rows["pin_id"].to_numpy(), np.stack(rows["embedding"].map(np.asarray).to_list()))


def read_landed_pins(landing: str | Path) -> pd.DataFrame:
    """The landed ``pins`` rows, the latest per pin_id (the catalogue, with its content)."""
    return _read_landed(landing, "pins").drop_duplicates("pin_id", keep="last").reset_index(drop=True)


def read_content_embeddings(landing: str | Path, pins: pd.DataFrame | None = None) -> ItemEmbeddings:
    """``content_embedding`` of every landed pin that has one (``pins``: already read rows)."""
    pins = read_landed_pins(landing) if pins is None else pins
    pins = pins[pins["content_embedding"].map(lambda v: isinstance(v, list) and len(v) > 0)]
    if pins.empty:
        raise ValueError(f"no landed pin under {landing} has a content_embedding")
    vectors = np.array(pins["content_embedding"].to_list(), dtype=np.float32)
    return ItemEmbeddings(pins["pin_id"].to_numpy(), vectors)


def read_ncf_negatives(path: str | Path, user_ids: pd.DataFrame | None = None,
                       item_ids: pd.DataFrame | None = None) -> pd.DataFrame:
    """An NCF ``test.negative`` file (He et al., WWW 2017): one line per user,
    ``(user,item)<TAB>neg_1<TAB>...<TAB>neg_n``, any n; -> (user_id, pin_id, negatives). ``user_ids`` /
    ``item_ids``: the (value, id) maps of a log whose ids were renumbered
    (:func:`pinrec.jobs.ingest.dataset_info.read_id_map`), applied to the file's values."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"negatives file {path} does not exist")
    users, pins, lists = [], [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        head, *rest = line.strip().split("\t")
        inner = head.strip().removeprefix("(").removesuffix(")").split(",")
        if len(inner) != 2 or not head.startswith("("):
            raise ValueError(f"{path}:{number}: expected '(user,item)<TAB>negatives...', got {head[:40]!r}")
        users.append(inner[0].strip())
        pins.append(inner[1].strip())
        lists.append([v.strip() for v in rest if v.strip()])
    if not users:
        raise ValueError(f"negatives file {path} has no lines")

    def ids(values: list[str], mapping: pd.DataFrame | None, what: str) -> np.ndarray:
        if mapping is None:
            try:
                return np.asarray(values, dtype=np.int64)
            except ValueError:
                raise ValueError(f"{path}: {what} ids must be integers (or the log's renumbered values)") from None
        lookup = pd.Series(mapping["id"].to_numpy(), index=mapping["value"].astype(str))
        out = lookup.reindex(values)
        if out.isna().any():
            raise ValueError(f"{path}: {int(out.isna().sum())} {what} value(s) unknown to the dataset, "
                             f"e.g. {out[out.isna()].index[:3].tolist()}")
        return out.to_numpy(np.int64)

    flat = ids([v for neg in lists for v in neg], item_ids, "item")
    bounds = np.cumsum([0] + [len(neg) for neg in lists])
    return pd.DataFrame({"user_id": ids(users, user_ids, "user"), "pin_id": ids(pins, item_ids, "item"),
                         "negatives": [flat[a:b].tolist() for a, b in itertools.pairwise(bounds)]})


def check_loaded(landing: str | Path | Location) -> None:
    """FileNotFoundError saying what to run when the landing zone holds no dataset yet."""
    if not any(list_partitions(landing, table) for table in ("pins", "impressions")):
        raise FileNotFoundError(f"the landing zone {as_location(landing)} holds no dataset yet: run "
                                "`pinrec load-dataset` (a real dataset) or `pinrec generate` (the synthetic world) "
                                "before `pinrec eval-retrieval`")


def evaluate_storage(cfg: RetrievalEvalConfig, landing: str | Path, warehouse=None, spark=None,
                     embeddings: dict | None = None, model_version: str | None = None,
                     negatives: pd.DataFrame | None = None, pinsage_cfg=None,
                     make_pinsage=None, scorer_sources: dict | None = None) -> RetrievalReport:
    """Evaluate what the storage holds with :func:`pinrec.jobs.retrieval.retrieval_eval.evaluate_retrieval`.

    The catalogue is every landed pin. Without ``spark``: leave-one-out on the landing zone's
    interactions (a dataset adapter's, see :func:`read_landing_interactions`). With ``spark`` and
    ``warehouse``: interactions from Delta, item-item on ``graph_edges``, and the ``pin_embeddings``
    table as model ``"pin_embeddings"`` when those tables exist (``warehouse``: a path, Location or
    catalog).
    Both: the landed content embeddings as model ``"content"`` when pins carry them, latent
    agreement when ``<landing>/_truth`` exists, and ``embeddings`` (name -> embeddings or a
    function of the training log) as extra models. ``negatives``: given leave-one-out negatives
    (:func:`read_ncf_negatives`). A landing zone with nothing loaded: FileNotFoundError saying so.
    ``cfg.source`` ``impressions`` of a dataset landed with sampled negative impressions reads its
    closeups instead (one per interaction; the report's note ``source`` says so).
    ``make_pinsage`` (a function of a PinSage config returning an embedding source) with
    ``pinsage_cfg``: PinSage as model ``"pinsage"``. ``cfg.tune``: the data-dependent settings are
    chosen first on the validation split (:func:`pinrec.jobs.retrieval.tuning.select_settings`, the
    dataset record's ``timestamps`` deciding whether time order is offered); the report carries
    the choice (``selection``) and is evaluated with it. ``scorer_sources``: models trained per split
    that score users directly (e.g. ``{"two-tower": landing_two_tower(...)}``, which reads the
    PinSage embeddings of the same split when ``make_pinsage`` is given).
    """
    from .retrieval_eval import evaluate_retrieval

    check_loaded(landing)
    models, edges, truth, pins = dict(embeddings or {}), None, None, read_landed_pins(landing)
    try:
        models.setdefault("content", read_content_embeddings(landing, pins))
    except ValueError:
        pass  # no pin carries content: nothing to evaluate for it
    if (as_location(landing) / "_truth" / "pins.parquet").is_file():
        truth = read_true_latents(landing)
    info, source = read_dataset_info(landing) or {}, interaction_source(landing, cfg.source)
    if spark is None:
        log = read_landing_interactions(landing, source)
    else:
        if warehouse is None:
            raise ValueError("evaluate_storage with spark needs the warehouse path")
        from pinrec.jobs.io.catalog import Catalog

        catalog = Catalog.of(spark, warehouse)
        log = read_delta_interactions(spark, catalog, source)
        if catalog.exists("graph_edges"):
            edges = read_graph_edges(spark, catalog)
        if catalog.exists("pin_embeddings"):
            models.setdefault("pin_embeddings", read_pin_embeddings(spark, catalog, model_version))
    catalogue = pins["pin_id"].dropna().astype("int64").to_numpy()
    selection = None
    if cfg.tune:
        from .tuning import select_settings

        selection = select_settings(log, cfg, catalogue, pinsage_cfg, make_pinsage, info.get("timestamps"),
                                    negatives=negatives)
        cfg, pinsage_cfg = selection.cfg, selection.pinsage or pinsage_cfg
    if make_pinsage is not None:
        models["pinsage"] = make_pinsage(pinsage_cfg)
    report = evaluate_retrieval(log, models, edges=edges, truth=truth, cfg=cfg, pins=catalogue, negatives=negatives,
                                scorer_sources=scorer_sources)
    notes = {"dataset": info.get("kind"), "timestamps": info.get("timestamps")} if info else {}
    if source != cfg.source:
        notes["source"] = (f"{source} (retrieval_eval.source={cfg.source}, but the landed impressions hold "
                           f"{info['negative_impressions']} sampled negative(s) per interaction)")
    if selection is None:  # say so in the report: the defaults were picked on MovieLens-100K, not on this data
        notes["settings"] = ("as configured, not chosen on this dataset's validation split (retrieval_eval.tune=false; "
                             "the defaults were picked on MovieLens-100K)")
    return dataclasses.replace(report, notes={**notes, **report.notes}, selection=selection)
