"""Who a person on the page can be: the demo's cast on the seeded shop, or on your own database
an admin, a purchaser, a sales rep and the customers already linked to a chat."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from bot.db import Database
from bot.demo import ALICE, ANN, LINA, MAX, PETER, RITA
from bot.models import Customer

STAFF_ROLES = ("admin", "purchaser", "sales")
CUSTOMERS_SHOWN = 6  # enough to try several; a long list of strangers helps nobody on one page
PURCHASER_ID, SALES_ID = PETER.user_id, RITA.user_id


@dataclass(frozen=True, slots=True)
class Person:
    user_id: int
    name: str
    role: str  # admin, purchaser, sales or customer
    language: str  # what their Telegram client says; a customer's own locale wins in the bot

    @property
    def first_name(self) -> str:
        return self.name.split()[0]

    def as_json(self) -> dict[str, object]:
        return {"id": self.user_id, "name": self.name, "role": self.role}


def seeded_cast(staff_language: str) -> tuple[Person, ...]:
    """The demo's people (bot/demo.py): customers keep their own language whatever the staff speak."""
    return (
        Person(ALICE.user_id, ALICE.name, "admin", staff_language),
        Person(PETER.user_id, PETER.name, "purchaser", staff_language),
        Person(RITA.user_id, RITA.name, "sales", staff_language),
        Person(ANN.user_id, ANN.name, "customer", "en"),
        Person(LINA.user_id, LINA.name, "customer", "zh"),
        Person(MAX.user_id, MAX.name, "customer", "en"),
    )


async def cast_of(db: Database, admin_id: int, staff_language: str) -> tuple[Person, ...]:
    """Staff played by the page, and the first customers of the database that have a chat."""
    async with db.transaction() as session:
        linked = (await session.execute(
            select(Customer.telegram_user_id, Customer.name, Customer.locale)
            .where(Customer.telegram_user_id.is_not(None))
            .order_by(Customer.id).limit(CUSTOMERS_SHOWN)
        )).all()
    staff = (
        Person(admin_id, "Admin", "admin", staff_language),
        Person(PURCHASER_ID, "Purchaser", "purchaser", staff_language),
        Person(SALES_ID, "Sales rep", "sales", staff_language),
    )
    taken = {person.user_id for person in staff}
    customers = tuple(
        Person(int(user_id), name, "customer", locale or staff_language)
        for user_id, name, locale in linked if user_id not in taken
    )
    return staff + customers
