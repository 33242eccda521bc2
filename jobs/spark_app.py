"""The file ``spark-submit`` runs: ``spark-submit [options] jobs/spark_app.py <pinrec CLI arguments>``.

spark-submit needs a Python *file* and :mod:`jobs.cli` uses relative imports, so this file only
fixes the import path and hands its arguments to the ``pinrec`` CLI, e.g.
``spark-submit --master spark://host:7077 --conf spark.jars=... jobs/spark_app.py task features
--date 2026-01-05 --result /shared/out.json``. The session then runs on the master and conf that
spark-submit was given (:func:`jobs.spark.get_spark`); :mod:`jobs.spark_submit` builds the call.
"""
import sys
from pathlib import Path

if __name__ == "__main__":
    # Run as a script, sys.path[0] is jobs/ itself, whose modules (config, datasets, spark, ...)
    # would shadow top-level packages: put the repository root there instead.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.path.insert(0, str(here.parent))

    from jobs.cli import main

    sys.exit(main(sys.argv[1:]))
