"""A generic reader for any interaction log: CSV / TSV / Parquet of user, item, optional timestamp and
optional rating or weight, plus an optional item-metadata table, into an
:class:`~pinrec.jobs.ingest.datasets.InteractionLog`.

Columns are mapped by name (:class:`LogSpec`); a file without a header names its columns with
``LogSpec.names``. Files: CSV / TSV (unless ``sep`` is given, the separator is guessed from the first
line: tab, else ``::``, else the most frequent of comma, ``;`` and ``|``), JSON lines (``.json``, ``.jsonl``, ``.ndjson``), Parquet;
compressed (``.gz``...) too; text is UTF-8, else read as Latin-1 (every byte one character, so that
distinct ids never merge). Ids: plain non-negative integers (no leading zero, below :data:`MAX_KEPT_ID`) are kept as
they are; any other id (strings, floats, zero-padded numbers such as ``007``, which must not merge
with ``7``, and huge ones such as 64-bit snowflake ids, whose board ids would overflow) is replaced by
its 1-based rank among the sorted distinct values, and the mapping is returned
(:attr:`ReadLog.user_ids` / :attr:`ReadLog.item_ids`) so that it can be stored with the landing.

Time (``LogSpec.timestamps``):

* ``"column"``: the ``timestamp`` column; numbers are ``timestamp_unit`` (``"s"``, ``"ms"`` or ``"auto"``,
  the default: milliseconds when the largest is at least 1e11, which in seconds would be the year 5138)
  since the Unix epoch, text is parsed as dates (naive -> UTC); a time that cannot be a date (after
  2262, or seconds that are plainly milliseconds) is an error naming the column and ``timestamp_unit``;
* ``"row_order"``: the file has no time but its rows are in time order: row ``i`` (0-based) gets
  ``ORIGIN + i`` seconds;
* ``"none"``: no time at all: every interaction gets ``ORIGIN`` (all ties; the leave-one-out split
  then holds out a seeded choice of item per user).

``"auto"`` is ``"column"`` when ``timestamp`` is set, else ``"none"``. The mode is returned in
:attr:`ReadLog.timestamps` and stored in the landing zone's dataset record
(:mod:`pinrec.jobs.ingest.dataset_info`), where evaluation looks before it offers time-aware settings.

Repeated (user, item) rows (a usage log: one row per context) become one interaction at the
earliest time; ``rating`` keeps the latest row's value (by time; among equal times the later row of
the file), ``weight`` is summed. The interaction's
``rating`` is the rating column, else the summed weight, else 1.0; ``save_threshold`` (None: 4.0 when
the log has ratings, else every interaction is a save) decides which interactions are saves.

Item metadata (``items``): one row per item id (``item_key``, default the log's item column);
``category`` -> the pin category (missing -> ``"unknown"``), ``labels`` (a multi-label column joined by
``label_sep``) -> the pin's ``content_embedding`` (multi-hot over the sorted vocabulary of the
:data:`MAX_LABELS` most frequent labels) and, when
there is no ``category``, the category (the item's first label); ``title`` -> the pin title. Items
of the table that never occur in the log are kept (catalogue pins without interactions).
"""
from __future__ import annotations

import csv
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .dataset_info import write_dataset_info
from .dataset_readers import load_dataset
from .datasets import InteractionLog, to_landing
from .landing import LandingSummary

#: The time given to the interactions of a log without timestamps (row ``i`` of a row-ordered log: + i s).
ORIGIN = pd.Timestamp("2000-01-01", tz="UTC")
TIMESTAMP_MODES = ("auto", "column", "row_order", "none")
TIMESTAMP_UNITS = ("auto", "s", "ms")
#: with ``timestamp_unit: auto``, numeric times whose largest is at least this are milliseconds
MS_FROM = 1e11
_SEPARATORS = ("\t", "::", ",", ";", "|")  # guessed in this order of preference
_JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
#: the multi-hot content vector covers at most this many labels (the most frequent)
MAX_LABELS = 256
#: integer ids at least this large (in absolute value) are renumbered: board ids are user_id x 100+ and
#: must stay within int64 (64-bit snowflake ids would overflow them)
MAX_KEPT_ID = 10 ** 12
_INT_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)")


@dataclass(frozen=True)
class LogSpec:
    """How to read one interaction log (module docstring). Column arguments name columns of the file."""

    user: str = "user_id"
    item: str = "item_id"
    timestamp: str | None = None
    rating: str | None = None
    weight: str | None = None
    timestamps: str = "auto"
    timestamp_unit: str = "auto"
    sep: str | None = None
    names: tuple[str, ...] = ()
    save_threshold: float | None = None
    country: str = "ZZ"
    items: str | None = None
    item_key: str | None = None
    category: str | None = None
    labels: str | None = None
    label_sep: str = "|"
    title: str | None = None
    items_sep: str | None = None
    items_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.timestamps not in TIMESTAMP_MODES:
            raise ValueError(f"timestamps must be one of {list(TIMESTAMP_MODES)}, got {self.timestamps!r}")
        if self.timestamps == "column" and not self.timestamp:
            raise ValueError("timestamps='column' needs the timestamp column's name")
        if self.timestamp_unit not in TIMESTAMP_UNITS:
            raise ValueError(f"timestamp_unit must be one of {list(TIMESTAMP_UNITS)}, got {self.timestamp_unit!r}")
        if self.rating and self.weight:
            raise ValueError("give either a rating or a weight column, not both")
        for name in ("sep", "label_sep", "items_sep"):
            if getattr(self, name) == "":
                raise ValueError(f"{name} must be a non-empty separator (None: guessed), got ''")

    @property
    def mode(self) -> str:
        """The effective timestamp mode (``auto`` resolved)."""
        if self.timestamps == "auto":
            return "column" if self.timestamp else "none"
        return self.timestamps


@dataclass(frozen=True)
class ReadLog:
    """What :func:`read_log` returns: the log, its timestamp mode, the save threshold to land it
    with, and the id mappings (original value, int id) of non-integer ids (None: kept as they were)."""

    log: InteractionLog
    timestamps: str
    save_threshold: float
    rows: int
    user_ids: pd.DataFrame | None = field(default=None, repr=False)
    item_ids: pd.DataFrame | None = field(default=None, repr=False)


def read_table(path: str | Path, sep: str | None = None, names: tuple[str, ...] = (),
               text_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """A CSV / TSV, JSON-lines (``.gz`` etc. too) or Parquet file as strings-or-numbers; ``sep`` None:
    guessed from the first line (:func:`_guess_sep`); ``names``: the columns of a
    header-less file; ``text_columns``: columns of a CSV read as the text written (ids: ``007`` is not
    ``7``). Text is UTF-8 when it decodes as such, else Latin-1 (never a replacement character, which
    would merge distinct ids)."""
    path = Path(path)
    if path.is_dir() or (path.is_file() and path.suffix in (".parquet", ".pq", ".parq")):
        return pd.read_parquet(path)  # a file, or a folder of parts as Spark writes them
    if not path.is_file():
        raise FileNotFoundError(f"interaction log {path} does not exist")
    suffixes = [x.lower() for x in path.suffixes]
    json_lines = any(x in _JSON_SUFFIXES for x in suffixes[-2:])
    for encoding in ("utf-8-sig", "latin-1"):  # utf-8-sig: UTF-8 that drops a leading byte-order mark
        try:
            if json_lines:
                frame = pd.read_json(path, lines=True, encoding=encoding, dtype=False)
                wide = [c for c in text_columns if c in frame.columns and (
                    pd.api.types.is_unsigned_integer_dtype(frame[c]) or pd.api.types.is_float_dtype(frame[c]))]
                if wide:  # an id beyond int64 was wrapped (uint64) or rounded (float): read those ids as written
                    frame[wide] = _json_text_columns(path, encoding, wide)
                return frame.astype({c: str for c in text_columns if c in frame.columns and
                                     not pd.api.types.is_integer_dtype(frame[c])})
            return _read_csv(path, sep, names, text_columns, encoding)
        except UnicodeDecodeError:
            continue
        except pd.errors.EmptyDataError:
            raise ValueError(f"{path} is empty: no header and no rows") from None
        except (ValueError, pd.errors.ParserError) as e:  # a line that is not JSON, a ragged CSV row
            kind = "JSON lines (one object per line)" if json_lines else f"a {sep or 'guessed'!r}-separated table"
            raise ValueError(f"{path} cannot be read as {kind}: {e}") from None
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


def _json_text_columns(path: Path, encoding: str, columns: list[str]) -> pd.DataFrame:
    """``columns`` of a JSON-lines file with every number kept as its text (``123456789012345678901``
    stays itself; pandas wraps it modulo 2**64)."""
    rows = []
    with pd.io.common.get_handle(path, "r", encoding=encoding, compression="infer") as handle:
        for line in handle.handle:
            if line.strip():
                record = json.loads(line, parse_int=str, parse_float=str)
                rows.append([None if record.get(c) is None else str(record[c]) for c in columns])
    return pd.DataFrame(rows, columns=columns)


def _guess_sep(path: Path, encoding: str) -> str:
    """A tab when the first line has one (as before ``::`` and the others were guessed), else ``::`` when
    it has one, else whichever of comma, ``;``, ``|`` it has most (ties in that order), else a comma."""
    with pd.io.common.get_handle(path, "r", encoding=encoding, compression="infer") as handle:
        first = handle.handle.readline()
    if "\t" in first or "::" in first:
        return "\t" if "\t" in first else "::"
    counts = {sep: first.count(sep) for sep in _SEPARATORS[2:]}
    best = max(counts, key=lambda sep: (counts[sep], -_SEPARATORS.index(sep)))
    return best if counts[best] else ","


def _read_csv(path: Path, sep: str | None, names: tuple[str, ...], text_columns: tuple[str, ...],
              encoding: str) -> pd.DataFrame:
    """Tab- and ``::``-separated files take quotes as text (a track named ``"Heroes`` would otherwise swallow
    the lines up to the next quote); other separators follow CSV quoting, and a file that reads as fewer
    rows than it has data lines is refused. Only an empty field is missing: ``NA`` or ``None`` is an id."""
    sep = sep or _guess_sep(path, encoding)
    header = None if names else "infer"
    quoting = csv.QUOTE_NONE if sep in ("\t", "::") else csv.QUOTE_MINIMAL
    frame = pd.read_csv(path, sep=sep, header=header, names=list(names) or None, engine="python" if len(sep) > 1
                        else "c", encoding=encoding, keep_default_na=False, na_values=[""], quoting=quoting,
                        dtype=dict.fromkeys(text_columns, str) or None)
    if quoting != csv.QUOTE_NONE:
        with pd.io.common.get_handle(path, "r", encoding=encoding, compression="infer") as handle:
            lines = sum(1 for line in handle.handle if line.strip()) - (header is not None)
        if len(frame) != lines:
            raise ValueError(f"{path}: {lines:,} data lines read as {len(frame):,} rows: a field opening a quote "
                             "(\") runs on across separators or lines. Quote such fields in full (\"a \"\"b\"\" c\"), "
                             "or write the file tab-separated, where quotes are plain text")
    return frame


def _column(frame: pd.DataFrame, name: str, role: str, path: str | Path, required: bool = True) -> pd.Series:
    if name not in frame.columns:
        columns = [str(c) for c in frame.columns]
        if len(columns) == 1:
            hint = ("the file was read as one column: its separator is not tab, '::', comma, ';' or '|' "
                    "(set dataset.sep)")
        elif all(_looks_like_a_value(c) for c in columns):
            hint = "the first row looks like data, not a header (name the columns with dataset.names)"
        else:
            hint = "map it with the dataset.*_column settings or the load-dataset flags"
        raise ValueError(f"{path}: the {role} column {name!r} is missing; columns: {columns[:20]} ({hint})")
    values = frame[name]
    if required and values.isna().any():
        raise ValueError(f"{path}: the {role} column {name!r} has {int(values.isna().sum())} empty value(s)")
    return values


def _numbers(frame: pd.DataFrame, name: str, role: str, path: str | Path) -> pd.Series:
    values = _column(frame, name, role, path)
    parsed = pd.to_numeric(values, errors="coerce").astype(float)
    bad = parsed.isna() | ~np.isfinite(parsed)
    if bad.any():
        raise ValueError(f"{path}: the {role} column {name!r} has {int(bad.sum())} value(s) that are not finite "
                         f"numbers, e.g. {values[bad].iloc[0]!r} (row {int(np.flatnonzero(bad)[0]) + 1})")
    return parsed


def _looks_like_a_value(column: str) -> bool:
    try:
        float(column)
        return True
    except ValueError:
        return False


def _int_ids(values: pd.Series) -> np.ndarray | None:
    """(N,) int64 when every value is a plain non-negative integer (an integer column, or text like
    ``42`` without a leading zero) below :data:`MAX_KEPT_ID`; else None (a negative id is renumbered:
    faiss marks a missing neighbour with -1)."""
    if pd.api.types.is_integer_dtype(values):
        if len(values) and (values.max() >= MAX_KEPT_ID or values.min() < 0):
            return None
        return values.to_numpy(np.int64)
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return None  # floats: renumbered, as before
    text = values.astype(str)
    if not text.str.fullmatch(_INT_TEXT).all():
        return None
    return _int_ids(text.astype(np.int64)) if text.str.len().max() <= len(str(MAX_KEPT_ID)) else None


def _ids(values: pd.Series) -> tuple[np.ndarray, pd.DataFrame | None]:
    kept = _int_ids(values)
    if kept is not None:
        return kept, None
    vocabulary = np.sort(values.astype(str).unique())
    codes = np.searchsorted(vocabulary, values.astype(str).to_numpy()) + 1
    return codes.astype(np.int64), pd.DataFrame({"value": vocabulary, "id": np.arange(1, len(vocabulary) + 1)})


def _times(frame: pd.DataFrame, spec: LogSpec, path: str | Path) -> pd.Series:
    if spec.mode == "none":
        return pd.Series(ORIGIN, index=frame.index)
    if spec.mode == "row_order":
        return pd.Series(ORIGIN + pd.to_timedelta(np.arange(len(frame)), unit="s"), index=frame.index)
    raw = _column(frame, spec.timestamp, "timestamp", path)
    if pd.api.types.is_numeric_dtype(raw):
        largest = float(raw.abs().max())
        # auto: the unit of the typical value, so one sentinel (9999-12-31 in seconds) cannot turn every time into ms
        typical = float(raw.abs().median())
        unit = spec.timestamp_unit if spec.timestamp_unit != "auto" else "ms" if typical >= MS_FROM else "s"
        if unit == "s" and largest >= MS_FROM:
            over = int((raw.abs() >= MS_FROM).sum())
            why = ("set dataset.timestamp_unit: ms (or auto)" if spec.timestamp_unit == "s" else
                   f"{over} of {len(raw)} values are that large while the median, {typical:.0f}, is in seconds: "
                   "a sentinel date or rows in milliseconds; fix those rows (or set dataset.timestamp_unit)")
            raise ValueError(f"{path}: the timestamp column {spec.timestamp!r} holds {largest:.0f}, the year "
                             f"{1970 + int(largest // 31_556_952)} in seconds: {why}")
        try:
            return pd.to_datetime(raw.astype("int64"), unit=unit, utc=True)
        except (OverflowError, pd.errors.OutOfBoundsDatetime):
            raise ValueError(f"{path}: the timestamp column {spec.timestamp!r} holds {largest:.0f}, not a time in "
                             f"{'milli' if unit == 'ms' else ''}seconds since 1970 (dataset.timestamp_unit: "
                             f"{spec.timestamp_unit})") from None
    return _parse_dates(raw, f"{path}: the timestamp column {spec.timestamp!r}")


def _parse_dates(raw: pd.Series, what: str) -> pd.Series:
    """Date strings -> UTC times: ISO 8601, else one format pandas infers from the first value for all of
    them, else each value on its own, refused where the day/month order is a guess that decides the date
    (``12/02/2024`` read as 2 December beside ``13/02/2024`` read as 13 February)."""
    for fmt in ("ISO8601", None):
        try:
            return pd.to_datetime(raw, utc=True, format=fmt)
        except (ValueError, TypeError, OverflowError):
            continue
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "parsing dates in DD/MM/YYYY format": checked below
            month_first = pd.to_datetime(raw, utc=True, format="mixed", dayfirst=False)
            day_first = pd.to_datetime(raw, utc=True, format="mixed", dayfirst=True)
    except (ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"{what} is neither numbers nor dates ({e})") from None
    differ = ~((month_first == day_first) | (month_first.isna() & day_first.isna()))
    if differ.any():
        example = raw[differ].iloc[0]
        raise ValueError(f"{what} mixes date formats and {int(differ.sum())} value(s), e.g. {example!r}, read as "
                         f"{month_first[differ].iloc[0]:%Y-%m-%d} month first or {day_first[differ].iloc[0]:%Y-%m-%d} "
                         "day first: write the times as ISO 8601 (YYYY-MM-DD ...) or epoch numbers")
    return month_first


def _items(spec: LogSpec, item_ids: np.ndarray, mapping: pd.DataFrame | None) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The items frame over every logged item and every item of the metadata table."""
    meta = pd.DataFrame({"item_id": np.unique(item_ids)})
    if spec.items is None:
        return meta.assign(category="unknown", title=None, created_at=pd.NaT), ("unknown",)
    table = read_table(spec.items, spec.items_sep, spec.items_names, text_columns=(spec.item_key or spec.item,))
    key = _column(table, spec.item_key or spec.item, "item key", spec.items)
    if mapping is None:
        ids = _int_ids(key)
        if ids is None:
            raise ValueError(f"{spec.items}: item key {key.name!r} is not a plain integer like the log's item ids")
    else:  # the log's ids were strings: map the table's keys the same way, new keys after them
        lookup = pd.Series(mapping["id"].to_numpy(), index=mapping["value"])
        ids = lookup.reindex(key.astype(str)).to_numpy()
        new = np.isnan(ids)
        ids[new] = len(mapping) + pd.factorize(key.astype(str)[new], sort=True)[0] + 1
        ids = ids.astype(np.int64)
    if pd.Series(ids).duplicated().any():
        raise ValueError(f"{spec.items}: the item key {key.name!r} repeats an item")
    table = table.assign(item_id=ids)
    meta = meta.merge(table, on="item_id", how="outer")
    labels = None
    if spec.labels:
        _column(table, spec.labels, "labels", spec.items, required=False)
        labels = meta[spec.labels].fillna("").astype(str).str.split(spec.label_sep).map(
            lambda xs: [x.strip() for x in xs if x.strip()])
    if spec.title:
        _column(table, spec.title, "title", spec.items, required=False)
    if spec.category:
        _column(table, spec.category, "category", spec.items, required=False)
        category = meta[spec.category].fillna("unknown").astype(str).str.strip().replace("", "unknown")
    elif labels is not None:
        category = labels.map(lambda xs: xs[0] if xs else "unknown")
    else:
        category = pd.Series("unknown", index=meta.index)
    out = pd.DataFrame({"item_id": meta["item_id"].astype(np.int64), "category": category,
                        "title": meta[spec.title].astype(object).where(meta[spec.title].notna(), None)
                        if spec.title else None, "created_at": pd.NaT})
    if labels is not None:
        out["content_embedding"] = _multi_hot(labels, MAX_LABELS)
    return out, tuple(sorted(set(out["category"]) | {"unknown"}))


def _multi_hot(labels: pd.Series, most: int) -> list:
    """Each item's labels as a multi-hot list over the ``most`` most frequent labels (ties: sorted by
    name; the vocabulary in sorted order), None for an item with none of them. A brand or tag column
    with thousands of values would otherwise give every pin a vector that long."""
    flat = labels.explode().dropna()
    counts = flat.value_counts()
    keep = sorted(counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable").index[:most])
    column = {x: i for i, x in enumerate(keep)}
    flat = flat[flat.isin(column)]
    hot = np.zeros((len(labels), len(keep)), np.float32)
    hot[labels.index.get_indexer(flat.index), flat.map(column).to_numpy(np.int64)] = 1.0
    return [v.tolist() if v.any() else None for v in hot]


def read_log(path: str | Path, spec: LogSpec | None = None) -> ReadLog:
    """Read the interaction log at ``path`` as ``spec`` says (module docstring). Raises
    FileNotFoundError / ValueError naming the file and column at fault."""
    spec = spec or LogSpec()
    frame = read_table(path, spec.sep, spec.names, text_columns=(spec.user, spec.item))
    if frame.empty:
        raise ValueError(f"interaction log {path} has no rows")
    users, user_ids = _ids(_column(frame, spec.user, "user", path))
    items, item_ids = _ids(_column(frame, spec.item, "item", path))
    if spec.rating or spec.weight:
        value = _numbers(frame, spec.rating or spec.weight, "rating" if spec.rating else "weight", path)
    else:
        value = pd.Series(1.0, index=frame.index)
    inter = pd.DataFrame({"user_id": users, "item_id": items, "ts": _times(frame, spec, path).to_numpy(),
                          "rating": value.to_numpy(), "_row": np.arange(len(frame))})
    grouped = inter.groupby(["user_id", "item_id"], sort=False)
    latest = inter.sort_values(["ts", "_row"], kind="stable").groupby(["user_id", "item_id"], sort=False)["rating"]
    inter = pd.DataFrame({"ts": grouped["ts"].min(), "_row": grouped["_row"].min(),
                          "rating": grouped["rating"].sum() if spec.weight else latest.last()}
                         ).reset_index().sort_values("_row", kind="stable").drop(columns="_row")
    item_frame, categories = _items(spec, inter["item_id"].to_numpy(), item_ids)
    user_frame = pd.DataFrame({"user_id": np.unique(inter["user_id"]), "created_at": pd.NaT,
                               "country": spec.country, "gender": "U", "age": pd.NA, "occupation": None})
    user_frame["age"] = user_frame["age"].astype("Int32")
    threshold = spec.save_threshold if spec.save_threshold is not None else (4.0 if spec.rating else -np.inf)
    log = InteractionLog(users=user_frame, items=item_frame, interactions=inter.reset_index(drop=True),
                         categories=categories, source="log")
    return ReadLog(log, spec.mode, float(threshold), len(frame), user_ids, item_ids)


def load_log(path: str | Path, landing: str | Path, spec: LogSpec | None = None,
             max_partitions: int = 0, negatives: int | None = None) -> LandingSummary:
    """Read the log at ``path`` (:func:`read_log`) and land it (:func:`~pinrec.jobs.ingest.datasets.to_landing`,
    no empty partitions, at most ``max_partitions`` per table when > 0, ``negatives`` sampled negative
    impressions per interaction, None: 1 for a log whose every interaction is a save, else 0), with the
    dataset record (:mod:`pinrec.jobs.ingest.dataset_info`) saying how its time was given."""
    read = read_log(path, spec)
    summary = to_landing(read.log, landing, read.save_threshold, max_partitions, empty_partitions=False,
                         negatives=negatives)
    write_dataset_info(landing, {
        "kind": "log", "path": str(path), "timestamps": read.timestamps, "rows": read.rows,
        "users": len(read.log.users), "items": len(read.log.items), "interactions": len(read.log.interactions),
        "save_threshold": read.save_threshold, "negative_impressions": summary.negatives,
        "partitions": len(summary.rows["impressions"]),
        "max_partitions": max_partitions, "partition": summary.partition}, read.user_ids, read.item_ids)
    return summary


def land_configured(ds, landing: str | Path) -> LandingSummary:
    """Land the dataset a :class:`~pinrec.jobs.config.DatasetConfig` ``ds`` names (``kind``
    ``movielens-100k`` or ``log``, not ``synthetic``) into ``landing``: what ``pinrec load-dataset`` and
    the demo's landing step both run."""
    if ds.kind == "synthetic" or not ds.path:
        raise ValueError(f"dataset.kind {ds.kind!r} with dataset.path {ds.path!r}: nothing to load "
                         "(movielens-100k or log, with a path)")
    if ds.kind != "log":
        return load_dataset(ds.kind, ds.path, landing, ds.max_partitions, ds.negative_impressions)
    spec = LogSpec(user=ds.user_column, item=ds.item_column, timestamp=ds.timestamp_column, rating=ds.rating_column,
                   weight=ds.weight_column, timestamps=ds.timestamps, timestamp_unit=ds.timestamp_unit, sep=ds.sep,
                   names=ds.names, save_threshold=ds.save_threshold, country=ds.country, items=ds.items,
                   item_key=ds.item_key, category=ds.category_column, labels=ds.labels_column,
                   label_sep=ds.label_sep, title=ds.title_column, items_sep=ds.items_sep,
                   items_names=ds.items_names)
    return load_log(ds.path, landing, spec, ds.max_partitions, ds.negative_impressions)


__all__ = ["ORIGIN", "LogSpec", "ReadLog", "land_configured", "load_log", "read_log", "read_table"]
