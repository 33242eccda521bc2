"""The Spark session's settings (``spark``), declared by :mod:`pinrec.jobs.config`; :mod:`pinrec.jobs.io.spark`
starts the session from them."""
from __future__ import annotations

import os
import re
from dataclasses import field
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator

from pinrec.schemas.config_base import section

__all__ = ["SparkConfig"]

PosInt = Annotated[int, Field(ge=1)]

#: the master URLs Spark itself accepts (SparkContext; Spark 4 has no Mesos)
MASTER = re.compile(r"local(?:\[(?:[1-9][0-9]*|\*)(?:,[0-9]+)?\])?|local-cluster\[\s*[0-9]+\s*,\s*[0-9]+\s*,\s*[0-9]+\s*\]"
                    r"|spark://\S+|k8s://\S+|yarn")
#: a JVM memory size as Spark reads it: a whole number, then b, k, m, g, t or p (each with an optional b)
MEMORY = re.compile(r"[0-9]+(?:[kmgtp]b?|b)?", re.IGNORECASE)


def _strings(value: Any) -> Any:
    """``spark.extra`` values as Spark takes them: every scalar as its string (YAML's ``2`` -> ``"2"``,
    ``true`` -> ``"true"``); a mapping, list or null is refused (``--set spark.extra.spark.x=1`` splits
    the key at its dots: quote it in a file, or set the whole mapping, ``--set 'spark.extra={spark.x: 1}'``)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if v is None or isinstance(v, dict | list):
                raise ValueError(f"spark.extra[{k!r}] must be a string, number or boolean (a Spark setting's "
                                 f"value), got {v!r:.60}; a key with dots is one key: "
                                 "--set 'spark.extra={spark.a.b: value}'")
            if not isinstance(k, str) or not k.startswith("spark.") or k == "spark.":
                # SparkConf keeps only spark.* keys (spark-submit: "Ignoring non-Spark config property"),
                # so another key would be silently lost on a cluster; Hadoop's go as spark.hadoop.*
                raise ValueError(f"spark.extra key {k!r} is not a Spark setting: keys start with 'spark.' "
                                 "(Hadoop settings as spark.hadoop.<key>)")
            out[str(k)] = v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)
        return out
    return value


@section("spark")
class SparkConfig:
    """Spark session settings. ``jars_dir`` holds the Delta jars resolved at setup time.

    ``master``: ``local[*]`` or a cluster URL (``spark://host:7077``...). ``driver_host`` /
    ``driver_bind_address``: the address executors reach the driver at and the one it listens on
    (None: 127.0.0.1 with a ``local`` master, Spark's own choice otherwise, which a cluster needs).
    ``executor_memory`` / ``executor_cores``: per executor on a cluster (None: Spark's default).
    ``shuffle_partitions``: tasks per shuffle (None: the local master's cores, 8 on a cluster).
    ``adaptive``: Spark's adaptive query execution (None: off with a local master, on on a cluster;
    on a single machine's small days its extra stage per shuffle cost more than it saved: a fresh
    demo ran 679 Spark jobs with it, 395 without, same outputs).
    ``quick_jvm``: start the driver JVM tuned for short runs on small data: the C1 JIT compiler only
    (``-XX:TieredStopAtLevel=1``), the serial garbage collector, and a 256 MB code cache (C1-only's
    default of 48 MB is too small for Spark + Delta: a fresh demo flushed and recompiled ~60k methods,
    23 s of sweeping; with 256 MB it ran ~10 % faster). None: off, but ``pinrec demo`` on a
    local master turns it on (a JVM of a few minutes: a fresh demo spent 95 CPU-seconds in JIT compilation
    without it and ran 5-7 % faster with it; a JVM that lives long, as the test suite's, ran a set of
    ingest tests 33 % slower with it with the 48 MB cache, 7 % slower with 256 MB: C2's code pays off
    there; docs/benchmarks.md).
    ``extra["spark.driver.extraJavaOptions"]`` replaces these options and the log4j one.
    ``extra``: any other ``spark.*`` setting, applied last.
    """

    master: str = "local[*]"
    app_name: str = "pinrec"
    shuffle_partitions: PosInt | None = None
    adaptive: bool | None = None
    quick_jvm: bool | None = None
    driver_memory: str = "2g"
    driver_host: str | None = None
    driver_bind_address: str | None = None
    executor_memory: str | None = None
    executor_cores: PosInt | None = None
    jars_dir: str = "./var/jars"
    extra: Annotated[dict[str, str], BeforeValidator(_strings)] = field(default_factory=dict)

    @field_validator("master")
    @classmethod
    def _master(cls, value: str) -> str:
        """One of Spark's master URLs, checked here rather than when the session starts."""
        if not MASTER.fullmatch(value):
            raise ValueError(f"spark.master must be local, local[N], local[*], local[N,F], local-cluster[N,C,M], "
                             f"spark://host:port, k8s://... or yarn, got {value!r}")
        return value

    @field_validator("driver_memory", "executor_memory")
    @classmethod
    def _memory(cls, value: str | None, info) -> str | None:
        """A JVM memory size (``2g``, ``512m``), checked here rather than when the JVM starts."""
        if value is not None and (not MEMORY.fullmatch(value) or not int(re.match(r"[0-9]+", value).group())):
            raise ValueError(f"spark.{info.field_name} must be a memory size > 0 such as 512m or 4g (a whole "
                             f"number, then b, k, m, g, t or p), got {value!r}")
        return value

    @property
    def local(self) -> bool:
        """Whether the master is Spark's in-process ``local`` one."""
        return self.master.startswith("local")

    @property
    def partitions(self) -> int:
        """``shuffle_partitions`` resolved: the local master's cores (``local`` 1, ``local[N]`` /
        ``local[N,F]`` N, ``local[*]`` this machine's), 8 on a cluster."""
        if self.shuffle_partitions is not None:
            return self.shuffle_partitions
        if not self.local:
            return 8
        match = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\d+)?\])?", self.master)
        cores = match.group(1) if match else None
        if cores == "*":
            return os.cpu_count() or 1
        return int(cores) if cores else 1

    @property
    def adaptive_execution(self) -> bool:
        """``adaptive`` resolved: off with a local master, on on a cluster, unless set."""
        return (not self.local) if self.adaptive is None else self.adaptive

    @property
    def quick_jvm_options(self) -> tuple[str, ...]:
        """The driver JVM's options from ``quick_jvm`` (None: off)."""
        if not self.quick_jvm:
            return ()
        return ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:ReservedCodeCacheSize=256m")
