"""The file ``spark-submit`` runs: ``spark-submit [options] <pinrec>/jobs/orchestration/spark_app.py <pinrec
CLI arguments>``.

spark-submit needs a Python *file*; this one hands its arguments to the ``pinrec`` CLI
(:mod:`pinrec.jobs.orchestration.cli`), e.g. ``spark-submit --master spark://host:7077 --conf
spark.jars=... --py-files pinrec.zip .../spark_app.py task features --date 2026-01-05 --result
/shared/out.json``. ``pinrec`` is imported from the installed package or from the ``--py-files`` zip
(:func:`pinrec.jobs.io.package.package_zip`); the session then runs on the master and
conf that spark-submit was given (:func:`pinrec.jobs.io.spark.get_spark`);
:mod:`pinrec.jobs.orchestration.spark_submit` builds the call.
"""
import sys

if __name__ == "__main__":
    from pinrec.jobs.orchestration.cli import main

    sys.exit(main(sys.argv[1:]))
