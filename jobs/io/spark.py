"""The one place a SparkSession is built, and the TableSpec -> Spark schema mapping.

The session loads the Delta jars resolved at set-up (:mod:`pinrec.jobs.io.jars`) from disk, so it starts
without network access, runs in UTC and has the UI off; with a ``local`` master it binds to
127.0.0.1, with a cluster master the driver's addresses come from ``spark.driver_host`` /
``driver_bind_address`` (:func:`session_conf`).

With a cluster master (anything but ``local``), the session ships pinrec's code to the executors
as a ``--py-files``-style zip (:mod:`pinrec.jobs.io.package`), as spark-submit does: a cluster
that shares nothing with the driver but the object store runs the same jobs.

A pipeline job (the CLI, the DAG tasks, the demo) gets its session from :func:`job_spark`, which also
checks the storage settings against the master the session really runs on.

Under ``spark-submit`` (a DAG task sent to a cluster, :mod:`pinrec.jobs.orchestration.spark_submit`) the driver JVM is
already running: its master, application name, driver settings and classpath are what
spark-submit was given (:func:`submit_conf`), and :func:`get_spark` only adds the session's SQL
settings (Delta, UTC, partitions, adaptive execution, ``spark.extra``).
"""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pinrec.export.serving.store import S3Options
from pinrec.jobs.config import LAKE_LOCATIONS, PinrecConfig, SparkConfig, s3_options
from pinrec.schemas.tables import TableSpec

from .jars import JarsMissingError, jar_paths
from .lake import Location, check_buckets
from .package import package_zip

LOG4J_CONFIG = Path(__file__).resolve().parents[2] / "config" / "log4j2.properties"
ARROW_BATCH_ROWS = 100_000  # spark.sql.execution.arrow.maxRecordsPerBatch (spark.extra overrides it)
CODEGEN_CACHE_ENTRIES = 2000  # spark.sql.codegen.cache.maxEntries (static: fixed when the session starts)

_SPARK_TYPES = {
    "int32": "int",
    "int64": "bigint",
    "float32": "float",
    "float64": "double",
    "bool": "boolean",
    "string": "string",
    "timestamp": "timestamp",
    "date": "date",
    "array<float32>": "array<float>",
    "array<int64>": "array<bigint>",
}


def spark_type(dtype: str):
    from pyspark.sql.types import _parse_datatype_string

    return _parse_datatype_string(_SPARK_TYPES[dtype])


def spark_schema(spec: TableSpec, with_partition: bool = False):
    """The StructType of ``spec`` (all fields nullable: nullability is checked by validation,
    so that a null becomes a quarantined row rather than a reader failure)."""
    from pyspark.sql.types import DateType, StructField, StructType

    fields = [StructField(c.name, spark_type(c.dtype), True) for c in spec.columns]
    if with_partition:
        fields.append(StructField(spec.partition, DateType(), True))
    return StructType(fields)


def under_spark_submit() -> bool:
    """Whether this Python process is an application launched by ``spark-submit`` (whose JVM,
    already started with the submitted master and conf, hands pyspark its gateway port)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def driver_java_options(cfg: SparkConfig) -> str:
    """The driver JVM's options: pinrec's log4j settings and ``cfg.quick_jvm_options``."""
    options = [f"-Dlog4j2.configurationFile=file:{LOG4J_CONFIG}"] if LOG4J_CONFIG.is_file() else []
    return " ".join([*options, *cfg.quick_jvm_options])


def submit_conf(cfg: SparkConfig, s3a: bool = False, cluster_mode: bool = False) -> dict[str, str]:
    """The settings ``spark-submit`` must be given to run a pinrec job as :func:`get_spark` would
    locally: the Delta jars (resolved from ``cfg.jars_dir`` on the submitting machine; spark-submit
    puts them on the driver's classpath and ships them to the executors), the driver's memory and
    JVM options (log4j, ``quick_jvm``: fixed once its JVM starts), the driver's addresses and the executors' size when
    set, and this environment's Python for driver and executors (``spark.pyspark.python`` in
    ``cfg.extra`` overrides it for the executors). ``cfg.master`` is not used: the cluster comes
    from the Spark connection.

    ``cluster_mode`` (spark-submit's ``--deploy-mode cluster``: the driver runs on a cluster node, not
    on the submitting machine): the driver's Python is ``spark.pyspark.driver.python`` of
    ``cfg.extra``, else the executors' (this machine's interpreter path means nothing on that node),
    and ``spark.driver_host`` / ``driver_bind_address`` (this machine's addresses) are not given:
    the cluster manager places the driver."""
    python = cfg.extra.get("spark.pyspark.python", sys.executable)
    conf = {
        "spark.jars": ",".join(jar_paths(cfg.jars_dir, s3a)),
        "spark.driver.memory": cfg.driver_memory,
        "spark.pyspark.python": python,
        "spark.pyspark.driver.python": cfg.extra.get("spark.pyspark.driver.python", python) if cluster_mode
        else sys.executable,
    }
    addresses = () if cluster_mode else (("spark.driver.host", cfg.driver_host),
                                         ("spark.driver.bindAddress", cfg.driver_bind_address))
    for key, value in (*addresses, ("spark.executor.memory", cfg.executor_memory),
                       ("spark.executor.cores", cfg.executor_cores)):
        if value is not None:
            conf[key] = str(value)
    if options := driver_java_options(cfg):
        conf["spark.driver.extraJavaOptions"] = options
    return conf


def session_conf(cfg: SparkConfig, s3a: bool = False) -> dict[str, str]:
    """The settings a session started here (not under spark-submit) is built with, before the SQL
    settings and ``cfg.extra``: master, name, jars (the s3a ones when ``s3a``), driver memory and
    addresses, executor size."""
    local = cfg.master.startswith("local")
    conf = {
        "spark.master": cfg.master,
        "spark.app.name": cfg.app_name,
        "spark.jars": ",".join(jar_paths(cfg.jars_dir, s3a)),
        "spark.driver.memory": cfg.driver_memory,
        "spark.ui.enabled": "false",
    }
    for key, value, local_default in (("spark.driver.host", cfg.driver_host, "127.0.0.1"),
                                      ("spark.driver.bindAddress", cfg.driver_bind_address, "127.0.0.1"),
                                      ("spark.executor.memory", cfg.executor_memory, None),
                                      ("spark.executor.cores", cfg.executor_cores, None)):
        value = value if value is not None else (local_default if local else None)
        if value is not None:
            conf[key] = str(value)
    if options := driver_java_options(cfg):
        conf["spark.driver.extraJavaOptions"] = options
    return conf


#: the s3a settings that carry credentials: set only on a running session's Hadoop configuration
#: (:func:`configure_s3a`), never given to the session builder, which PySpark turns into
#: ``--conf key=value`` arguments of the JVM it launches (readable by anyone on the machine in ``ps``)
S3A_CREDENTIALS = ("fs.s3a.access.key", "fs.s3a.secret.key", "fs.s3a.aws.credentials.provider")


#: s3a's connection timeout and retries (hadoop-aws 3.5.0's names). Its defaults (30 s to connect, 5 SDK
#: attempts inside each of 7 s3a retries) let a black-holed endpoint stall a job for many minutes; throttling
#: (``fs.s3a.retry.throttle.*``) keeps its own, longer budget
S3A_PATIENCE = {"fs.s3a.connection.establish.timeout": "5s", "fs.s3a.attempts.maximum": "2",
                "fs.s3a.retry.limit": "3"}


def s3a_conf(s3: S3Options) -> dict[str, str]:
    """Hadoop's s3a settings (``fs.s3a.*``, without the ``spark.hadoop.`` prefix) for the S3
    server of ``s3``: the same endpoint and region the bundle store and MLflow use. ``s3://`` is
    mapped to s3a as well (Hadoop has no ``s3`` filesystem of its own). A custom endpoint gets
    path-style access (MinIO, SeaweedFS, Ceph serve buckets as paths) and plain HTTP when its URL
    says ``http://``. Keys are set only when ``s3`` carries them (:data:`S3A_CREDENTIALS`: only ever
    through :func:`configure_s3a`); otherwise s3a's own chain reads
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (or an instance role) on each JVM. Spark
    redacts ``*.secret.key`` and ``*.access.key`` in its UI, event log and error messages.
    :data:`S3A_PATIENCE` bounds how long an unreachable server stalls a job (``spark.extra``'s
    ``spark.hadoop.fs.s3a.*`` settings win)."""
    conf = {"fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem", "fs.s3a.endpoint.region": s3.region,
            **S3A_PATIENCE}
    if s3.endpoint_url:
        conf |= {"fs.s3a.endpoint": s3.endpoint_url, "fs.s3a.path.style.access": "true",
                 "fs.s3a.connection.ssl.enabled": str(s3.endpoint_url.startswith("https://")).lower()}
    if s3.access_key is not None:
        conf |= {"fs.s3a.access.key": s3.access_key, "fs.s3a.secret.key": s3.secret_key,
                 "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"}
    return conf


def configure_s3a(spark, s3: S3Options, extra: Mapping[str, str] | None = None) -> None:
    """Apply :func:`s3a_conf` to a running session (Hadoop conf of the driver, shipped with each
    job to the executors), e.g. one that a test or a notebook started before the S3 server was
    known, and every session :func:`get_spark` starts (the only way keys reach Spark); then the
    ``spark.hadoop.*`` settings of ``extra`` (``spark.extra``: applied last, here too). S3
    filesystems already opened keep their settings: call this before the first ``s3a://`` access."""
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in s3a_conf(s3).items():
        hadoop.set(key, value)
    for key, value in (extra or {}).items():
        if key.startswith("spark.hadoop."):
            hadoop.set(key[len("spark.hadoop."):], value)


def builder_conf(cfg: SparkConfig, s3: S3Options | None = None, submitted: bool = False) -> dict[str, str]:
    """Every setting :func:`get_spark` gives the session builder, in order (``cfg.extra`` last):
    :func:`session_conf` (unless ``submitted``), Delta and the SQL settings, and the s3a settings of
    ``s3`` as ``spark.hadoop.*`` without :data:`S3A_CREDENTIALS`: PySpark passes the builder's settings
    to the JVM it launches as ``--conf key=value`` arguments, which ``ps`` shows to every user."""
    conf = {} if submitted else session_conf(cfg, s3a=s3 is not None)
    conf |= {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(cfg.partitions),
        "spark.sql.adaptive.enabled": str(cfg.adaptive_execution).lower(),
        # Delta rebuilds a table's snapshot with this many tasks (default 50): on a small
        # local session that alone costs seconds per table.
        "spark.databricks.delta.snapshotPartitions": str(cfg.partitions),
        "spark.ui.showConsoleProgress": "false",
        # Arrow batches of 100k rows instead of 10k for mapInArrow / toPandas: the broadcast point-in-time
        # join (one mapInArrow over the spine) ran 10M rows in 16-19 s instead of 23 s (benchmarks/pit_join.py)
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(ARROW_BATCH_ROWS),
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # Spark keeps 100 compiled generated classes by default; a demo compiles 1,400-1,800 of them and meets
        # many again (the same projections over another table or day): 2000 cut its compiles to 1,100-1,250 and
        # a cold ingest by ~7 % (docs/benchmarks.md). A class is a few kB.
        "spark.sql.codegen.cache.maxEntries": str(CODEGEN_CACHE_ENTRIES),
        # pinrec keeps no managed tables; Spark's default would leave spark-warehouse/ in the cwd
        "spark.sql.warehouse.dir": sql_scratch_dir(),
    }
    for key, value in (s3a_conf(s3) if s3 is not None else {}).items():
        if key not in S3A_CREDENTIALS:
            conf[f"spark.hadoop.{key}"] = value
    return conf | cfg.extra


def get_spark(cfg: SparkConfig, s3: S3Options | None = None):
    """Build (or reuse) the SparkSession for ``cfg``, with Delta Lake enabled; with ``s3`` (the
    lake or artifacts are on S3, :attr:`~pinrec.jobs.config.StorageConfig.spark_s3`) also the s3a jars, talking
    to that S3 server (:func:`s3a_conf`). None: no S3 (the session starts ~2 s faster).

    Locally the session runs on ``cfg.master``; under spark-submit (:func:`under_spark_submit`)
    on the master, name and driver settings spark-submit was given, which must include the Delta
    jars (:func:`submit_conf`)."""
    submitted = under_spark_submit()
    if cfg.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Workers must use this interpreter (pandas, pyarrow live here), activated or not.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in builder_conf(cfg, s3, submitted).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    if not submitted and not cfg.master.startswith("local"):
        _ship_package(spark)
    if s3 is not None:  # the keys (never on the JVM's command line); a reused session ignores the builder's
        configure_s3a(spark, s3, cfg.extra)
    if submitted:
        _require_delta(spark)
    return spark


def job_spark(cfg: PinrecConfig, spark_cfg: SparkConfig | None = None):
    """The Spark session of a pipeline job (the CLI's commands, the DAG tasks, the demo). First every
    S3 bucket of ``cfg.storage`` is checked (:func:`~pinrec.jobs.io.lake.check_buckets`: a missing
    bucket, refused keys or an unreachable endpoint is a :class:`~pinrec.jobs.io.lake.LakeUnreachableError`
    naming the setting, in seconds, before the JVM starts); then :func:`get_spark` of ``spark_cfg``
    (default ``cfg.spark``) with the S3 settings of ``cfg.storage``, checked against the master it
    really runs on (spark-submit's, or ``spark.extra``'s): a cluster master with ``storage.landing`` /
    ``warehouse`` on local disk is a ConfigError unless ``storage.shared_local``
    (:meth:`~pinrec.jobs.config.StorageConfig.check_master`)."""
    storage = cfg.storage
    named = {f"storage.{n}": storage.location(n) for n in LAKE_LOCATIONS}
    if storage.mlflow_artifacts is not None:
        named["storage.mlflow_artifacts"] = Location(storage.mlflow_artifacts, s3_options(storage))
    check_buckets(named)
    spark = get_spark(spark_cfg or cfg.spark, cfg.storage.spark_s3)
    master = spark.sparkContext.master
    cfg.storage.check_master(master, "spark-submit's --master" if under_spark_submit()
                             else "the Spark session's master (spark.master or spark.extra)")
    return spark


_SQL_SCRATCH: list[str] = []


def sql_scratch_dir() -> str:
    """This process's ``spark.sql.warehouse.dir``: an empty temporary folder, removed when the
    process exits (``spark.extra`` may set another)."""
    if not _SQL_SCRATCH:
        _SQL_SCRATCH.append(tempfile.mkdtemp(prefix="pinrec-spark-sql-"))
        atexit.register(shutil.rmtree, _SQL_SCRATCH[0], ignore_errors=True)
    return _SQL_SCRATCH[0]


_SHIPPED: set[str] = set()  # application ids that already have pinrec's zip


def _ship_package(spark) -> None:
    """Give a cluster's executors pinrec's code (:mod:`pinrec.jobs.io.package`), once per
    application: they may not see this machine's installation. The zip lives in a temporary
    folder removed when this process exits (Spark has copied it by then)."""
    app = spark.sparkContext.applicationId
    if app in _SHIPPED:
        return
    folder = Path(tempfile.mkdtemp(prefix="pinrec-pyfiles-"))
    atexit.register(shutil.rmtree, folder, True)
    spark.sparkContext.addPyFile(str(package_zip(folder)))
    _SHIPPED.add(app)


def _require_delta(spark) -> None:
    """Under spark-submit the Delta jars cannot be added once the driver runs: fail clearly."""
    try:
        spark._jvm.org.apache.spark.util.Utils.classForName("io.delta.sql.DeltaSparkSessionExtension", True, False)
    except Exception as e:  # py4j wraps the JVM's ClassNotFoundException
        raise JarsMissingError(
            "running under spark-submit without the Delta jars on the driver's classpath: submit with "
            "--jars (or --conf spark.jars=) listing the jars of spark.jars_dir, see pinrec.jobs.io.spark.submit_conf") from e
