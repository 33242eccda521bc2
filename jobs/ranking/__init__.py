"""The ranker job: inputs, training (also under torchrun), evaluation, artifacts."""
