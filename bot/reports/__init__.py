"""Reports: what the bot tells a shop about how it is doing (new report code lives here)."""
