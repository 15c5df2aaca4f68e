"""aiogram's Bot API models are built at first use (bot/lazy_aiogram.py), and still validate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# A fresh interpreter: this one imported aiogram long ago.
_PROBE = """
import json, sys
import bot.app  # what `stockbot run` imports
from aiogram.methods import SendMessage
from aiogram.types import Message, Update
built_at_import = [cls.__name__ for cls in (Message, Update, SendMessage) if cls.__pydantic_complete__]
update = Update.model_validate({
    "update_id": 7,
    "callback_query": {
        "id": "cq", "chat_instance": "ci", "data": "offer:wait:12",
        "from": {"id": 42, "is_bot": False, "first_name": "Ann", "language_code": "zh"},
        "message": {"message_id": 3, "date": 1700000000, "chat": {"id": 42, "type": "private"}, "text": "hi",
                    "reply_markup": {"inline_keyboard": [[{"text": "Wait", "callback_data": "offer:wait:12"}]]}},
    },
})
press = update.callback_query
sent = SendMessage(chat_id=42, text="ok", reply_markup=press.message.reply_markup)
try:
    Update.model_validate({"update_id": "not a number"})
    rejected = False
except Exception as error:
    rejected = type(error).__name__
print(json.dumps({
    "built_at_import": built_at_import,
    "from_user": [type(press.from_user).__name__, press.from_user.language_code],
    "message": type(press.message).__name__,
    "button": sent.model_dump(exclude_none=True)["reply_markup"]["inline_keyboard"][0][0],
    "rejected": rejected,
}))
"""


def test_the_bot_imports_aiogram_without_building_its_models_and_they_validate_on_first_use() -> None:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", _PROBE], cwd=root, capture_output=True, text=True,
                          timeout=120, check=True)
    seen = json.loads(done.stdout)
    assert seen["built_at_import"] == []  # ~2 s and ~110 MB saved at start-up
    assert seen["from_user"] == ["User", "zh"]  # a forward reference aiogram resolves only in its rebuild
    assert seen["message"] == "Message"
    assert seen["button"] == {"text": "Wait", "callback_data": "offer:wait:12"}
    assert seen["rejected"] == "ValidationError"


def test_models_defined_after_aiogram_build_as_usual() -> None:
    """Only the import of aiogram itself is deferred: pydantic's default is back for everyone else."""
    from pydantic import BaseModel

    class Body(BaseModel):
        quantity: int

    assert Body.__pydantic_complete__
    assert Body.model_validate({"quantity": "3"}).quantity == 3
