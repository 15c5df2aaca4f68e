"""The test harness is the product's own in-process driver (also used by `stockbot demo`)."""

from bot.conversation import Conversation as Harness
from bot.conversation import running_bot

__all__ = ["Harness", "running_bot"]
