"""Request bodies: read within MAX_BODY, parsed as strict JSON, and a batch validated whole, so
that one 422 lists every problem of it."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from bot.api.answers import Answer, ErrorList
from bot.api.schemas import item_error, validation_errors

MAX_BODY = 1024 * 1024  # 1 MiB
TOO_LARGE = f"request body larger than {MAX_BODY} bytes"
Item = TypeVar("Item", bound=BaseModel)


async def read_body(request: web.Request) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed MAX_BODY."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise Answer(413, TOO_LARGE)
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_BODY:
            raise Answer(413, TOO_LARGE)
    return bytes(body)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes, *, empty: Any = None) -> Any:
    if not body.strip() and empty is not None:
        return empty
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise Answer(400, f"malformed JSON: {exc}"[:300]) from None


def parse_batch(
    envelope: type[BaseModel], item: type[Item], key: str, data: Any, context: dict[str, Any] | None = None
) -> tuple[list[tuple[int, Item]], ErrorList]:
    """Validate the whole body; return the valid items with their indexes, and every error.

    Items that are well-formed still go through the reference checks when others are not, so one
    422 lists every problem of the batch.
    """
    try:
        body = envelope.model_validate(data, context=context)
        return list(enumerate(getattr(body, key))), []
    except ValidationError as exc:
        errors = validation_errors(exc, key)
    if envelope_wrong(errors):
        return [], errors  # nothing to check item by item
    bad = {error["index"] for error in errors}
    good = [
        (index, item.model_validate(raw, context=context))
        for index, raw in enumerate(data[key])
        if index not in bad
    ]
    return good, errors


def envelope_wrong(errors: ErrorList) -> bool:
    """Whether the body itself is wrong (not one of its items): answered at once."""
    return any(error["index"] is None for error in errors)


def duplicates(items: Sequence[tuple[int, Any]], key: Callable[[Any], Any], field: str, what: str) -> ErrorList:
    first: dict[Any, int] = {}
    errors = []
    for index, item in items:
        value = key(item)
        if value is None:
            continue
        if value in first:
            errors.append(item_error(index, field, f"duplicate {what} {value!r} (first at index {first[value]})"))
        else:
            first[value] = index
    return errors


def without(items: list[tuple[int, Item]], errors: ErrorList) -> list[tuple[int, Item]]:
    """The items no error points at."""
    bad = {error["index"] for error in errors}
    return [(index, item) for index, item in items if index not in bad]
