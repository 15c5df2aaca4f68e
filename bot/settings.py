"""Settings from the environment or `.env`, validated once at start-up.

Every setting of the contract lives here; `.env.example` lists them all and a test keeps the two
in step. A bad value surfaces as `SettingsError`, which the CLI turns into one line and exit 2.
"""

from __future__ import annotations

import os

import re
from datetime import time
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from dotenv import dotenv_values  # pydantic-settings' own .env reader
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Locale = Literal["en", "zh"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

API_PREFIX = "/api/"
WAREHOUSE_CODE_LIMIT = 64  # warehouses.code is VARCHAR(64)  # where bot/api serves the integration API
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class SettingsError(Exception):
    """One setting is wrong or missing; `str()` names it in one line."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"setting {name}: {problem}")
        self.name = name
        self.problem = problem


def _parse_clock(text: str) -> time:
    match = _CLOCK.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a HH:MM time")
    return time(int(match.group(1)), int(match.group(2)))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=True,
        frozen=True,
        env_ignore_empty=True,  # `NAME=` (as in a fresh copy of .env.example) means unset, for every setting
    )

    BOT_TOKEN: SecretStr | None = None
    TELEGRAM_API_URL: str = "https://api.telegram.org"
    DATABASE_URL: str = "sqlite+aiosqlite:///stockbot.db"
    ADMIN_IDS: Annotated[frozenset[int], NoDecode] = frozenset()
    API_HOST: str = "127.0.0.1"
    API_PORT: int = Field(8080, ge=0, le=65535)
    WEBHOOK_SECRET: SecretStr | None = None
    TIMEZONE: str = "UTC"
    QUIET_HOURS: str = "22:00-08:00"
    DEFAULT_LOCALE: Locale = "en"
    SEND_RATE: float = Field(25, gt=0, le=10_000)
    LOG_LEVEL: LogLevel = "INFO"
    WEBHOOK_URL: str = ""  # public base URL Telegram posts updates to, for `run --webhook`
    WEBHOOK_PATH: str = "/telegram/webhook"
    TELEGRAM_SECRET_TOKEN: SecretStr | None = None  # checked on Telegram's webhook calls; made up when unset
    BOT_USERNAME: str = ""  # the bot's @username for invite links made offline; else learned from getMe
    # Connectors (docs/connectors.md). The source URL is a secret: it usually holds a password.
    SOURCE_DATABASE_URL: SecretStr | None = None
    SOURCE_STOCK_QUERY: str | None = None
    SOURCE_POLL_SECONDS: int = Field(60, ge=1)
    SHOPIFY_WEBHOOK_SECRET: SecretStr | None = None
    SHOPIFY_LOCATIONS: Annotated[dict[int, str], NoDecode] = Field(default_factory=dict)
    WOOCOMMERCE_WEBHOOK_SECRET: SecretStr | None = None
    WOOCOMMERCE_WAREHOUSE: str = Field("WOO", min_length=1, max_length=WAREHOUSE_CODE_LIMIT)
    # One import or API batch whose stockouts and restocks would message more customers than this
    # waits for an admin's Send (or Discard).
    MASS_CONTACT_LIMIT: int = Field(500, ge=0)

    # Beyond the contract: tuning knobs with sensible defaults.
    PHONE_REGION: str = ""  # region for numbers written without a country code, e.g. CN or US
    LOG_FORMAT: Literal["text", "json"] = "text"
    # Third-party loggers (SQLAlchemy, aiosqlite, asyncpg, aiohttp): their DEBUG and INFO carry
    # statement parameters and request lines (coupon codes, phones); shown only when asked.
    LOG_LEVEL_LIBRARIES: LogLevel = "WARNING"
    INVITE_TTL_DAYS: int = Field(30, ge=1)
    RESTOCK_MIN_UNITS: int = Field(0, ge=0)  # hold restock notices until this many units are available
    DIGEST_TIME: str = "09:00"
    COUPON_VIP_PERCENT: int = Field(15, ge=0, le=100)
    COUPON_VIP_DAYS: int = Field(14, ge=1)
    COUPON_ORDER_PERCENT: int = Field(10, ge=0, le=100)
    COUPON_ORDER_DAYS: int = Field(7, ge=1)
    COUPON_WAITLIST_PERCENT: int = Field(0, ge=0, le=100)
    COUPON_WAITLIST_DAYS: int = Field(7, ge=1)
    SUBSTITUTE_PRICE_BELOW: Decimal = Field(Decimal("0.30"), ge=0, le=1)
    SUBSTITUTE_PRICE_ABOVE: Decimal = Field(Decimal("0.20"), ge=0)
    HOLD_HOURS: int = Field(24, ge=1)
    VIP_RESTOCK_HOLD_HOURS: int = Field(0, ge=0)
    LARGE_ORDER_QTY: int = Field(10, ge=1)
    WAVE_FACTOR: Decimal = Field(Decimal("2"), gt=0)
    WAVE_INTERVAL_MINUTES: int = Field(30, ge=1)
    WAITLIST_DAYS: int = Field(90, ge=1)
    DAILY_MESSAGE_CAP: int = Field(3, ge=1)
    ATTRIBUTION_DAYS: int = Field(10, ge=1)
    DEMAND_DAYS: int = Field(28, ge=1)
    # Reports (docs/reports.md): ABC by cumulative share of revenue; slow movers.
    ABC_A_SHARE: float = Field(0.80, gt=0, lt=1)
    ABC_B_SHARE: float = Field(0.95, gt=0, le=1)
    SLOW_MOVER_DAYS: int = Field(60, ge=1)  # no sale in this many days
    SLOW_MOVER_COVER_DAYS: int = Field(180, ge=1)  # or more days of cover than this
    SERVICE_LEVEL_A: float = Field(0.98, gt=0.5, lt=1)
    SERVICE_LEVEL_B: float = Field(0.95, gt=0.5, lt=1)
    SERVICE_LEVEL_C: float = Field(0.90, gt=0.5, lt=1)
    # The control group (docs/recovery.md, "Did the offers pay?"): the share of each stockout's
    # customers who get no offer, so what offers add can be measured against them.
    HOLDOUT_PERCENT: int = Field(0, ge=0, le=50)
    HOLDOUT_VIPS: bool = False  # VIPs are always offered unless this is true

    # Scale-out: restock waves and stockout offers as Telegram paid broadcasts (charged in Stars).
    PAID_BROADCAST: bool = False
    PAID_BROADCAST_RATE: float = Field(1000, gt=0, le=10_000)  # messages/s, paid kinds only

    @field_validator("ADMIN_IDS", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            for part in parts:
                if not part.lstrip("-").isdigit():
                    raise ValueError(f"{part!r} is not a Telegram user id")
            return frozenset(int(part) for part in parts)
        return value

    @field_validator("SHOPIFY_LOCATIONS", mode="before")
    @classmethod
    def _location_map(cls, value: object) -> object:
        """`12345=WH-SH,67890=WH-LA`: Shopify location ids to Stockbot warehouse codes."""
        if not isinstance(value, str):
            return value
        mapping: dict[int, str] = {}
        for part in filter(None, (piece.strip() for piece in value.split(","))):
            location, sep, warehouse = (side.strip() for side in part.partition("="))
            if not sep or not location.isdigit() or not warehouse:
                raise ValueError(f"{part!r} is not location_id=WAREHOUSE")
            if len(warehouse) > WAREHOUSE_CODE_LIMIT:
                raise ValueError(f"warehouse {warehouse[:20]!r}... is longer than {WAREHOUSE_CODE_LIMIT} characters")
            mapping[int(location)] = warehouse
        return mapping

    @field_validator("SOURCE_DATABASE_URL")
    @classmethod
    def _source_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        from sqlalchemy.engine import make_url  # deferred (CLI start path), as for DATABASE_URL
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(value.get_secret_value())
        except (ValueError, ArgumentError):  # their messages may repeat the URL, password included
            raise ValueError("is not a SQLAlchemy database URL such as postgresql+asyncpg://user@host/erp") from None
        return value

    @field_validator("LOG_LEVEL", "LOG_LEVEL_LIBRARIES", mode="before")
    @classmethod
    def _level_any_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("LOG_FORMAT", mode="before")
    @classmethod
    def _format_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("TELEGRAM_SECRET_TOKEN")
    @classmethod
    def _header_safe(cls, value: SecretStr | None) -> SecretStr | None:
        # Telegram accepts 1-256 characters A-Z, a-z, 0-9, _ and - for the secret-token header.
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("TIMEZONE")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as Asia/Shanghai") from None
        return value

    @field_validator("QUIET_HOURS")
    @classmethod
    def _quiet_range(cls, value: str) -> str:
        value = value.strip()
        if value:
            start, sep, end = value.partition("-")
            if not sep:
                raise ValueError(f"{value!r} is not HH:MM-HH:MM (or empty to turn it off)")
            _parse_clock(start), _parse_clock(end)
        return value

    @field_validator("DIGEST_TIME")
    @classmethod
    def _clock(cls, value: str) -> str:
        _parse_clock(value)
        return value

    @field_validator("ABC_B_SHARE")
    @classmethod
    def _b_after_a(cls, value: float, info: ValidationInfo) -> float:
        if value <= info.data.get("ABC_A_SHARE", 0):
            raise ValueError("must be above ABC_A_SHARE (B classes the revenue after A)")
        return value

    @field_validator("DATABASE_URL")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        # Deferred (CLI start path): SQLAlchemy takes a tenth of a second that --help need not pay.
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(value)
        except ValueError as exc:  # a non-numeric port; the message names the port, not the password
            raise ValueError(f"is not a valid database URL ({exc})") from None
        except ArgumentError:  # its message repeats the whole URL, password included
            raise ValueError("is not a valid database URL") from None
        return value

    @field_validator("WEBHOOK_PATH")
    @classmethod
    def _webhook_route(cls, value: str) -> str:
        # The webhook shares API_HOST:API_PORT with the integration API, which owns /api/.
        if not value.startswith("/"):
            raise ValueError(f"{value!r} must start with /")
        if value == API_PREFIX.rstrip("/") or value.startswith(API_PREFIX):
            raise ValueError(f"{value!r} must not be under {API_PREFIX}, the integration API's")
        return value

    @field_validator("TELEGRAM_API_URL", "WEBHOOK_URL")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("BOT_TOKEN")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"\d+:[\w-]+", value.get_secret_value()):
            raise ValueError("is not a bot token of the form 123456:ABC...")  # never echo it
        return value

    @field_validator("BOT_USERNAME")
    @classmethod
    def _username_shape(cls, value: str) -> str:
        name = value.strip().removeprefix("@")
        if name and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{4,31}", name):
            raise ValueError("is not a Telegram @username (5-32 letters, digits and _)")
        return name

    @property
    def bot_id(self) -> int | None:
        """The bot's user id: the number before ":" in BOT_TOKEN."""
        return int(self.BOT_TOKEN.get_secret_value().split(":", 1)[0]) if self.BOT_TOKEN else None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.TIMEZONE)

    @property
    def quiet_hours(self) -> tuple[time, time] | None:
        if not self.QUIET_HOURS:
            return None
        start, _, end = self.QUIET_HOURS.partition("-")
        return _parse_clock(start), _parse_clock(end)

    @property
    def digest_time(self) -> time:
        return _parse_clock(self.DIGEST_TIME)

    @property
    def is_sqlite(self) -> bool:
        return self.DATABASE_URL.startswith("sqlite")

    def require_token(self, command: str = "stockbot run") -> str:
        if self.BOT_TOKEN is None:
            raise SettingsError("BOT_TOKEN", f"is required by `{command}`")
        return self.BOT_TOKEN.get_secret_value()


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, `.env` and explicit overrides (tests, demo)."""
    # An empty value means unset, except QUIET_HOURS, whose empty value turns quiet hours off
    # (the contract): taken from the environment or `.env` before the empty-is-unset rule drops it.
    try:
        if "QUIET_HOURS" not in overrides and _quiet_hours_given_empty(overrides.get("_env_file", ".env")):
            overrides = {**overrides, "QUIET_HOURS": ""}
        return Settings(**overrides)  # type: ignore[arg-type]
    except UnicodeDecodeError:  # e.g. saved as GBK by Notepad on Chinese Windows
        raise SettingsError(".env", "is not UTF-8 text; save it as UTF-8") from None
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "?"
        message = error["msg"].removeprefix("Value error, ")
        raise SettingsError(name, message) from None


def _quiet_hours_given_empty(env_file: object) -> bool:
    if "QUIET_HOURS" in os.environ:
        return os.environ["QUIET_HOURS"].strip() == ""
    if isinstance(env_file, (str, os.PathLike)) and os.path.isfile(env_file):
        value = dotenv_values(env_file).get("QUIET_HOURS")
        return value is not None and value.strip() == ""
    return False
