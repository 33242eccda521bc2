"""Helpers that several test modules import (never tests themselves)."""
