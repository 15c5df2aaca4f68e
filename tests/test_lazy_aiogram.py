"""aiogram's Bot API models are built at first use (bot/lazy_aiogram.py), and still validate."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.lazy_aiogram import TESTED_PYDANTIC, _within

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


_UPDATE_SCHEMA = """
import hashlib, json, warnings
warnings.simplefilter("ignore")  # pydantic: aiogram's Default(...) values have no JSON form
import bot.app
from aiogram.types import Update
built_at_import = Update.__pydantic_complete__
schema = Update.model_json_schema()  # builds every type any field of Update can hold
print(json.dumps({"built_at_import": built_at_import, "types": len(schema["$defs"]),
                  "digest": hashlib.sha256(json.dumps(schema, sort_keys=True, default=str).encode()).hexdigest()}))
"""


def _probe(code: str, **environment: str) -> dict:  # type: ignore[type-arg]
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=180,
                          check=True, env={**os.environ, **environment})
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_type_an_update_can_hold_is_built_as_an_ordinary_import_builds_it() -> None:
    lazy = _probe(_UPDATE_SCHEMA)
    ordinary = _probe(_UPDATE_SCHEMA, STOCKBOT_LAZY_AIOGRAM="0")
    assert (lazy["built_at_import"], ordinary["built_at_import"]) == (False, True)  # the switch turns it off
    assert lazy["types"] > 100
    assert lazy["digest"] == ordinary["digest"]


_NAMESPACE_NOT_HANDED = """
import json, os
from contextlib import contextmanager
os.environ["STOCKBOT_LAZY_AIOGRAM"] = "0"
import bot.lazy_aiogram as lazy  # switched off: bot/__init__ installs nothing
deferring = lazy._models_built_on_first_use

@contextmanager
def a_pydantic_whose_rebuild_hands_no_namespace(namespace):
    with deferring({}) as deferred:
        yield deferred

lazy._models_built_on_first_use = a_pydantic_whose_rebuild_hands_no_namespace
os.environ["STOCKBOT_LAZY_AIOGRAM"] = "1"
lazy.install()
from aiogram.types import Update
update = Update.model_validate({"update_id": 1, "message": {
    "message_id": 1, "date": 1700000000, "chat": {"id": 5, "type": "private"}, "text": "hi",
    "from": {"id": 5, "is_bot": False, "first_name": "Ann"}}})
print(json.dumps({"from_user": type(update.message.from_user).__name__}))
"""


def test_when_pydantic_hands_no_namespace_every_model_is_built_at_once_and_still_validates() -> None:
    assert _probe(_NAMESPACE_NOT_HANDED) == {"from_user": "User"}


@pytest.mark.parametrize(("version", "runs"), [
    ("2.7.0", True), ("2.13.4", True), ("2.14.0", False), ("2.6.4", False), ("3.0.0", False),
    ("2.13.0b1", True), ("nonsense", False),
])
def test_the_deferral_runs_only_on_the_pydantic_versions_it_was_tested_with(version: str, runs: bool) -> None:
    assert _within(version, *TESTED_PYDANTIC) is runs


def test_the_installed_pydantic_is_one_the_deferral_was_tested_with() -> None:
    """Upgrading pydantic past the range fails here: run this file on it, then widen the range."""
    assert _within(importlib.metadata.version("pydantic"), *TESTED_PYDANTIC)
