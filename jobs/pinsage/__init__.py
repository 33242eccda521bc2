"""PinSage embeddings: training job and evaluation."""
