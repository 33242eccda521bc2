"""Where the lake, the artifacts and MLflow live (``storage``), and the S3 connection every bundle store of
the jobs opens (:func:`s3_options`); declared by :mod:`pinrec.jobs.config`."""
from __future__ import annotations

from urllib.parse import urlparse

from pydantic import model_validator

from pinrec.export.serving.s3_options import REGION
from pinrec.export.serving.store import S3Options, endpoint_problem, shown_url
from pinrec.jobs.io.lake import Location, check_storage_uri
from pinrec.schemas.config_base import ConfigError, section

__all__ = ["LAKE_LOCATIONS", "SPARK_LOCATIONS", "StorageConfig", "s3_options"]


@section("storage")
class StorageConfig:
    """Where things live. Relative paths are resolved against the working directory.

    ``landing``, ``warehouse`` and ``artifacts`` are each a local path or an ``s3://`` /
    ``s3a://bucket/prefix`` URI (:class:`~pinrec.jobs.io.lake.Location`; Spark always gets
    ``s3a://``); a URI holds no ``?``, ``#`` or ``%``, an S3 one no empty, ``.`` or ``..`` segment
    (:func:`~pinrec.jobs.io.lake.check_storage_uri`). ``s3_endpoint_url`` / ``s3_region``: the one S3 server of all of them, of every
    bundle store a job opens (publish, rollback, prune, recommend, the demo) and of Spark's s3a
    (:func:`pinrec.jobs.io.spark.s3a_conf`); None: the AWS environment's
    (``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``; ``AWS_REGION`` or ``AWS_DEFAULT_REGION``,
    filled in by :func:`load_config` when ``main()`` passes its environment), else AWS itself and
    ``us-east-1``; the endpoint is ``http(s)://host[:port]`` (no path: pyarrow would drop it, s3a and
    boto3 keep it; no ``user:password@``). Keys never live here: the AWS SDKs read them from their own chain.
    ``mlflow_artifacts``: where a new MLflow experiment keeps its run artifacts (``s3://`` / ``s3a://``
    bucket and prefix, a local path or ``file://``), reached with the S3 settings above; None: an
    ``mlartifacts/`` folder beside a SQLite store, a tracking server's own artifact root.
    ``shared_local``: a local ``landing`` or ``warehouse`` is a filesystem every Spark node mounts at the
    same path (NFS, or a cluster on this one machine); false: a Spark master that is not ``local``
    (``spark.master``, or spark-submit's) is refused while either is a local path, since executors
    would write their Parquet files to their own disks and the Delta log to the driver's
    (:meth:`check_master`).
    """

    landing: str = "./var/landing"
    warehouse: str = "./var/warehouse"
    artifacts: str = "./var/artifacts"
    mlflow_tracking_uri: str = "sqlite:///var/mlflow.db"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    mlflow_artifacts: str | None = None
    shared_local: bool = False

    @model_validator(mode="after")
    def _check(self) -> StorageConfig:
        if self.s3_endpoint_url is not None and urlparse(self.s3_endpoint_url).scheme not in ("http", "https"):
            raise ConfigError(f"storage.s3_endpoint_url (else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL) must start "
                              f"with http:// or https://, got {self.s3_endpoint_url!r}")
        if self.s3_endpoint_url is not None and (problem := endpoint_problem(self.s3_endpoint_url)):
            raise ConfigError(f"storage.s3_endpoint_url (else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL) must be "
                              f"http(s)://host[:port], got {shown_url(self.s3_endpoint_url)!r}: {problem}")
        if self.s3_region is not None and not REGION.fullmatch(self.s3_region):
            # it is signed into every request (SigV4) and put in s3a's and pyarrow's settings as given
            raise ConfigError(f"storage.s3_region (else AWS_REGION / AWS_DEFAULT_REGION) must be a region name of "
                              f"letters, digits, '-', '_' or '.' (such as us-east-1), got {self.s3_region!r}")
        for name in (*LAKE_LOCATIONS, "mlflow_tracking_uri"):  # '' would be the working directory, or no tracking
            if not getattr(self, name).strip():
                raise ConfigError(f"storage.{name} is empty: give a path or URI (an unset environment variable?)")
        for name in LAKE_LOCATIONS:
            try:
                Location(getattr(self, name))
                check_storage_uri(getattr(self, name))
            except ValueError as e:
                raise ConfigError(f"storage.{name}: {e}") from None
        if self.mlflow_artifacts is not None:
            parsed = urlparse(self.mlflow_artifacts)
            if parsed.scheme not in ("", "file", "s3", "s3a") or not self.mlflow_artifacts.strip() \
                    or (parsed.scheme in ("s3", "s3a") and not parsed.netloc):
                raise ConfigError(f"storage.mlflow_artifacts must be s3://bucket[/prefix], s3a://bucket[/prefix], "
                                  f"a local path or file://, or null; got {self.mlflow_artifacts!r}")
            try:
                check_storage_uri(self.mlflow_artifacts)
            except ValueError as e:
                raise ConfigError(f"storage.mlflow_artifacts: {e}") from None
        return self

    def check_master(self, master: str, setting: str = "spark.master") -> None:
        """Raises ConfigError when the Spark master ``master`` (named ``setting`` in the message) runs
        executors outside this process (anything but ``local``...) while ``landing`` or ``warehouse``
        is a local path and ``shared_local`` is false."""
        if master.startswith("local") or self.shared_local:
            return
        local = {n: getattr(self, n) for n in SPARK_LOCATIONS if not Location(getattr(self, n)).is_s3}
        if local:
            where = " and ".join(f"storage.{n}={v!r}" for n, v in local.items())
            one = len(local) == 1
            raise ConfigError(f"{setting}={master!r} runs executors on other machines, but {where} "
                              f"{'is' if one else 'are'} on this machine's disk: executors would write Parquet files "
                              f"to their own disks and the Delta log would land on the driver's. Put "
                              f"{'it' if one else 'them'} on S3 (s3://bucket/prefix), or set storage.shared_local=true "
                              f"if every Spark node mounts {'that path' if one else 'those paths'} (NFS, one machine)")

    def location(self, name: str) -> Location:
        """``storage.<name>`` (landing, warehouse, artifacts) as a Location on this S3 server."""
        if name not in LAKE_LOCATIONS:
            raise ValueError(f"unknown storage location {name!r}; allowed: {', '.join(LAKE_LOCATIONS)}")
        return Location(getattr(self, name), s3_options(self))

    @property
    def spark_s3(self) -> S3Options | None:
        """What Spark's s3a is set up with (:func:`pinrec.jobs.io.spark.get_spark`): this S3
        server when any of landing, warehouse or artifacts is on S3, else None (no s3a jars)."""
        return s3_options(self) if any(Location(getattr(self, n)).is_s3 for n in LAKE_LOCATIONS) else None


#: The storage fields that name a folder of the lake.
LAKE_LOCATIONS = ("landing", "warehouse", "artifacts")
#: Those that Spark's executors read and write (artifacts are written by the driver's Python alone).
SPARK_LOCATIONS = ("landing", "warehouse")


def s3_options(storage: StorageConfig) -> S3Options:
    """The connection every bundle store of the jobs is opened with (one place: the CLI, the DAG
    tasks and the demo all call this): ``storage.s3_endpoint_url`` and ``s3_region``; keys from the
    AWS SDK's own chain (``AWS_ACCESS_KEY_ID`` ...), never from the config."""
    return S3Options(endpoint_url=storage.s3_endpoint_url, region=storage.s3_region or "us-east-1")

