"""The Shopify and WooCommerce webhook routes: each platform's own signature over the raw body,
its topic header, and a delivery id remembered so that a retried delivery changes nothing.

Both platforms retry a delivery that is not answered 2xx quickly (Shopify within 5 s, and it drops
a subscription that keeps failing), so a delivery is applied inline only because it is small (one
product, one level or one order: a few statements), and a topic Stockbot does not follow is
answered 200 at once. A delivery is applied in one transaction with its delivery id: one that
fails is not remembered, and its retry is applied.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from bot.settings import Settings

from bot.db import Database
from bot.ingest.connectors import shopify, woocommerce
from bot.inventory.batches import PendingBatch, write_in_batch
from bot.ingest.connectors.deliveries import first_delivery
from bot.ingest.connectors.store import BadPayload

log = logging.getLogger("bot.api.webhooks")

_WOO_PING = re.compile(rb"^webhook_id=\d{1,20}$")
Apply = Callable[[Any, str, Any], Awaitable[str]]  # (session, topic, payload) -> outcome
Handler = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]
# The integration API's load limit (IntegrationApi.bounded): runs a handler in one of its slots,
# answering 503 with Retry-After rather than failing when the database is overloaded.
Bounded = Callable[[Handler, web.Request, bytes], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Platform:
    source: str
    secret: SecretStr | None
    secret_setting: str
    signature_header: str
    topic_header: str
    delivery_header: str
    topics: frozenset[str]
    apply: Apply


def signature_matches(secret: str, body: bytes, given: str | None) -> bool:
    """`given` is the base64 HMAC-SHA256 of `body` keyed with `secret`, compared in constant time."""
    if not given:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, given.strip().encode("utf-8", "replace"))


def _answer(http_status: int, **body: Any) -> web.Response:
    return web.json_response(body, status=http_status)


class ShopWebhooks:
    def __init__(self, settings: Settings, db: Database, bounded: Bounded) -> None:
        self.db = db
        self.bounded = bounded
        shopify_options = shopify.ShopifyOptions(settings.SHOPIFY_LOCATIONS, settings.PHONE_REGION)
        woo_options = woocommerce.WooOptions(settings.WOOCOMMERCE_WAREHOUSE, settings.PHONE_REGION)
        self.shopify = Platform(
            shopify.SOURCE, settings.SHOPIFY_WEBHOOK_SECRET, "SHOPIFY_WEBHOOK_SECRET", "X-Shopify-Hmac-Sha256",
            "X-Shopify-Topic", "X-Shopify-Webhook-Id", frozenset(shopify.TOPICS),
            lambda session, topic, payload: shopify.apply_delivery(session, topic, payload, shopify_options),
        )
        self.woocommerce = Platform(
            woocommerce.SOURCE, settings.WOOCOMMERCE_WEBHOOK_SECRET, "WOOCOMMERCE_WEBHOOK_SECRET",
            "X-WC-Webhook-Signature", "X-WC-Webhook-Topic", "X-WC-Webhook-Delivery-ID",
            frozenset(woocommerce.TOPICS),
            lambda session, topic, payload: woocommerce.apply_delivery(session, topic, payload, woo_options),
        )

    def route(self, platform: Platform) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def receive(request: web.Request) -> web.StreamResponse:
            if platform.secret is None:
                return _answer(503, error=f"the {platform.source} webhook is off: {platform.secret_setting} is not set")
            body = await request.read()  # the app's client_max_size answers 413 beyond 1 MiB
            given = request.headers.get(platform.signature_header)
            if given is None and platform is self.woocommerce and _WOO_PING.match(body.strip()):
                # WooCommerce's ping when a webhook is saved: unsigned, and it changes nothing.
                return _answer(200, status="pong")
            if not signature_matches(platform.secret.get_secret_value(), body, given):
                return _answer(401, error=f"bad or missing {platform.signature_header} signature")
            topic = request.headers.get(platform.topic_header, "")
            if topic not in platform.topics:
                log.info("%s webhook: topic %r is not one Stockbot follows; answered 200, nothing changed",
                         platform.source, topic[:64])
                return _answer(200, status="ignored", reason="topic not followed")
            try:
                payload = json.loads(body)
            except ValueError as exc:  # bad JSON and bad UTF-8 alike
                return _answer(400, error=f"malformed JSON: {exc}"[:300])
            return await self.bounded(self._apply(platform, topic, payload), request, body)

        receive.__name__ = f"{platform.source}_webhook"
        return receive

    def _apply(self, platform: Platform, topic: str, payload: Any):  # type: ignore[no-untyped-def]
        async def apply(request: web.Request, body: bytes) -> web.Response:
            delivery = request.headers.get(platform.delivery_header, "").strip()
            try:
                async with self.db.transaction() as session:
                    # A delivery is one batch, weighed against MASS_CONTACT_LIMIT as an API request is.
                    write_in_batch(session, PendingBatch(f"{platform.source} {topic}"))
                    if delivery and not await first_delivery(session, platform.source, delivery, topic):
                        log.info("%s webhook: delivery %r seen before; nothing changed", platform.source, delivery[:128])
                        return _answer(200, status="duplicate")
                    outcome = await platform.apply(session, topic, payload)
            except BadPayload as exc:
                log.warning("%s webhook %s: %s; nothing changed", platform.source, topic, exc)
                return _answer(422, error=str(exc)[:300])
            log.info("%s webhook %s: %s", platform.source, topic, outcome)
            return _answer(200, status=outcome.split(":")[0], detail=outcome)

        return apply


def add_shop_webhook_routes(
    app: web.Application, settings: Settings, db: Database, bounded: Bounded, prefix: str
) -> None:
    webhooks = ShopWebhooks(settings, db, bounded)
    app.router.add_post(f"{prefix}/shopify/webhook", webhooks.route(webhooks.shopify))
    app.router.add_post(f"{prefix}/woocommerce/webhook", webhooks.route(webhooks.woocommerce))
