"""The two-tower retrieval model: training job, pin-tower index and the user tower for serving."""
