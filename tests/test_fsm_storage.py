from aiogram.fsm.storage.base import StorageKey

from bot.db import Database
from bot.handlers.fsm_storage import DatabaseStorage
from bot.handlers.purchaser import Ordering


async def test_conversation_state_survives_a_restart_and_is_per_user(db: Database) -> None:
    key = StorageKey(bot_id=1, chat_id=200, user_id=200)
    other = StorageKey(bot_id=1, chat_id=300, user_id=300)
    first = DatabaseStorage(db)
    await first.set_state(key, Ordering.quantity)
    await first.update_data(key, {"prompt_id": 7})
    await first.update_data(key, {"qty": 12})
    restarted = DatabaseStorage(db)
    assert await restarted.get_state(key) == Ordering.quantity.state
    assert await restarted.get_data(key) == {"prompt_id": 7, "qty": 12}
    assert await restarted.get_state(other) is None and await restarted.get_data(other) == {}
    await restarted.set_state(key, None)
    await restarted.set_data(key, {})
    assert await first.get_state(key) is None and await first.get_data(key) == {}
