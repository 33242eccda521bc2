"""Resolve the JVM jars Spark needs (Delta Lake, hadoop-aws for ``s3a://``) at set-up time, so Spark never needs network.

``python -m pinrec.jobs.io.jars --pom config/jvm/pom.xml --dest var/jars`` runs the machine's Maven client
as it is configured (``mvn dependency:copy-dependencies``), then keeps only the jars pyspark does
not already ship (a second hadoop-client or scala-library on the classpath breaks Spark). A stamp
holding the pom's hash makes the step idempotent: the second run does nothing.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_VERSION = re.compile(r"-\d[\w.\-]*\.jar$")
STAMP = ".pinrec-jars"


class JarsMissingError(RuntimeError):
    """The Delta jars have not been resolved into the configured folder."""


def artifact_name(jar: str) -> str:
    """``delta-spark_4.2_2.13-4.4.0.jar`` -> ``delta-spark_4.2_2.13``."""
    return _VERSION.sub("", jar)


def pyspark_jar_names() -> set[str]:
    import pyspark

    return {artifact_name(p.name) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}


def resolve(pom: Path, dest: Path, mvn: str = "mvn") -> list[Path]:
    """Copy the pom's runtime dependencies, minus what pyspark ships, into ``dest``."""
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    stamp = dest / STAMP
    if stamp.is_file() and stamp.read_text().strip() == digest and any(dest.glob("*.jar")):
        return sorted(dest.glob("*.jar"))
    if shutil.which(mvn) is None:
        raise RuntimeError(f"Maven ({mvn}) is not on PATH; it is needed once, at set-up, to resolve the Delta jars")
    dest.mkdir(parents=True, exist_ok=True)
    # Beside dest, so that keeping a jar is a rename: the AWS SDK bundle alone is ~690 MB.
    with tempfile.TemporaryDirectory(dir=dest.resolve().parent, prefix=".jars-") as tmp:
        cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
               "-DincludeScope=runtime", f"-DoutputDirectory={tmp}"]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"Maven could not resolve {pom}:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
        shipped = pyspark_jar_names()
        keep = [p for p in Path(tmp).glob("*.jar") if artifact_name(p.name) not in shipped]
        if not keep:
            raise RuntimeError(f"Maven resolved no jars from {pom} into {tmp}")
        for old in dest.glob("*.jar"):
            old.unlink()
        for jar in keep:
            shutil.move(jar, dest / jar.name)
    stamp.write_text(digest + "\n")
    return sorted(dest.glob("*.jar"))


#: hadoop-aws and its runtime dependencies (``mvn dependency:tree`` of config/jvm/pom.xml): loaded
#: only by sessions that talk to S3, since opening the 690 MB SDK bundle adds ~2 s to every JVM start.
S3A_ARTIFACTS = frozenset({"hadoop-aws", "bundle", "analyticsaccelerator-s3", "wildfly-openssl"})


def jar_paths(jars_dir: str | Path, s3a: bool = False) -> list[str]:
    """The resolved jars (with the s3a ones when ``s3a``); a clear error telling how to resolve
    them when they are missing."""
    folder = Path(jars_dir)
    jars = sorted(str(p.resolve()) for p in folder.glob("*.jar")
                  if s3a or artifact_name(p.name) not in S3A_ARTIFACTS)
    how = (f"run `make setup` (or `python -m pinrec.jobs.io.jars --pom config/jvm/pom.xml --dest {folder}`) "
           f"once with Maven available")
    if not any("delta-spark" in Path(j).name for j in jars):
        raise JarsMissingError(f"no Delta jars in {folder.resolve()}; {how}")
    if s3a and not any(artifact_name(Path(j).name) == "hadoop-aws" for j in jars):
        raise JarsMissingError(f"no hadoop-aws jar in {folder.resolve()}, which s3:// storage needs; {how}")
    return jars


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pinrec.jobs.io.jars", description=__doc__.splitlines()[0])
    ap.add_argument("--pom", type=Path, default=Path("config/jvm/pom.xml"))
    ap.add_argument("--dest", type=Path, default=Path("var/jars"))
    args = ap.parse_args(argv)
    jars = resolve(args.pom, args.dest)
    print(f"[jars] {len(jars)} jars in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
