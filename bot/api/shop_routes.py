"""POST /api/v1/orders and /api/v1/customers: a shop's orders and customers, upserts by
`external_id`, so a retried batch changes nothing more."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.answers import ErrorList, unprocessable
from bot.api.bodies import duplicates, envelope_wrong, parse_batch, parse_json
from bot.api.integration import BatchRejected, IntegrationApi
from bot.api.schemas import CustomerIn, CustomersBody, OrderIn, OrdersBody, item_error
from bot.inventory.batches import PendingBatch, write_in_batch
from bot.shop.customers import CustomerInput, upsert_customers
from bot.shop.orders import LineInput, OrderInput, UnknownReference, check_references, upsert_orders


def add_shop_routes(app: web.Application, api: IntegrationApi, prefix: str) -> None:
    async def orders(request: web.Request, body: bytes) -> web.Response:
        items, errors = parse_batch(OrdersBody, OrderIn, "orders", parse_json(body))
        if envelope_wrong(errors):
            return unprocessable(errors)
        return await api.write_batch(items, errors, _check_orders, _write_orders)

    async def customers(request: web.Request, body: bytes) -> web.Response:
        context = {"phone_region": api.settings.PHONE_REGION}
        items, errors = parse_batch(CustomersBody, CustomerIn, "customers", parse_json(body), context)
        if envelope_wrong(errors):
            return unprocessable(errors)
        return await api.write_batch(items, errors, _check_customers, _write_customers)

    app.router.add_post(f"{prefix}/orders", api.signed(orders))
    app.router.add_post(f"{prefix}/customers", api.signed(customers))


async def _check_orders(session: AsyncSession, items: list[tuple[int, OrderIn]]) -> ErrorList:
    errors = duplicates(items, lambda o: o.external_id, "external_id", "external_id")
    for index, order in items:
        first: dict[str, int] = {}
        for j, line in enumerate(order.lines):
            if line.sku in first:
                errors.append(item_error(index, f"lines[{j}].sku", f"duplicate SKU {line.sku!r} (first at lines[{first[line.sku]}])"))
            first.setdefault(line.sku, j)
    bad = await check_references(session, [(i, o.customer_external_id, [line.sku for line in o.lines]) for i, o in items])
    return errors + [item_error(problem.at, problem.field, problem.message) for problem in bad]


async def _write_orders(session: AsyncSession, items: list[tuple[int, OrderIn]]) -> dict[str, int]:
    given = [
        OrderInput(
            o.external_id, o.customer_external_id,
            tuple(LineInput(line.sku, line.qty, o.status) for line in o.lines),
        )
        for _, o in items
    ]
    write_in_batch(session, PendingBatch("API orders"))
    try:
        counts = await upsert_orders(session, given)
    except UnknownReference as exc:  # a safety net: _check_orders found every unknown reference
        raise BatchRejected([item_error(None, exc.field, str(exc))]) from None
    return {"created": counts.created, "updated": counts.updated}


async def _check_customers(session: AsyncSession, items: list[tuple[int, CustomerIn]]) -> ErrorList:
    return duplicates(items, lambda c: c.external_id, "external_id", "external_id") + duplicates(
        items, lambda c: c.phone, "phone", "phone"
    )


async def _write_customers(session: AsyncSession, items: list[tuple[int, CustomerIn]]) -> dict[str, int]:
    counts = await upsert_customers(
        session,
        [CustomerInput(c.external_id, c.name, c.tier, c.phone, c.email, c.locale, c.timezone) for _, c in items],
    )
    return {"created": counts.created, "updated": counts.updated}
