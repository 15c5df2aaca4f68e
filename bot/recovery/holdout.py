"""The control group: which of a stockout's customers get no offer (HOLDOUT_PERCENT).

Comparing customers who got an offer with customers who, by the luck of the draw, did not, shows
what the offers add over what people would have bought anyway (docs/recovery.md, "Did the
offers pay?"). For that the draw must be random with respect to everything that predicts a
purchase, and it must come out the same however often it is made: a retried batch, a second
process or a replayed event must never move a customer from one group to the other.

So the draw is a keyed hash of (cause, customer): BLAKE2b, read as a number in [0, 1), held out
when below HOLDOUT_PERCENT / 100. It does not depend on process, order or time, and a customer's
draw in one stockout says nothing about the next one. The key only separates this use of the
hash from any other; it is not a secret (knowing it lets nobody choose their group).

Only customers who would really be messaged take part: those who cannot be (no chat, opted out,
blocked) get no message in either group, so comparing them would only dilute the difference.
VIPs never take part unless HOLDOUT_VIPS: they are always offered, and kept out of the
comparison, which stays a like-for-like one between regulars.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

_KEY = b"stockbot holdout v1"
_SCALE = 2**64


class Recipient(Protocol):
    @property
    def customer_id(self) -> int: ...

    @property
    def vip(self) -> bool: ...

    @property
    def contactable(self) -> bool: ...


R = TypeVar("R", bound=Recipient)


def draw(cause: int, customer_id: int) -> float:
    """The customer's number in [0, 1) for this cause: uniform, and the same everywhere."""
    digest = hashlib.blake2b(f"{cause}:{customer_id}".encode(), key=_KEY, digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def eligible(recipient: Recipient, *, percent: int, vips: bool) -> bool:
    return percent > 0 and recipient.contactable and (vips or not recipient.vip)


@dataclass(slots=True)
class Split(Generic[R]):
    offered: list[R] = field(default_factory=list)
    held_out: list[R] = field(default_factory=list)
    randomised: set[int] = field(default_factory=set)  # customer ids that took part in the draw


def split(recipients: Sequence[R], cause: int, *, percent: int, vips: bool) -> Split[R]:
    """The recipients of one stockout, in their order, as offered and held out."""
    result: Split[R] = Split()
    for recipient in recipients:
        if not eligible(recipient, percent=percent, vips=vips):
            result.offered.append(recipient)
            continue
        result.randomised.add(recipient.customer_id)
        if draw(cause, recipient.customer_id) < percent / 100:
            result.held_out.append(recipient)
        else:
            result.offered.append(recipient)
    return result
