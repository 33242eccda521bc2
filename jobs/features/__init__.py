"""Daily feature tables, the point-in-time join, the training set, the online feature snapshot."""
