"""A DAG task's Spark step: through ``spark-submit`` to a cluster when an Airflow Spark connection
is configured, in-process on local Spark otherwise. Same job function, same XCom either way.

The mode is chosen when the task runs, never when the DAG file is parsed: the DAG param
``spark_conn_id`` (default :data:`DEFAULT_CONN_ID`, ``pinrec_spark``; null = always local) names
an Airflow connection, looked up as Airflow looks up any (``AIRFLOW_CONN_PINREC_SPARK``, a secrets
backend, the metadata database).

* **no such connection**: :func:`run_step` calls the step's :mod:`pinrec.jobs.orchestration.tasks` function in the
  task's process, on ``spark.master`` (default ``local[*]``), as the CLI does;
* **a connection** (e.g. ``spark://host:7077``, a ``yarn`` or ``k8s://`` master):
  :func:`submit_step` runs ``SparkSubmitHook`` with it on :mod:`pinrec.jobs.orchestration.spark_app` and the arguments
  ``task <step> --date D --result URI [--config F] [--set K=V ...]`` -- the ``pinrec task`` command,
  which calls the same :mod:`pinrec.jobs.orchestration.tasks` function through :func:`run_step`, on the master and conf
  spark-submit gives it (:func:`pinrec.jobs.io.spark.get_spark`) -- and returns the dict that command wrote.

spark-submit is given :func:`pinrec.jobs.io.spark.submit_conf` (the Delta jars of ``spark.jars_dir``, driver
memory, this environment's Python), pinrec's packages as a ``--py-files`` zip (executors import
the same code) and the application name ``pinrec-<step>-<day>``. The config file, the landing zone
and the warehouse must be reachable from the driver and the executors (shared storage, ``s3://``).
The result is written under ``<storage.artifacts>/_spark_submit/`` and deleted once read: local in
client deploy mode; in cluster deploy mode (the connection's extra ``deploy-mode``, :func:`deploy_mode`)
artifacts must be shared storage, and the driver, on a cluster node, gets the cluster's Python and no
address of this machine (:func:`pinrec.jobs.io.spark.submit_conf`).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

from pinrec.jobs.config import ConfigError, PinrecConfig
from pinrec.jobs.io.lake import Location, as_location
from pinrec.jobs.io.package import package_zip

from .cli_parser import STEPS  # `pinrec task`'s steps -> the tasks function each calls

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "pinrec_spark"
SKIPPED = "not_enough_history"  # the result's key when the step raised NotEnoughHistoryError


def run_step(step: str, cfg: PinrecConfig, day: dt.date) -> dict:
    """Run the :mod:`pinrec.jobs.orchestration.tasks` function of ``step`` for ``day`` here; its result as plain JSON
    (so that the XCom is the same dict whether it ran here or came back from spark-submit)."""
    from . import tasks

    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; expected one of {sorted(STEPS)}")
    return json.loads(json.dumps(getattr(tasks, STEPS[step])(cfg, day)))


def write_result(result: Mapping, uri: str | Path | Location) -> None:
    """Write a step's result as JSON to ``uri`` (a local path or a Location; a plain ``s3://``
    string gets AWS's own endpoint): one PUT on S3, a file renamed into place locally."""
    as_location(uri).write_text(json.dumps(result, sort_keys=True))


def read_result(uri: str | Path | Location, remove: bool = True) -> dict:
    """The result :func:`write_result` wrote (then deleted unless ``remove`` is False); a skipped
    step raises ``NotEnoughHistoryError`` again."""
    from .tasks import NotEnoughHistoryError

    where = as_location(uri)
    if not where.is_file():
        raise FileNotFoundError(f"spark-submit finished but wrote no result at {where}")
    result = json.loads(where.read_text())
    if remove:
        where.delete()
    if SKIPPED in result:
        raise NotEnoughHistoryError(result[SKIPPED])
    return result


def spark_connection(conn_id: str | None):
    """The Airflow connection ``conn_id``, or None (local Spark) when it is empty or not configured."""
    if not conn_id:
        return None
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return Connection.get(conn_id)
    except AirflowNotFoundException:
        return None


def deploy_mode(conn_id: str, cfg: PinrecConfig) -> str:
    """The deploy mode spark-submit gets from the Airflow connection ``conn_id`` (its extra
    ``deploy-mode``: ``client``, the default, or ``cluster``), checked against what a pinrec step
    needs in cluster mode, where the driver runs on a cluster node: Spark runs Python drivers there
    only on YARN and Kubernetes, and that driver writes the step's result under
    ``storage.artifacts``, which must then be shared storage (S3). ConfigError otherwise, naming the
    connection and the setting."""
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    # the hook's own reading of the connection (master URL rules differ between URI and UI connections)
    resolved = SparkSubmitHook(conn_id=conn_id)._connection
    master, mode = resolved["master"], resolved["deploy_mode"] or "client"
    if mode not in ("client", "cluster"):
        raise ConfigError(f"the Airflow connection {conn_id!r} has deploy-mode {mode!r}: expected 'client' or 'cluster'")
    if mode == "cluster" and master.startswith("spark://"):
        raise ConfigError(f"the Airflow connection {conn_id!r} asks for deploy-mode cluster on a standalone master "
                          f"({master}): Spark runs Python applications in cluster deploy mode only on YARN and "
                          "Kubernetes; use deploy-mode client there")
    if mode == "cluster" and not cfg.storage.location("artifacts").is_s3:
        raise ConfigError(f"the Airflow connection {conn_id!r} runs the driver on a cluster node (deploy-mode cluster), "
                          f"which writes the step's result under storage.artifacts={cfg.storage.artifacts!r}, a path "
                          "on this machine: put storage.artifacts on S3, or use deploy-mode client")
    return mode


def step_arguments(step: str, day: dt.date, result_uri: str, config_file: str | None,
                   overrides: list[str]) -> list[str]:
    """The ``pinrec`` CLI arguments that run ``step`` for ``day`` (what :mod:`pinrec.jobs.orchestration.spark_app` gets)."""
    args = ["task", step, "--date", day.isoformat(), "--result", result_uri]
    if config_file:
        args += ["--config", config_file]
    for item in overrides:
        args += ["--set", item]
    return args


def submit_step(step: str, cfg: PinrecConfig, day: dt.date, conn_id: str, config_file: str | None = None,
                overrides: list[str] | None = None) -> dict:
    """Run ``step`` for ``day`` through spark-submit with the Airflow connection ``conn_id``; the
    step's result. ``cfg`` must be the configuration ``config_file`` + ``overrides`` give."""
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    from pinrec.jobs.io.spark import submit_conf

    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; expected one of {sorted(STEPS)}")
    cluster_mode = deploy_mode(conn_id, cfg) == "cluster"
    result = cfg.storage.location("artifacts") / "_spark_submit" / f"{step}-{day.isoformat()}-{uuid.uuid4().hex}.json"
    result_uri = result.uri
    env = os.environ.copy()
    here = Path(sys.executable).parent
    if shutil.which("spark-submit") is None and (here / "spark-submit").is_file():
        env["PATH"] = f"{here}{os.pathsep}{env.get('PATH', '')}"  # this environment's pyspark
    with tempfile.TemporaryDirectory(prefix="pinrec-submit-") as tmp:
        hook = SparkSubmitHook(conn_id=conn_id, conf=submit_conf(cfg.spark, s3a=cfg.storage.spark_s3 is not None, cluster_mode=cluster_mode), py_files=str(package_zip(Path(tmp))),
                               name=f"pinrec-{step}-{day.isoformat()}",
                               application_args=step_arguments(step, day, result_uri, config_file,
                                                               list(overrides or [])))
        log.info("[spark-submit] %s for %s through the Airflow connection %r", step, day, conn_id)
        hook.submit(application=str(Path(__file__).resolve().with_name("spark_app.py")), env=env)
    return read_result(result)


def run_task(step: str, day: dt.date, params: Mapping) -> dict:
    """What a DAG task calls: ``step`` for ``day`` with the run's params (``config``, ``overrides``,
    ``spark_conn_id``), through spark-submit when that connection exists, else in this process."""
    from .tasks import config_from_params

    cfg = config_from_params(params.get("config"), params.get("overrides"))
    conn_id = params.get("spark_conn_id", DEFAULT_CONN_ID)
    if spark_connection(conn_id) is None:
        log.info("[spark] %s for %s in-process on %s (no Airflow connection %r)", step, day, cfg.spark.master, conn_id)
        return run_step(step, cfg, day)
    return submit_step(step, cfg, day, conn_id, params.get("config"), list(params.get("overrides") or []))
