"""An in-process fake Telegram Bot API server for tests and the offline demo.

Point aiogram at it with ``AiohttpSession(api=TelegramAPIServer.from_base(sandbox.base_url))``.
It speaks the real wire protocol (form/multipart requests, ``{"ok": ...}`` envelopes,
real error codes and descriptions) so aiogram raises its genuine exceptions, and
nothing can ever reach api.telegram.org.

All shared state is guarded by one ``threading.Lock`` so the server may run on its
own thread (``start_in_thread``) while tests inject updates from another loop.

`BotApiSandbox` is one object with one state, put together from a part per job:

- bot/sandbox/state.py: the state and the lock, and the helpers several parts use;
- bot/sandbox/http.py: the HTTP server, its lifecycle and getUpdates' long polls;
- bot/sandbox/methods.py: the Bot API methods and Telegram's checks;
- bot/sandbox/users.py: users acting (messages, buttons, inline queries, raw updates);
- bot/sandbox/inspection.py: what the bot did, and waiting for it;
- bot/sandbox/failures.py: scripted failures (statuses, silence, blocked and unknown chats).

Mixins rather than composed objects: every part reads and writes the same chats, queue and
files under the same lock, and the parts call each other (a button press builds the Message
object a sent message returns; every request passes the scripted failures), so one `self` keeps
that sharing plain and the public names stay on the one class tests, bot/play and benchmarks use.
"""

from __future__ import annotations

from bot.sandbox.http import HttpServer
from bot.sandbox.inspection import Inspection
from bot.sandbox.users import UserActions


class BotApiSandbox(HttpServer, UserActions, Inspection):
    """Fake Bot API server plus the controls a test needs: inject user actions, inspect bot output, script failures."""


__all__ = ["BotApiSandbox"]
