"""What a serving process imports: loader, store, shards, feature store, recommend. Base install only (numpy, pyarrow, fsspec, faiss, onnxruntime)."""
