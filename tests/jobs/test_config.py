"""Typed, frozen configuration: defaults, YAML, overrides, and loud failures."""
from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pydantic
import pytest

from pinrec.export.serving.store import S3Options
from pinrec.jobs.config import (
    ConfigError,
    PinrecConfig,
    StorageConfig,
    load_config,
    parse_overrides,
    replace,
    s3_options,
)


def test_defaults_are_the_embedded_local_setup():
    cfg = load_config()
    assert cfg.storage.warehouse == "./var/warehouse"
    assert cfg.storage.artifacts == "./var/artifacts"
    assert cfg.storage.mlflow_tracking_uri == "sqlite:///var/mlflow.db"
    assert cfg.spark.master == "local[*]"
    assert cfg.dataset.kind == "synthetic"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3


def test_yaml_then_overrides_with_type_coercion(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 11\nsynthetic:\n  days: 2\n  start_date: 2025-03-01\nspark:\n  extra:\n    spark.a.b: 1\n")
    cfg = load_config(path, parse_overrides(["synthetic.days=3", "ingest.max_failing_fraction=0.5",
                                             "ingest.optional_tables=[users]"]))
    assert cfg.seed == 11
    assert cfg.synthetic.days == 3
    assert cfg.synthetic.start_date == dt.date(2025, 3, 1)
    assert cfg.synthetic.users == 1_000  # untouched default
    assert cfg.spark.extra == {"spark.a.b": "1"}
    assert cfg.ingest.max_failing_fraction == 0.5
    assert cfg.ingest.optional_tables == ("users",)


@pytest.mark.parametrize("overrides, message", [
    ({"synthetic": {"dayz": 2}}, r"^unknown key `synthetic.dayz`; did you mean `synthetic.days`\?$"),
    ({"bogus": 1}, r"^unknown key `bogus`; valid keys: storage, spark, dataset, .*, monitoring, cache, seed$"),
    ({"synthetic": {"days": "many"}}, "^synthetic.days: expected an integer, got 'many'$"),
    # text that pydantic's lax mode would read as a number (the YAML layer kept it as typed): refused
    ({"seed": "2024_01"}, r"^seed: expected a number, got the text '2024_01'$"),
    ({"synthetic": {"days": "007"}}, r"^synthetic.days: expected a number, got the text '007'$"),
    ({"blessing": {"min_auc": "0.5"}}, r"^blessing.min_auc: expected a number, got the text '0.5'$"),
    ({"synthetic": {"days": 2.5}}, "^synthetic.days: expected an integer, got 2.5$"),
    ({"ingest": {"max_failing_fraction": 2}}, r"^ingest.max_failing_fraction must be in \[0, 1\], got 2$"),
    ({"dataset": {"kind": "movielens-100k"}}, "dataset.path is required"),
    ({"dataset": {"kind": "netflix"}}, "^dataset.kind must be one of 'synthetic', 'movielens-100k' or 'log', got 'netflix'$"),
    ({"synthetic": {"start_date": "yesterday"}}, "^synthetic.start_date: expected a YYYY-MM-DD date, got 'yesterday'$"),
    ({"spark": "local"}, "^spark: expected a mapping, got 'local'$"),
    ({"training": {"broadcast_max_mb": -1}}, "^training.broadcast_max_mb must be >= 0, got -1$"),
    ({"ranker_train": {"lr": 0}}, r"^ranker_train.lr must be > 0, got 0$"),
    ({"ranker_train": {"loss": "hinge"}}, r"^ranker_train.loss must be one of 'bce' or 'focal', got 'hinge'$"),
    ({"pinsage": {"restart_prob": 1.0}}, r"^pinsage.restart_prob must be in \[0, 1\), got 1.0$"),
    ({"ranker": {"deep_channels": [64, 0]}}, r"^ranker.deep_channels\[1\] must be >= 1, got 0$"),
    ({"ranker": {"tasks": []}}, r"^ranker.tasks must have at least 1 item\(s\), got \[\]$"),
    ({"storage": {"landing": "~/data/landing"}},
     r"^storage.landing: storage path '~/data/landing' starts with '~', which is not expanded here: write the full"),
    ({"publish": {"store_uri": "gs://bucket/p"}},
     r"publish.store_uri must be a local path, file://\.\.\., or s3://bucket\[/prefix\] \(s3a:// too\), got 'gs://"),
    ({"publish": {"store_uri": "s3//bucket/p"}}, r"publish.store_uri 's3//bucket/p' looks like a URI missing its"),
    ({"training": {"window_days": 2}},
     r"^training.window_days=2 cannot hold a day to train on besides 2 held-out day\(s\) .*set it to >= 3, or 0"),
    ({"training": {"window_days": 4, "validation_days": 1, "test_days": 3}}, r"set it to >= 5"),
    ({"ranker": {"tasks": ["save"]}, "calibration": {"score_weights": [1.0, 0.3]}},
     r"^calibration.score_weights \[1.0, 0.3\] needs one weight per ranker task \['save'\] \(or null"),
    ({"ranker_train": {"task_weights": [1.0]}}, r"^ranker_train.task_weights \[1.0\] needs one weight per ranker"),
    ({"ranker": {"tasks": ["click"]}}, r"^ranker.tasks names \['click'\]: the training set's labels are "),
    ({"monitoring": {"tasks": ["save", "like"]}}, r"^monitoring.tasks names \['like'\]"),
    ({"storage": {"warehouse": ""}}, r"^storage.warehouse is empty: give a path or URI"),
    ({"storage": {"mlflow_tracking_uri": " "}}, r"^storage.mlflow_tracking_uri is empty"),
    ({"storage": "s3://bucket/pinrec"}, r"^storage: expected a mapping"),
    ({"ingest": {"optional_tables": ["users", "pin_board_edge"]}},
     r"^ingest.optional_tables names unknown table\(s\) \['pin_board_edge'\]; the landed tables are \['users', "),
    ({"blessing": {"max_auc_drop": float("nan")}}, "^blessing.max_auc_drop must be a finite number, got nan$"),
    ({"monitoring": {"psi_floor": 0.5}}, r"^monitoring.psi_floor must be in \(0, 1/psi_bins\)"),
    # the serving sections are stdlib dataclasses (no pydantic in the base install), validated as strictly
    ({"index": {"metirc": "l2"}}, r"^unknown key `index.metirc`; did you mean `index.metric`\?$"),
    ({"index": {"metric": "dot"}}, r"^index.metric must be one of 'ip', 'l2' or 'cosine', got 'dot'$"),
    ({"index": {"k": 0}}, r"^index.k must be >= 1, got 0$"),
    ({"redis": {"batch_size": 0}}, r"^redis.batch_size must be >= 1, got 0$"),
    ({"recommend": {"bogus": 1}}, r"^unknown key `recommend.bogus`; valid keys: channels, ann_candidates, "),
])
def test_bad_config_raises_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


def test_missing_file_and_bad_override_syntax(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_overrides(["seed"])


def test_replace_merges_nested_sections():
    cfg = replace(PinrecConfig(), synthetic={"days": 1}, seed=3)
    assert (cfg.synthetic.days, cfg.synthetic.users, cfg.seed) == (1, 1_000, 3)


def test_the_example_config_spells_out_the_defaults():
    from tests.support.repo import REPO

    assert load_config(REPO / "config" / "pinrec.example.yaml") == PinrecConfig()


def test_s3_settings_come_from_the_config_then_the_aws_environment(tmp_path):
    assert s3_options(load_config().storage) == S3Options()  # no environment passed: AWS, us-east-1
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:8333", "AWS_DEFAULT_REGION": "eu-west-3",
           "AWS_ACCESS_KEY_ID": "AKIA-test", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}
    cfg = load_config(env=env)
    assert (cfg.storage.s3_endpoint_url, cfg.storage.s3_region) == ("http://127.0.0.1:8333", "eu-west-3")
    assert s3_options(cfg.storage) == S3Options(endpoint_url="http://127.0.0.1:8333", region="eu-west-3")
    assert "s3cr3t" not in repr(cfg) and "AKIA-test" not in repr(cfg)  # keys stay with the SDK's chain
    both = {**env, "AWS_ENDPOINT_URL_S3": "https://s3.internal:9000", "AWS_REGION": "ap-south-1"}
    assert s3_options(load_config(env=both).storage) == S3Options("https://s3.internal:9000", "ap-south-1")
    (tmp_path / "c.yaml").write_text("storage:\n  s3_endpoint_url: http://minio:9000\n")
    cfg = load_config(tmp_path / "c.yaml", env=both)  # the file wins over the environment, --set over both
    assert (cfg.storage.s3_endpoint_url, cfg.storage.s3_region) == ("http://minio:9000", "ap-south-1")
    cfg = load_config(tmp_path / "c.yaml", parse_overrides(["storage.s3_region=us-west-2"]), env=both)
    assert s3_options(cfg.storage) == S3Options("http://minio:9000", "us-west-2")
    with pytest.raises(ConfigError, match=r"storage.s3_endpoint_url \(else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL\) "
                                          r"must start with http:// or https://, got 'minio:9000'"):
        load_config(overrides={"storage": {"s3_endpoint_url": "minio:9000"}})
    with pytest.raises(ConfigError, match="must start with http:// or https://, got 's3.internal'"):
        load_config(env={"AWS_ENDPOINT_URL": "s3.internal", "AWS_ACCESS_KEY_ID": "only one key"})


@pytest.mark.parametrize("region", ["us east 1", "eu-west-3/", "", "-x", "a" * 65])
def test_an_s3_region_that_no_request_could_sign_is_refused_at_load(region):
    with pytest.raises(ConfigError, match=r"^storage.s3_region \(else AWS_REGION / AWS_DEFAULT_REGION\) must be a region "
                                          rf"name of letters, digits, '-', '_' or '.' \(such as us-east-1\), got {re.escape(repr(region))}$"):
        load_config(overrides={"storage": {"s3_region": region}})
    # the servers' own names pass (MinIO, Garage, SeaweedFS take any)
    assert load_config(overrides={"storage": {"s3_region": "garage"}}).storage.s3_region == "garage"


def test_the_bundle_store_follows_storage_artifacts_unless_set():
    cfg = load_config()
    assert cfg.publish.store_uri is None and cfg.bundle_store_uri == "./var/artifacts/serving"
    moved = load_config(overrides=parse_overrides(["storage.artifacts=./elsewhere/"]))
    assert moved.bundle_store_uri == "./elsewhere/serving"
    on_s3 = load_config(overrides=parse_overrides(["storage.artifacts=s3://lake/pinrec"]))
    assert on_s3.bundle_store_uri == "s3://lake/pinrec/serving"  # never left behind on local disk
    assert replace(cfg, storage={"artifacts": "/data/a"}).bundle_store_uri == "/data/a/serving"  # derived on read
    pinned = load_config(overrides=parse_overrides(["storage.artifacts=/data/a", "publish.store_uri=s3://b/serving"]))
    assert pinned.bundle_store_uri == "s3://b/serving"


def test_publishing_without_a_store_is_refused(tmp_path):
    from pinrec.export.build.publish import BundleFiles, PublishConfig, publish_bundle

    paths = []
    for name in ("index.json", "shard_000.faiss", "ranker.onnx", "encoder.json", "pins.parquet"):
        (tmp_path / name).write_bytes(b"x")
        paths.append(str(tmp_path / name))
    files = BundleFiles(paths[0], (paths[1],), *paths[2:])
    with pytest.raises(ValueError, match="publish.store_uri is unset"):
        publish_bundle(PublishConfig(), files, metrics=None, lineage=None)


def test_mlflow_artifacts_is_an_s3_uri_or_a_local_path_and_a_typo_fails_loudly():
    assert load_config().storage.mlflow_artifacts is None
    cfg = load_config(overrides=parse_overrides(["storage.mlflow_artifacts=s3a://lake/mlflow"]))
    assert cfg.storage.mlflow_artifacts == "s3a://lake/mlflow"
    for bad in ("gs://lake/mlflow", "s3://", "s3a:///no-bucket", " "):
        with pytest.raises(ConfigError, match=r"storage.mlflow_artifacts must be s3://bucket\[/prefix\], "
                                              r"s3a://bucket\[/prefix\], a local path or file://, or null; got "
                                              + re.escape(repr(bad))):
            load_config(overrides={"storage": {"mlflow_artifacts": bad}})


def test_the_cluster_example_points_every_location_spark_and_mlflow_at_shared_services():
    from pinrec.jobs.io.spark import s3a_conf, session_conf
    from tests.support.repo import REPO

    cfg = load_config(REPO / "config" / "cluster.example.yaml", env={})
    locations = [cfg.storage.location(n) for n in ("landing", "warehouse", "artifacts")]
    assert all(loc.is_s3 and loc.spark.startswith("s3a://my-lake/") for loc in locations)
    assert cfg.bundle_store_uri == "s3a://my-lake/pinrec/artifacts/serving"
    s3 = cfg.storage.spark_s3
    assert s3 is not None and s3.endpoint_url == "https://s3.internal.example:9000"
    hadoop = s3a_conf(s3)
    assert hadoop["fs.s3a.endpoint"] == s3.endpoint_url and hadoop["fs.s3a.path.style.access"] == "true"
    assert hadoop["fs.s3a.connection.ssl.enabled"] == "true" and "fs.s3a.secret.key" not in hadoop
    conf = session_conf(cfg.spark, s3a=True)
    assert conf["spark.master"].startswith("spark://") and conf["spark.driver.bindAddress"] == "0.0.0.0"
    assert any("hadoop-aws" in jar for jar in conf["spark.jars"].split(","))
    assert cfg.storage.mlflow_tracking_uri.startswith("http://")


def test_storage_locations_accept_local_and_s3_only():
    assert StorageConfig(landing="s3://b/p").location("landing").spark == "s3a://b/p"
    assert StorageConfig().spark_s3 is None  # all local: no s3a jars
    for bad, what in (("gs://b/p", "scheme 'gs' is not supported"), ("s3://", "needs a bucket"),
                      ("s3://key:secret@b/p", "credentials in a storage URI")):
        with pytest.raises(ConfigError, match=f"storage.landing: .*{what}"):
            StorageConfig(landing=bad)


@pytest.mark.parametrize("name", ["pinrec.example.yaml", "cluster.example.yaml", "movielens-100k.yaml"])
def test_every_yaml_under_config_loads_with_set_overrides_on_top(name):
    from tests.support.repo import REPO

    assert sorted(p.name for p in (REPO / "config").glob("*.yaml")) == sorted(
        ["pinrec.example.yaml", "cluster.example.yaml", "movielens-100k.yaml"])  # a new file joins this list
    cfg = load_config(REPO / "config" / name, parse_overrides(["ranker_train.lr=0.01", "index.metric=l2",
                                                               "spark.extra={spark.executor.instances: 2}"]), env={})
    assert (cfg.ranker_train.lr, cfg.index.metric) == (0.01, "l2")
    assert cfg.spark.extra["spark.executor.instances"] == "2"  # merged into the file's extra, as a string


def test_unknown_keys_suggest_the_nearest_valid_one_at_every_level(tmp_path):
    (tmp_path / "c.yaml").write_text("training:\n  maturty_s: 3600\n")
    with pytest.raises(ConfigError, match=r"^unknown key `training.maturty_s`; did you mean `training.maturity_s`\?$"):
        load_config(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match=r"^unknown key `trainig`; did you mean `training`\?$"):
        load_config(overrides=parse_overrides(["trainig.maturity_s=3600"]))
    with pytest.raises(ConfigError, match=r"^unknown key `ranker_train.zzz`; valid keys: epochs, batch_size, lr, "):
        load_config(overrides=parse_overrides(["ranker_train.zzz=1"]))
    # every problem at once, each naming its key, never pydantic's own error
    with pytest.raises(ConfigError) as caught:
        load_config(overrides=parse_overrides(["ranker_train.lr=0", "ranker_train.loss=hinge", "redis.nope=1"]))
    assert str(caught.value) == ("ranker_train.lr must be > 0, got 0; ranker_train.loss must be one of 'bce' or "
                                 "'focal', got 'hinge'; unknown key `redis.nope`; valid keys: url, key_prefix, "
                                 "batch_size, timeout_s, retry_after_s")
    assert not isinstance(caught.value, pydantic.ValidationError) and caught.value.__cause__ is None


def test_sections_are_frozen_and_replace_revalidates():
    from pinrec.jobs.config import SyntheticConfig
    from pinrec.models.config import RankerTrainConfig

    cfg = load_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.ranker_train.lr = 1.0
    assert dataclasses.replace(cfg.ranker_train, lr=0.5).lr == 0.5
    with pytest.raises(ConfigError, match=r"^ranker_train.lr must be > 0, got -1$"):
        dataclasses.replace(cfg.ranker_train, lr=-1)
    with pytest.raises(ConfigError, match=r"^ranker_train.epochs must be >= 1, got 0$"):
        RankerTrainConfig(epochs=0)  # a section built in code fails as clearly as a YAML file
    with pytest.raises(ConfigError, match=r"^unknown key `synthetic.dayz`; did you mean `synthetic.days`\?$"):
        replace(cfg, synthetic={"dayz": 1})
    with pytest.raises(ConfigError, match=r"^unknown key `synthetic.dayz`; did you mean `synthetic.days`\?$"):
        replace(cfg.synthetic, dayz=1)
    assert replace(cfg.synthetic, days=2) == SyntheticConfig(days=2)
    assert dataclasses.asdict(cfg)["synthetic"]["start_date"] == dt.date(2026, 1, 5)


def test_yaml_values_keep_their_old_coercions(tmp_path):
    (tmp_path / "c.yaml").write_text("publish:\n  name: 2024\nsynthetic:\n  start_date: '2025-03-01'\n"
                                     "ranker:\n  deep_channels: [32, 16]\nranker_train:\n  lr: 1e-3\n"
                                     "storage:\n  s3_region: null\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.publish.name == "2024" and cfg.synthetic.start_date == dt.date(2025, 3, 1)
    assert cfg.ranker.deep_channels == (32, 16) and cfg.ranker_train.lr == 0.001 and cfg.storage.s3_region is None
    with pytest.raises(ConfigError, match=r"^ingest.optional_tables: expected a list, got 'users'$"):
        load_config(overrides={"ingest": {"optional_tables": "users"}})


def test_the_serving_configs_import_without_pydantic():
    """The base install has no pydantic: the serving sections stay stdlib dataclasses."""
    import subprocess
    import sys

    code = ("import sys; import pinrec.export.serving.recommend, pinrec.export.serving.redis_format, "
            "pinrec.export.index_choice; assert not [m for m in sys.modules if m.startswith('pydantic')], 'pydantic'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_index_is_built_for_as_many_neighbours_as_serving_asks_of_it():
    cfg = load_config(overrides=parse_overrides(["recommend.ann_candidates=300", "recommend.two_tower_candidates=200"]))
    assert (cfg.index.k, cfg.index_for("ann").k, cfg.index_for("two_tower").k) == (10, 300, 200)
    assert cfg.index_for("ann").shards == cfg.index.shards  # only k changes
    big = load_config(overrides=parse_overrides(["index.k=1000"]))
    assert big.index_for("ann").k == 1000  # never lowered
    with pytest.raises(ValueError, match="channel must be one of"):
        cfg.index_for("cf")


def test_a_section_given_as_a_value_is_refused_even_with_the_environment(tmp_path):
    """storage: <a URI> was replaced by the defaults (local ./var) once main()'s environment was merged in."""
    (tmp_path / "c.yaml").write_text("storage: s3://bucket/pinrec\n")
    with pytest.raises(ConfigError, match=r"storage must be a mapping of keys, got 's3://bucket/pinrec'"):
        load_config(tmp_path / "c.yaml", env={})
    with pytest.raises(ConfigError, match=r"storage must be a mapping of keys, got 's3://bucket/pinrec'"):
        load_config(tmp_path / "c.yaml", parse_overrides(["storage.landing=x"]))


def test_a_config_path_that_is_a_folder_or_not_text_and_an_empty_override_key_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"config file .* is a folder; give the YAML file in it"):
        load_config(tmp_path)
    (tmp_path / "latin.yaml").write_bytes("seed: 3 # caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"config file .*latin.yaml is not UTF-8 text"):
        load_config(tmp_path / "latin.yaml")
    for pair in ("=3", ".seed=3", "synthetic..days=2"):
        with pytest.raises(ConfigError, match=r"has an empty part; write section.key=value"):
            parse_overrides([pair])


def test_storage_uris_that_parsers_and_hadoop_read_differently_are_refused_naming_the_field():
    for name, bad, what in (("warehouse", "s3://lake/wh#2", "holds '#'"), ("landing", "s3a://lake/l?x", "holds '?'"),
                            ("artifacts", "file:///tmp/a%20b", "holds '%'"),
                            ("landing", "s3://lake//landing", "empty, '.' or '..' path segment"),
                            ("mlflow_artifacts", "s3://lake/a/../m", "empty, '.' or '..' path segment")):
        with pytest.raises(ConfigError, match=f"^storage.{name}: storage URI {re.escape(repr(bad))} .*{what}"):
            StorageConfig(**{name: bad})
    assert StorageConfig(warehouse="/data/lake#2").location("warehouse").path == "/data/lake#2"  # a local path may


def test_a_cluster_master_with_the_lake_on_local_disk_is_refused_unless_shared():
    with pytest.raises(ConfigError, match=r"^spark.master='spark://h:7077' runs executors on other machines, but "
                                          r"storage.landing='./var/landing' and storage.warehouse='./var/warehouse' "
                                          r"are on this machine's disk: .*storage.shared_local=true"):
        load_config(overrides=parse_overrides(["spark.master=spark://h:7077"]))
    with pytest.raises(ConfigError, match=r"^spark.master='yarn' .* but storage.warehouse='/data/wh' is on"):
        load_config(overrides=parse_overrides(["spark.master=yarn", "storage.landing=s3://lake/l",
                                               "storage.warehouse=/data/wh"]))
    shared = load_config(overrides=parse_overrides(["spark.master=spark://h:7077", "storage.shared_local=true"]))
    assert shared.storage.shared_local and shared.spark.master == "spark://h:7077"
    on_s3 = load_config(overrides=parse_overrides(["spark.master=spark://h:7077", "storage.landing=s3://lake/l",
                                                   "storage.warehouse=s3://lake/w"]))  # artifacts: the driver's
    assert on_s3.storage.artifacts == "./var/artifacts"
    assert load_config(overrides=parse_overrides(["spark.master=local-cluster[2,1,1024]"])).storage.shared_local is False



def test_a_master_or_memory_size_spark_cannot_read_is_refused_at_load():
    for bad in ("bogus", "localhost", "local[abc]", "local[0]", "3"):
        with pytest.raises(ConfigError, match=rf"^spark.master must be local, local\[N\], .* got {re.escape(repr(bad))}$"):
            load_config(overrides=parse_overrides([f"spark.master={bad}", "storage.shared_local=true"]))
    for key, bad in (("driver_memory", "lots"), ("driver_memory", "1.5g"), ("driver_memory", "0g"),
                     ("executor_memory", "-1")):
        with pytest.raises(ConfigError, match=rf"^spark.{key} must be a memory size > 0 .* got {re.escape(repr(bad))}$"):
            load_config(overrides=parse_overrides([f"spark.{key}={bad}"]))
    spark = load_config(overrides=parse_overrides(["spark.master=local[2,3]", "spark.driver_memory=512M",
                                                   "spark.executor_memory=2"])).spark
    assert (spark.master, spark.partitions, spark.driver_memory, spark.executor_memory) == ("local[2,3]", 2, "512M", "2")


def test_a_negative_seed_is_refused_at_load_not_by_numpy():
    for key in ("seed", "cf.seed", "retrieval_eval.seed", "ranker_train.seed", "index.seed"):
        with pytest.raises(ConfigError, match=rf"^{re.escape(key)} must be >= 0, got -1$"):
            load_config(overrides=parse_overrides([f"{key}=-1"]))
    assert load_config(overrides=parse_overrides(["seed=0"])).seed == 0

def test_an_s3_endpoint_with_a_path_or_credentials_is_refused_without_repeating_the_password():
    for bad, what in (("http://minio:9000/s3", "a path, query or fragment is refused"),
                      ("https://s3.internal:9000/?x=1", "a path, query or fragment is refused"),
                      ("http://:9000", "it names no host"), ("http://minio:99999", "its port is not a number"),
                      ("http://admin:hunter2@minio:9000", "credentials \\(user:password@\\) are refused")):
        with pytest.raises(ConfigError, match=r"^storage.s3_endpoint_url \(else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL\) "
                                              rf"must be http\(s\)://host\[:port\], got .*: {what}") as caught:
            load_config(overrides={"storage": {"s3_endpoint_url": bad}})
        assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"got 'http://\*\*\*@minio:9000'"):
        load_config(env={"AWS_ENDPOINT_URL": "http://admin:hunter2@minio:9000"})
    for good in ("http://127.0.0.1:8333", "https://s3.internal.example:9000/", "https://s3.eu-west-3.amazonaws.com"):
        assert StorageConfig(s3_endpoint_url=good).s3_endpoint_url == good


def test_every_name_imports_from_the_facade_as_the_same_object():
    """jobs/config.py was split by section; every name imported from it before stays, the very object its
    home module defines (a section declared twice would be two classes that pydantic tells apart)."""
    import importlib

    import pinrec.jobs.config as facade

    home = {
        "pinrec.jobs.io.storage_config": ("StorageConfig", "s3_options", "LAKE_LOCATIONS", "SPARK_LOCATIONS"),
        "pinrec.jobs.io.spark_config": ("SparkConfig",),
        "pinrec.jobs.ingest.config": ("SyntheticConfig", "DatasetConfig", "IngestConfig"),
        "pinrec.jobs.features.config": ("FeatureConfig", "TrainingSetConfig", "TRAINING_LABELS"),
        "pinrec.jobs.orchestration.config": ("StepCacheConfig", "PIPELINE_STEPS"),
        "pinrec.jobs.config_root": ("PinrecConfig",),
        "pinrec.jobs.config_load": ("load_config", "parse_overrides", "replace"),
        "pinrec.schemas.config_base": ("ConfigError",),
        "pinrec.models.config": ("RankerTrainConfig",),
    }
    assert sorted(facade.__all__) == sorted(
        {"LAKE_LOCATIONS", "ConfigError", "DatasetConfig", "FeatureConfig", "IngestConfig", "PinrecConfig",
         "SparkConfig", "StorageConfig", "SyntheticConfig", "TrainingSetConfig", "load_config", "parse_overrides",
         "replace", "s3_options"})  # __all__ as before the split
    for module_name, names in home.items():
        module = importlib.import_module(module_name)
        for name in names:
            assert getattr(facade, name) is module.__dict__[name], name
            if callable(module.__dict__[name]):
                assert module.__dict__[name].__module__ == module_name, name
    for f in dataclasses.fields(facade.PinrecConfig):  # every section is importable from the facade by its class name
        cls = type(getattr(facade.PinrecConfig(), f.name))
        assert f.name == "seed" or getattr(facade, cls.__name__) is cls, f.name
    assert facade.PIPELINE_STEPS[0] == "landing" and facade.TRAINING_LABELS == ("closeup", "save")
