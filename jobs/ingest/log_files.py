"""Reading an interaction log's file (:mod:`pinrec.jobs.ingest.log_reader`) into a frame: :func:`read_table`.

Files: CSV / TSV (unless ``sep`` is given, the separator is guessed from the first
line: tab, else ``::``, else the most frequent of comma, ``;`` and ``|``), JSON lines (``.json``, ``.jsonl``,
``.ndjson``), Parquet; compressed (``.gz``...) too; text is UTF-8, else read as Latin-1 (every byte one
character, so that distinct ids never merge).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd

_SEPARATORS = ("\t", "::", ",", ";", "|")  # guessed in this order of preference
_JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")


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
