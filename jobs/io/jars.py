"""Resolve the JVM jars Spark needs (Delta Lake) at set-up time, so Spark never needs network.

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
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return sorted(dest.glob("*.jar"))
    if shutil.which(mvn) is None:
        raise RuntimeError(f"Maven ({mvn}) is not on PATH; it is needed once, at set-up, to resolve the Delta jars")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
               "-DincludeScope=runtime", f"-DoutputDirectory={tmp}"]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"Maven could not resolve {pom}:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
        shipped = pyspark_jar_names()
        keep = [p for p in Path(tmp).glob("*.jar") if artifact_name(p.name) not in shipped]
        dest.mkdir(parents=True, exist_ok=True)
        for old in dest.glob("*.jar"):
            old.unlink()
        for jar in keep:
            shutil.copy2(jar, dest / jar.name)
    stamp.write_text(digest + "\n")
    return sorted(dest.glob("*.jar"))


def jar_paths(jars_dir: str | Path) -> list[str]:
    """The resolved jars; a clear error telling how to resolve them when there are none."""
    folder = Path(jars_dir)
    jars = sorted(str(p.resolve()) for p in folder.glob("*.jar"))
    if not any("delta-spark" in Path(j).name for j in jars):
        raise JarsMissingError(
            f"no Delta jars in {folder.resolve()}; run `make setup` "
            f"(or `python -m pinrec.jobs.io.jars --pom config/jvm/pom.xml --dest {folder}`) once with Maven available")
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
