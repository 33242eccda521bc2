"""The Pin-Board graph."""
