"""The settings a local or cluster session is built with (no JVM started here)."""
from __future__ import annotations

import os

import pytest

from pinrec.jobs.config import ConfigError, SparkConfig, load_config, parse_overrides
from pinrec.jobs.io.spark import session_conf
from tests.support.repo import REPO

JARS = str(REPO / "var" / "jars")


def test_a_local_master_binds_the_driver_to_loopback():
    conf = session_conf(SparkConfig(master="local[2]", jars_dir=JARS))
    assert conf["spark.master"] == "local[2]" and conf["spark.app.name"] == "pinrec"
    assert conf["spark.driver.host"] == conf["spark.driver.bindAddress"] == "127.0.0.1"
    assert "delta-spark" in conf["spark.jars"]
    assert "spark.executor.memory" not in conf and "spark.executor.cores" not in conf


def test_a_cluster_master_takes_the_driver_addresses_and_executor_size_from_config():
    cfg = load_config(overrides=parse_overrides([
        "spark.master=spark://10.1.2.3:7077", "spark.driver_host=driver.example", "spark.driver_bind_address=0.0.0.0",
        "storage.landing=s3://lake/landing", "storage.warehouse=s3://lake/warehouse",
        "spark.executor_memory=4g", "spark.executor_cores=2", f"spark.jars_dir={JARS}"]))
    conf = session_conf(cfg.spark)
    assert conf["spark.master"] == "spark://10.1.2.3:7077"
    assert (conf["spark.driver.host"], conf["spark.driver.bindAddress"]) == ("driver.example", "0.0.0.0")
    assert (conf["spark.executor.memory"], conf["spark.executor.cores"]) == ("4g", "2")


def test_a_cluster_master_without_addresses_leaves_them_to_spark():
    conf = session_conf(SparkConfig(master="spark://10.1.2.3:7077", jars_dir=JARS))
    assert "spark.driver.host" not in conf and "spark.driver.bindAddress" not in conf  # no loopback forced


def test_executor_cores_must_be_positive():
    with pytest.raises(ConfigError, match="spark.executor_cores must be >= 1"):
        load_config(overrides=parse_overrides(["spark.executor_cores=0"]))


def test_spark_submit_gets_the_cluster_settings_that_are_set():
    from pinrec.jobs.io.spark import submit_conf

    plain = submit_conf(SparkConfig(master="spark://10.1.2.3:7077", jars_dir=JARS))
    assert not {"spark.driver.host", "spark.driver.bindAddress", "spark.executor.memory",
                "spark.executor.cores"} & set(plain)  # spark-submit and the cluster decide
    sized = submit_conf(SparkConfig(driver_host="driver.example", executor_memory="4g", executor_cores=2,
                                    jars_dir=JARS))
    assert (sized["spark.driver.host"], sized["spark.executor.memory"], sized["spark.executor.cores"]) == \
        ("driver.example", "4g", "2")


QUICK = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=256m"


@pytest.mark.parametrize(("master", "quick_jvm", "quick"), [
    ("local[2]", None, False), ("local[2]", True, True), ("spark://10.1.2.3:7077", None, False),
    ("spark://10.1.2.3:7077", True, True)])
def test_the_driver_jvm_is_tuned_for_short_runs_only_when_asked(master, quick_jvm, quick):
    from pinrec.jobs.io.spark import LOG4J_CONFIG, submit_conf

    cfg = SparkConfig(master=master, quick_jvm=quick_jvm, jars_dir=JARS)
    for conf in (session_conf(cfg), submit_conf(cfg)):
        options = conf["spark.driver.extraJavaOptions"]
        assert options.startswith(f"-Dlog4j2.configurationFile=file:{LOG4J_CONFIG}")  # log4j's kept either way
        assert options.endswith(QUICK) == quick and ("TieredStopAtLevel" in options) == quick


def test_this_java_takes_the_quick_options_with_a_code_cache_c1_only_does_not_outgrow():
    """The options start a JVM (a typo would stop every demo at its first line), and they leave C1 a
    256 MB code cache: its default with C1 only is 48 MB, which a demo's Spark + Delta code outgrew
    (compiled methods flushed and compiled again, docs/benchmarks.md)."""
    import shutil
    import subprocess

    java = shutil.which("java")
    if java is None:
        pytest.skip("no java on PATH")

    def flags(*options: str) -> dict[str, str]:
        out = subprocess.run([java, *options, "-XX:+PrintFlagsFinal", "-version"], capture_output=True,
                             text=True, check=True).stdout
        return {f[1]: f[3] for f in (line.split() for line in out.splitlines()) if len(f) >= 4 and f[2] == "="}

    quick = flags(*QUICK.split())
    assert int(quick["ReservedCodeCacheSize"]) == 256 * 2**20
    assert quick["TieredStopAtLevel"] == "1" and quick["UseSerialGC"] == "true"
    assert int(flags("-XX:TieredStopAtLevel=1")["ReservedCodeCacheSize"]) < 256 * 2**20  # what it raises


def test_the_demo_turns_the_quick_jvm_on_for_a_local_master_unless_set():
    from pinrec.jobs.orchestration.demo import demo_spark

    assert demo_spark(SparkConfig(master="local[2]")).quick_jvm_options == tuple(QUICK.split())
    assert demo_spark(SparkConfig(master="local[2]", quick_jvm=False)).quick_jvm_options == ()
    assert demo_spark(SparkConfig(master="spark://10.1.2.3:7077")).quick_jvm_options == ()


@pytest.mark.spark
def test_the_test_sessions_long_lived_jvm_keeps_the_c2_compiler(spark):
    arguments = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()
    assert not set(QUICK.split()) & {str(a) for a in arguments}


@pytest.mark.spark
def test_the_session_keeps_spark_sql_scratch_out_of_the_working_directory(spark):
    import os
    import tempfile

    default = next(db for db in spark.catalog.listDatabases() if db.name == "default")  # creates the folder
    location = default.locationUri.removeprefix("file:")
    assert os.path.realpath(location).startswith(os.path.realpath(tempfile.gettempdir()) + os.sep)
    assert "pinrec-spark-sql-" in location and not location.startswith(os.getcwd())


@pytest.mark.parametrize(("master", "partitions", "adaptive"), [
    ("local", 1, False), ("local[3]", 3, False), ("local[2,4]", 2, False),
    ("spark://10.1.2.3:7077", 8, True), ("yarn", 8, True)])
def test_shuffle_partitions_and_adaptive_execution_follow_the_master(master, partitions, adaptive):
    cfg = SparkConfig(master=master, jars_dir=JARS)
    assert (cfg.partitions, cfg.adaptive_execution) == (partitions, adaptive)
    assert SparkConfig(master="local[*]").partitions == (os.cpu_count() or 1)
    chosen = SparkConfig(master=master, shuffle_partitions=5, adaptive=not adaptive)
    assert (chosen.partitions, chosen.adaptive_execution) == (5, not adaptive)  # set values always win


@pytest.mark.spark
def test_the_session_runs_with_the_resolved_partitions_and_adaptive_setting(spark):
    from pinrec.jobs.io.spark import get_spark

    session = get_spark(SparkConfig(master="local[1]", jars_dir=JARS))  # the test session, reused
    assert session.conf.get("spark.sql.shuffle.partitions") == "1"
    assert session.conf.get("spark.sql.adaptive.enabled") == "false"


@pytest.mark.spark
def test_the_codegen_cache_holds_more_than_sparks_100_classes(spark):
    from pinrec.jobs.io.spark import CODEGEN_CACHE_ENTRIES

    assert spark.conf.get("spark.sql.codegen.cache.maxEntries") == str(CODEGEN_CACHE_ENTRIES) == "2000"


@pytest.mark.spark
def test_arrow_batches_hold_100k_rows_unless_spark_extra_says_otherwise(spark):
    from pinrec.jobs.io.spark import ARROW_BATCH_ROWS, get_spark

    def batch_rows(session) -> list[int]:
        def sizes(batches):
            import pyarrow as pa

            for b in batches:
                yield pa.RecordBatch.from_pydict({"n": [b.num_rows]})

        rows = session.range(0, 250_000, numPartitions=1).mapInArrow(sizes, "n long").collect()
        return sorted((r.n for r in rows), reverse=True)

    assert ARROW_BATCH_ROWS == 100_000
    assert batch_rows(get_spark(SparkConfig(master="local[1]", jars_dir=JARS))) == [100_000, 100_000, 50_000]
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    try:
        session = get_spark(SparkConfig(master="local[1]", jars_dir=JARS, extra={key: "120000"}))
        assert batch_rows(session) == [120_000, 120_000, 10_000]
    finally:
        spark.conf.set(key, str(ARROW_BATCH_ROWS))


def test_a_job_session_on_a_cluster_master_with_local_storage_is_refused(monkeypatch):
    # spark-submit (or spark.extra) may put a session whose config says local[*] on a cluster
    import types

    import pinrec.jobs.io.spark as spark_module

    session = types.SimpleNamespace(sparkContext=types.SimpleNamespace(master="spark://10.1.2.3:7077"))
    monkeypatch.setattr(spark_module, "get_spark", lambda cfg, s3=None: session)
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "1")
    with pytest.raises(ConfigError, match=r"^spark-submit's --master='spark://10.1.2.3:7077' runs executors on other "
                                          r"machines, but storage.landing='./var/landing' and storage.warehouse="):
        spark_module.job_spark(load_config())
    shared = load_config(overrides=parse_overrides(["storage.shared_local=true"]))
    assert spark_module.job_spark(shared) is session
    session.sparkContext.master = "local[2]"
    assert spark_module.job_spark(load_config()) is session


def test_the_session_builder_never_gets_s3_keys():
    # PySpark turns every builder setting into a `--conf k=v` argument of the JVM: visible in ps
    from pinrec.export.serving.store import S3Options
    from pinrec.jobs.io.spark import builder_conf, s3a_conf

    s3 = S3Options("http://127.0.0.1:8333", "eu-west-3", access_key="AKIA-test", secret_key="s3cr3t-value")
    for submitted in (False, True):
        conf = builder_conf(SparkConfig(master="spark://10.1.2.3:7077", jars_dir=JARS), s3, submitted)
        assert not [k for k, v in conf.items() if "s3cr3t-value" in v or "AKIA-test" in v]
        assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:8333"
        assert conf["spark.hadoop.fs.s3a.endpoint.region"] == "eu-west-3"
        assert "spark.hadoop.fs.s3a.aws.credentials.provider" not in conf
    assert s3a_conf(s3)["fs.s3a.secret.key"] == "s3cr3t-value"  # what configure_s3a sets once the JVM runs
    plain = builder_conf(SparkConfig(master="local[2]", jars_dir=JARS, extra={"spark.sql.shuffle.partitions": "3"}))
    assert plain["spark.master"] == "local[2]" and plain["spark.sql.shuffle.partitions"] == "3"  # extra last
    assert not [k for k in plain if k.startswith("spark.hadoop.")]


def test_s3a_gives_up_on_an_unreachable_server_in_seconds_unless_spark_extra_says_otherwise():
    from pinrec.export.serving.store import S3Options
    from pinrec.jobs.io.spark import builder_conf, s3a_conf

    hadoop = s3a_conf(S3Options("http://127.0.0.1:8333"))
    assert (hadoop["fs.s3a.connection.establish.timeout"], hadoop["fs.s3a.attempts.maximum"],
            hadoop["fs.s3a.retry.limit"]) == ("5s", "2", "3")
    mine = builder_conf(SparkConfig(jars_dir=JARS, extra={"spark.hadoop.fs.s3a.retry.limit": "10"}), S3Options())
    assert mine["spark.hadoop.fs.s3a.retry.limit"] == "10"
    assert mine["spark.hadoop.fs.s3a.connection.establish.timeout"] == "5s"


def test_configure_s3a_sets_the_keys_then_spark_extras_hadoop_settings():
    import types

    from pinrec.export.serving.store import S3Options
    from pinrec.jobs.io.spark import configure_s3a

    hadoop: dict[str, str] = {}
    conf = types.SimpleNamespace(set=hadoop.__setitem__)
    spark = types.SimpleNamespace(sparkContext=types.SimpleNamespace(
        _jsc=types.SimpleNamespace(hadoopConfiguration=lambda: conf)))
    configure_s3a(spark, S3Options("http://127.0.0.1:8333", access_key="AKIA-test", secret_key="s3cr3t"),
                  {"spark.hadoop.fs.s3a.retry.limit": "10", "spark.sql.shuffle.partitions": "3"})
    assert hadoop["fs.s3a.secret.key"] == "s3cr3t" and hadoop["fs.s3a.endpoint"] == "http://127.0.0.1:8333"
    assert hadoop["fs.s3a.retry.limit"] == "10" and hadoop["fs.s3a.connection.establish.timeout"] == "5s"
    assert "spark.sql.shuffle.partitions" not in hadoop and "sql.shuffle.partitions" not in hadoop
