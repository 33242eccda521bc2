"""Entry points: the ``pinrec`` CLI, the DAG tasks, spark-submit, the demo."""
