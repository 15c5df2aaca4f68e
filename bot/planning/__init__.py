"""Demand planning: history, forecast, replenishment and reports (pure numpy where it can be)."""
