"""Collaborative filtering: implicit-feedback ALS on engagement, served as the ``cf`` candidate channel."""
