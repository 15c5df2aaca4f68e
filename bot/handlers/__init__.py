"""aiogram routers, one module per role; `build_routers` gives fresh ones in the order they
must be tried (role routers first, the refusals last)."""

from __future__ import annotations

from aiogram import Router

from bot.handlers import admin, common, customer, fallback, flows, held, low_digest, offers, purchaser, reports, sales


def build_routers() -> list[Router]:
    return [
        common.create_router(),
        flows.create_router(),
        admin.create_router(),
        held.create_router(),
        low_digest.create_router(),
        purchaser.create_router(),
        reports.create_router(),
        sales.create_router(),
        customer.create_router(),
        offers.create_router(),
        fallback.create_router(),
    ]
