"""Phone numbers in E.164, the one form records and Telegram contacts are compared in."""

from __future__ import annotations

import phonenumbers


class BadPhone(ValueError):
    pass


def to_e164(raw: str, region: str = "") -> str:
    """Normalise a number as typed in a shop's records; `region` covers numbers without +CC."""
    text = raw.strip()
    try:
        number = phonenumbers.parse(text, region.upper() or None)
    except phonenumbers.NumberParseException:
        hint = "" if region or text.startswith("+") else " (give +country code or set PHONE_REGION)"
        raise BadPhone(f"{raw!r} is not a phone number{hint}") from None
    if not phonenumbers.is_possible_number(number):
        raise BadPhone(f"{raw!r} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def telegram_contact_e164(raw: str) -> str:
    """Telegram sends a contact's number in international form, with or without the '+'."""
    text = raw.strip()
    return to_e164(text if text.startswith("+") else f"+{text}")
