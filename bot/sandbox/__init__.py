"""In-process fake Telegram Bot API server for tests and the offline demo (see docs/sandbox.md)."""

from bot.sandbox.models import (
    ApiCall,
    Button,
    ButtonNotFound,
    CallbackAnswer,
    InlineAnswer,
    MessageVersion,
    SentMessage,
    StoredFile,
    UploadedFile,
)
from bot.sandbox.client import SandboxSession, sandbox_bot, sandbox_session
from bot.sandbox.errors import ApiError
from bot.sandbox.server import BotApiSandbox

__all__ = [
    "ApiCall",
    "ApiError",
    "BotApiSandbox",
    "Button",
    "ButtonNotFound",
    "CallbackAnswer",
    "InlineAnswer",
    "MessageVersion",
    "SandboxSession",
    "SentMessage",
    "StoredFile",
    "UploadedFile",
    "sandbox_bot",
    "sandbox_session",
]
