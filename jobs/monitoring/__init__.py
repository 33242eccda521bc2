"""Drift monitoring, its plots, the warehouse summary."""
