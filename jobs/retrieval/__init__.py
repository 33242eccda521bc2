"""Retrieval evaluation: protocols, baselines, data."""
