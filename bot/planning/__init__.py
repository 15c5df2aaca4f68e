"""Demand planning: history, forecast, cover, replenishment, reorder prompts and reports (pure numpy where it can be)."""
