"""``pinrec recommend``: the published bundle, loaded as serving loads it, answers for some users; the
command says which feature source answered.

Features come from Redis when ``--redis-url`` or the config's ``redis.url`` names one (``--no-redis``:
from the bundle's snapshot all the same), through
:class:`~pinrec.export.serving.redis_store.RedisFeatureStore` with every other ``redis.*`` setting,
the settings ``feature-snapshot`` exported with. Before the first request one lookup of no keys per
view of the snapshot reads the bundle version's ``_meta`` keys. When Redis cannot serve (down, timed
out, no export of this version, or one of another snapshot), an explicit ``--redis-url`` is an error
(:class:`RedisUnavailableError`, exit 2, one line naming the URL); the config's URL serves the snapshot
and says so on stdout and stderr. Without redis-py (the ``redis`` extra) either URL is that error. Each request the store then served from the snapshot (its
``fallbacks`` grew: Redis failed, or holds a value of another type than its column's) is reported on
stderr with the store's ``last_error``; the store's own warning shows only with ``-v``.

Output: ``bundle <name>/<version>``, ``features: redis <url> (export generation <id>)`` or
``features: bundle snapshot``, then one ``user <id>: pin (category, score, channel), ...`` line per user.

A log whose ids were not plain integers was numbered 1..N when it landed (``<landing>/_dataset/``
``user_ids.parquet``, ``item_ids.parquet``): ``--user`` then takes the log's own id (an integer it does not
hold is served as that id: 1..N, or an unknown user's cold start), and the pins are printed as the log's items.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import sys
from collections.abc import Iterator
from typing import Any

from pinrec.jobs.config import ConfigError, s3_options

from .cli_jobs import config_of

STORE_LOGGER = "pinrec.export.serving.feature_store"


class RedisUnavailableError(RuntimeError):
    """``--redis-url`` names a Redis that cannot serve the bundle's features at start; names the URL."""


def _context(items: list[str]) -> dict[str, Any]:
    """``--context key=value`` items -> the request context (``now``: a datetime; hour, day_of_week: ints)."""
    context: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--context expects key=value, got {item!r}")
        try:
            context[key] = dt.datetime.fromisoformat(value) if key == "now" else \
                int(value) if key in ("hour", "day_of_week") else value
        except ValueError:
            raise ConfigError(f"--context {key} expects {'an ISO time' if key == 'now' else 'an int'}, "
                              f"got {value!r}") from None
    return context


@contextlib.contextmanager
def _reported_here(verbose: bool) -> Iterator[None]:
    """Without ``-v``, drop the store's warnings: this command reports every fallback itself, once."""
    def quiet(record: logging.LogRecord) -> bool:
        return verbose or record.levelno < logging.WARNING

    logger = logging.getLogger(STORE_LOGGER)
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def serves_every_view(store) -> bool:
    """Whether Redis answers a lookup of no keys for every view of ``store.snapshot`` (one ``MGET`` of
    its ``_meta`` key each, checked against the snapshot as every lookup is); stops at the first that
    falls back, leaving the cause in ``store.last_error``."""
    import pyarrow as pa

    for view in store.snapshot.views:
        store.lookup(view, {e: pa.array([], pa.null()) for e in store.snapshot.meta(view).entities})
        if store.last_source != "redis":
            return False
    return True


def _redis_store(bundle, cfg, explicit: bool):
    """(the RedisFeatureStore over the bundle's snapshot, the ``features:`` line); the store is None
    when Redis cannot serve and the URL came from the config (its cause then went to stderr)."""
    from pinrec.export.serving.feature_snapshot import FeatureSnapshot
    from pinrec.export.serving.redis_store import RedisFeatureStore

    url = cfg.redis.url
    try:
        store = RedisFeatureStore(FeatureSnapshot.from_bundle(bundle), bundle.version, cfg.redis)
    except ImportError as e:  # redis-py is the 'redis' extra
        raise RedisUnavailableError(f"redis {url}: {e}") from e
    if serves_every_view(store):
        generations = sorted(set(store.generations.values()))  # one, unless views were exported apart
        plural = "s" * (len(generations) > 1)
        return store, f"features: redis {url} (export generation{plural} {', '.join(generations)})"
    cause = f"redis {url} cannot serve the features of bundle {bundle.name}/{bundle.version}: {store.last_error}"
    if explicit:
        raise RedisUnavailableError(cause)
    print(f"pinrec recommend: {cause} (redis.url of the config: serving the bundle snapshot)", file=sys.stderr)
    return None, f"features: bundle snapshot (redis {url} unusable)"


def served_users(values: list[str], landing) -> list[tuple[str, int]]:
    """``--user`` values -> (as given, the id the bundle serves): through the landed log's user id mapping
    where it holds the value (module docstring), else the value as an integer; ValueError otherwise."""
    from pinrec.jobs.ingest.dataset_info import read_id_map

    ids = read_id_map(landing, "user")
    known = {} if ids is None else dict(zip(ids["value"].astype(str), ids["id"].astype(int)))
    served = []
    for value in values:
        try:
            served.append((value, known[value] if value in known else int(value)))
        except ValueError:
            raise ValueError(f"--user {value!r} is neither a user id of the log landed in {landing} "
                             "(its _dataset/user_ids.parquet) nor an integer id") from None
    return served


def cmd_recommend(args) -> int:
    """``recommend --user U ... [--redis-url URL | --no-redis]`` (module docstring)."""
    from pinrec.export.serving.loader import load
    from pinrec.export.serving.recommend import Recommender
    from pinrec.jobs.ingest.dataset_info import read_id_map

    cfg = config_of(args, {"redis.url": args.redis_url})
    users = served_users(args.user, cfg.storage.landing)
    item_ids = read_id_map(cfg.storage.landing, "item")
    item_of = {} if item_ids is None else dict(zip(item_ids["id"].astype(int), item_ids["value"].astype(str)))
    context = _context(args.context or [])
    bundle = load(cfg.bundle_store_uri, cfg.publish.name, cfg.publish.channel, version=args.version,
                  s3=s3_options(cfg.storage))
    with _reported_here(args.verbose):
        store, line = (None, "features: bundle snapshot") if args.no_redis or not cfg.redis.url else \
            _redis_store(bundle, cfg, explicit=args.redis_url is not None)
        rec = Recommender(bundle, cfg.recommend, features=store)
        print(f"bundle {bundle.name}/{bundle.version}\n{line}")
        for user, served in users:
            before = store.fallbacks if store is not None else 0
            items = rec.recommend(served, context, k=args.k)
            if store is not None and store.fallbacks > before:
                print(f"pinrec recommend: user {user}: features from the bundle snapshot, redis {cfg.redis.url} "
                      f"degraded ({store.last_error})", file=sys.stderr)
            print(f"user {user}: " + (", ".join(f"{item_of.get(r.pin_id, r.pin_id)} ({r.category}, {r.score:.3f}, "
                                                f"{r.channel})"
                                                for r in items) or "-"))
    return 0
