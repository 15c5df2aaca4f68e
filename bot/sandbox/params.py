"""Decoding of Bot API request parameters into Python values.

aiogram posts every parameter as a form field: strings raw, everything else
(ints, bools, nested objects like reply_markup) JSON-encoded. Telegram decodes by
the field's declared type, so we do the same with a list of string-typed fields:
``text="123"`` must stay a string while ``chat_id="123"`` becomes an int.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from bot.sandbox.models import UploadedFile

# Parameters whose Bot API type is String (or InputFile-or-String); never JSON-decoded.
STRING_FIELDS = frozenset(
    {
        "text", "caption", "parse_mode", "callback_query_id", "inline_query_id", "inline_message_id",
        "file_id", "url", "action", "language_code", "query", "next_offset", "secret_token",
        "ip_address", "description", "short_description", "name", "title", "photo", "document",
        "video", "audio", "animation", "sticker", "voice", "video_note", "thumbnail",
        "business_connection_id", "message_effect_id", "switch_pm_text", "switch_pm_parameter",
        "emoji", "phone_number", "first_name", "last_name", "vcard", "address", "certificate",
    }
)
_JSON_START = frozenset('{["-0123456789tfn')


def decode_value(key: str, value: str) -> Any:
    """JSON-decode non-string fields; fall back to the raw string (e.g. ``chat_id="@channel"``)."""
    if key in STRING_FIELDS or not value or value[0] not in _JSON_START:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


async def read_params(request: web.Request) -> dict[str, Any]:
    """Merge query string, form (urlencoded or multipart) or JSON body into one decoded dict.

    Uploaded parts replace their ``attach://<name>`` references, so ``params["document"]``
    is an ``UploadedFile`` whether aiogram attached it or a client posted it under its own name.
    """
    params: dict[str, Any] = {k: decode_value(k, v) for k, v in request.query.items()}
    if request.method != "POST" or not request.body_exists:
        return params
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
        return params
    uploads: dict[str, UploadedFile] = {}
    form = await request.post()
    for key, value in form.items():
        if isinstance(value, FileField):
            uploads[key] = UploadedFile(key, value.filename, value.content_type, value.file.read())
        elif isinstance(value, str):
            params[key] = decode_value(key, value)
    for key, value in list(params.items()):
        if isinstance(value, str) and value.startswith("attach://") and value[9:] in uploads:
            params[key] = uploads.pop(value[9:])
    params.update(uploads)
    return params
