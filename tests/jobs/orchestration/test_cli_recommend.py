"""`pinrec recommend`: which feature source answers (the bundle's snapshot, or Redis in front of it), on
the tiny published serving bundle and a real redis-server (the ``redis_url`` fixture)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from pinrec.export.build.publish import publish
from pinrec.export.serving.feature_snapshot import FeatureSnapshot
from pinrec.export.serving.loader import load
from pinrec.export.serving.recommend import Recommender
from pinrec.export.serving.redis_format import RedisConfig, redis_key
from pinrec.export.serving.store import Store
from pinrec.jobs.config import load_config
from pinrec.jobs.orchestration.cli import main
from tests.support.bundles import LINEAGE, T0, metrics
from tests.support.redis_server import free_port
from tests.support.serving import GATE, PIN_IDS, write_candidate

USERS = ("--user", "2", "--user", "3")
SAVES = "user__last_saved_pins"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """(the ``--set`` options naming the store, the bundle's snapshot, the snapshot's answer per user):
    homefeed v1 on channel prod."""
    root = tmp_path_factory.mktemp("cli_recommend")
    store = Store(str(root / "store"))
    publish(store, "homefeed", write_candidate(root / "candidate"), metrics(), LINEAGE, version="v1", now=T0,
            blessing=GATE)
    bundle = load(store.uri, "homefeed")
    rec = Recommender(bundle, load_config().recommend)
    answers = {user: line(user, rec.recommend(user, {}, k=10)) for user in (2, 3)}
    sets = ["--set", f"publish.store_uri={store.uri}", "--set", "publish.name=homefeed",
            "--set", f"storage.landing={root / 'landing'}"]  # no landed log: ids as they are
    return sets, FeatureSnapshot.from_bundle(bundle), answers


def line(user: int, items) -> str:
    return f"user {user}: " + (", ".join(f"{r.pin_id} ({r.category}, {r.score:.3f}, {r.channel})" for r in items)
                               or "-")


def from_snapshot(answers: dict[int, str]) -> str:
    """What the command prints when the bundle's snapshot serves the features."""
    return f"bundle homefeed/v1\nfeatures: bundle snapshot\n{answers[2]}\n{answers[3]}\n"


def recommend(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["recommend", *USERS, *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def exported(published, redis_url):
    """(redis-py client, the export's generation): the bundle's snapshot exported to Redis under v1
    with key prefix ``hf``, as ``feature-snapshot --redis-url --bundle-version v1`` writes it."""
    import redis

    from pinrec.jobs.features.redis_export import export_snapshot

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    report = export_snapshot(published[1], "v1", RedisConfig(url=redis_url, key_prefix="hf"))
    yield client, report.generation
    client.close()


def set_user_value(client, snapshot, generation: str, user: int, column: str, value) -> str:
    """Replace ``column`` of ``user``'s row in Redis; returns its key."""
    key = redis_key("hf", "v1", "user", generation, (user,))
    row = json.loads(client.get(key))
    row[snapshot.meta("user").value_columns.index(column)] = value
    client.set(key, json.dumps(row), keepttl=True)
    return key


def test_without_redis_the_bundle_snapshot_answers_and_says_so(published, capsys):
    sets, _, answers = published
    assert recommend(capsys, *sets) == (0, from_snapshot(answers), "")


def test_a_renumbered_logs_own_ids_are_mapped_in_and_out(published, tmp_path, capsys):
    # a log with string ids lands numbered 1..N: recommend takes its user ids and prints its item ids
    from pinrec.jobs.ingest.dataset_info import write_dataset_info

    sets, _, answers = published
    write_dataset_info(tmp_path, {"timestamps": "column"}, user_ids=pd.DataFrame({"value": ["A2XV", "A9"], "id": [2, 3]}),
                       item_ids=pd.DataFrame({"value": [f"B{p:05d}" for p in PIN_IDS], "id": list(PIN_IDS)}))
    landing = ["--set", f"storage.landing={tmp_path}"]
    code = main(["recommend", "--user", "A2XV", "--user", "3", *sets, *landing])
    out = capsys.readouterr().out.splitlines()
    as_log = lambda line: re.sub(r"(\d+) \(", lambda m: f"B{int(m[1]):05d} (", line)
    assert code == 0 and out[2:] == [as_log(answers[2]).replace("user 2:", "user A2XV:"), as_log(answers[3])]
    assert main(["recommend", "--user", "nobody", *sets, *landing]) == 2
    assert "'nobody' is neither a user id of the log" in capsys.readouterr().err


@pytest.mark.integration
def test_redis_url_serves_the_values_redis_holds(published, redis_url, exported, capsys):
    sets, snapshot, answers = published
    client, generation = exported
    sets = [*sets, "--set", "redis.key_prefix=hf"]  # the other redis.* settings: as the export wrote them
    head = f"bundle homefeed/v1\nfeatures: redis {redis_url} (export generation {generation})\n"
    assert recommend(capsys, *sets, "--redis-url", redis_url) == (0, f"{head}{answers[2]}\n{answers[3]}\n", "")
    # user 3 has no saves in the snapshot: in Redis it now has two, so the ann channel searches around them
    set_user_value(client, snapshot, generation, 3, SAVES, [int(PIN_IDS[10]), int(PIN_IDS[20])])
    code, out, err = recommend(capsys, *sets, "--redis-url", redis_url)
    via_redis = out.splitlines()[3]
    assert (code, err, out.splitlines()[:3]) == (0, "", [*head.splitlines(), answers[2]])
    assert "ann)" in via_redis and "ann)" not in answers[3] and via_redis.startswith("user 3: ")
    assert f"{PIN_IDS[10]} (" not in via_redis and f"{PIN_IDS[20]} (" not in via_redis  # its own saves: filtered
    # redis.url of the config is the default; --no-redis serves the snapshot all the same
    assert recommend(capsys, *sets, "--set", f"redis.url={redis_url}") == (0, out, "")
    assert recommend(capsys, *sets, "--set", f"redis.url={redis_url}", "--no-redis") == \
        (0, from_snapshot(answers), "")


@pytest.mark.integration
def test_a_value_redis_cannot_serve_is_reported_for_its_user(published, redis_url, exported, capsys):
    """A value of another type than its column's: the store serves that lookup from the snapshot and
    names the key; the command says so on stderr for that user, and the next user reads Redis again."""
    sets, snapshot, answers = published
    client, generation = exported
    key = set_user_value(client, snapshot, generation, 2, SAVES, "not a list")
    set_user_value(client, snapshot, generation, 3, SAVES, [int(PIN_IDS[10])])
    code, out, err = recommend(capsys, *sets, "--set", "redis.key_prefix=hf", "--set", "redis.retry_after_s=0",
                               "--redis-url", redis_url)
    assert code == 0 and out.splitlines()[2] == answers[2] and "ann)" in out.splitlines()[3]
    assert err == (f"pinrec recommend: user 2: features from the bundle snapshot, redis {redis_url} degraded "
                   f"(_Unusable: column '{SAVES}' under {key} holds 'not a list', not a list<element: int64> value)\n")


@pytest.mark.integration
def test_redis_without_this_versions_export(published, redis_url, exported, capsys):
    """The prefix differs from the export's: Redis is up but holds nothing for v1."""
    sets, _, answers = published
    cause = (f"redis {redis_url} cannot serve the features of bundle homefeed/v1: _Unusable: no complete export "
             "of 'pin' for version v1 (pinrec:v1:pin:_meta is absent)")
    assert recommend(capsys, *sets, "--redis-url", redis_url) == (2, "", f"pinrec recommend: {cause}\n")
    code, out, err = recommend(capsys, *sets, "--set", f"redis.url={redis_url}")  # the config's: a warning
    assert code == 0 and out == (f"bundle homefeed/v1\nfeatures: bundle snapshot (redis {redis_url} unusable)\n"
                                 f"{answers[2]}\n{answers[3]}\n")
    assert err == f"pinrec recommend: {cause} (redis.url of the config: serving the bundle snapshot)\n"


def test_an_explicit_redis_url_that_is_down_exits_2_with_one_line(published):
    """In a process of its own: the store's logged warning must not add a second line."""
    pytest.importorskip("redis")
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens
    done = subprocess.run([sys.executable, "-m", "pinrec.jobs.orchestration.cli", "recommend", *USERS,
                           *published[0], "--redis-url", url], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ), check=False)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"pinrec recommend: redis {url} cannot serve the features of bundle homefeed/v1: "
                                  "ConnectionError: ")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
