"""Data loading for training."""

from __future__ import annotations

from syntonic.data.loader import DataError, DataLoader

__all__ = ["DataError", "DataLoader"]
