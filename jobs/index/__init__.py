"""The ANN index over pin embeddings (in-process and with Spark)."""
