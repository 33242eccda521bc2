"""The edges every stage uses: the Spark session and Delta, the jars, MLflow tracking, the torchrun process group."""
