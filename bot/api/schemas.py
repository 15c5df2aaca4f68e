"""Request bodies of the integration API and how their validation errors are reported.

The rules mirror the CSV importer (`bot/ingest/parsers.py`): the same lengths, statuses,
tiers, locales, time zones, e-mail shape and phone normalisation. Types are strict: `"5"` is not a quantity
and `true` is not a number. Every problem is reported as `{"index", "field", "message"}`, where
`index` is the item's position in the batch (null for the envelope) and `field` its path inside
the item, e.g. `lines[0].qty`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bot.models import CustomerTier
from bot.shop.customers import zone_name
from bot.shop.phones import BadPhone, to_e164
from bot.text_rules import REFUSAL, has_unsafe_chars

MAX_BATCH = 5_000  # items per request; a 5,000-event batch is about 0.4 MiB of JSON
MAX_LINES = 1_000  # lines per order
MAX_QTY = 2_000_000_000  # as the importer: a count above this is a typo, not stock
MAX_DELTA = 100_000_000  # one movement of more units than this is a bug in the sender
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _no_control(value: str) -> str:
    if has_unsafe_chars(value):
        raise ValueError(REFUSAL)
    return value


def _zone(value: str | None) -> str | None:
    return None if value is None else zone_name(value)


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _empty_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _text(limit: int) -> Any:
    return Annotated[
        str, StringConstraints(min_length=1, max_length=limit), AfterValidator(_no_control)
    ]


Text32, Text64, Text128, Text256 = _text(32), _text(64), _text(128), _text(256)


class _Strict(BaseModel):
    model_config = ConfigDict(
        strict=True, extra="forbid", str_strip_whitespace=True, frozen=True
    )


# --- stock events --------------------------------------------------------------------------------


class StockEventIn(_Strict):
    event_id: Text128
    sku: Text64
    warehouse: Text64
    delta: int | None = Field(None, ge=-MAX_DELTA, le=MAX_DELTA)
    on_hand: int | None = Field(None, ge=0, le=MAX_QTY)
    reason: Annotated[Text32 | None, BeforeValidator(_empty_is_none)] = None

    @field_validator("delta")
    @classmethod
    def _moves(cls, value: int | None) -> int | None:
        if value == 0:
            raise ValueError("must not be 0 (send on_hand to record a count)")
        return value

    @model_validator(mode="after")
    def _one_of(self) -> StockEventIn:
        if (self.delta is None) == (self.on_hand is None):
            raise PydanticCustomError(
                "one_of", "give exactly one of delta and on_hand", {"field": "delta"}
            )
        return self


class StockEventsBody(_Strict):
    events: list[StockEventIn] = Field(max_length=MAX_BATCH)


# --- orders --------------------------------------------------------------------------------------


class OrderLineIn(_Strict):
    sku: Text64
    qty: int = Field(ge=1, le=MAX_QTY)


class OrderIn(_Strict):
    external_id: Text128
    customer_external_id: Text128
    status: Annotated[Literal["open", "backordered", "fulfilled", "cancelled"], BeforeValidator(_lower)]
    lines: list[OrderLineIn] = Field(min_length=1, max_length=MAX_LINES)


class OrdersBody(_Strict):
    orders: list[OrderIn] = Field(max_length=MAX_BATCH)


# --- customers -----------------------------------------------------------------------------------


# The tier words the API takes, from the enum the table stores (a Literal keeps pydantic's message).
_TIER = Literal[tuple(tier.value for tier in CustomerTier)]  # type: ignore[valid-type]


class CustomerIn(_Strict):
    external_id: Text128
    name: Text256  # the column's width (customers.name is VARCHAR(256))
    tier: Annotated[_TIER, BeforeValidator(_lower)]  # type: ignore[valid-type]
    phone: Annotated[Text32 | None, BeforeValidator(_empty_is_none)] = None
    email: Annotated[Text256 | None, BeforeValidator(_empty_is_none)] = None
    locale: Annotated[Literal["en", "zh"] | None, BeforeValidator(_empty_is_none), BeforeValidator(_lower)] = None
    timezone: Annotated[Text64 | None, BeforeValidator(_empty_is_none), AfterValidator(_zone)] = None

    @field_validator("phone")
    @classmethod
    def _e164(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        region = (info.context or {}).get("phone_region", "")
        try:
            return to_e164(value, region)
        except BadPhone as exc:
            raise ValueError(str(exc)) from None

    @field_validator("email")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value


class CustomersBody(_Strict):
    customers: list[CustomerIn] = Field(max_length=MAX_BATCH)


# --- coupons -------------------------------------------------------------------------------------


class RedeemBody(_Strict):
    order_external_id: Annotated[Text128 | None, BeforeValidator(_empty_is_none)] = None


# --- errors --------------------------------------------------------------------------------------


def item_error(index: int | None, field: str, message: str) -> dict[str, Any]:
    return {"index": index, "field": field, "message": message}


def _path(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


_MESSAGES = {
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "list_type": "must be a JSON array",
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
}


def validation_errors(exc: ValidationError, key: str | None) -> list[dict[str, Any]]:
    """Map pydantic's errors to the API's shape; `key` is the envelope's list (`events`, ...)."""
    errors = []
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        index: int | None = None
        if key is not None and loc[:1] == [key] and len(loc) > 1 and isinstance(loc[1], int):
            index, loc = loc[1], loc[2:]
        ctx = error.get("ctx") or {}
        if index is not None:  # empty: the item as a whole
            field = _path(loc) or str(ctx.get("field", ""))
        else:
            field = _path(loc) or "body"
        kind = error["type"]
        message = _MESSAGES.get(kind) or error["msg"].removeprefix("Value error, ")
        if kind == "literal_error":
            message = f"{error['input']!r} is not one of {ctx['expected']}"
        elif kind == "too_long":
            message = f"has more than {ctx['max_length']} items"
        elif kind == "too_short":
            message = f"needs at least {ctx['min_length']} item(s)"
        errors.append(item_error(index, field, message))
    return errors
