"""POST /api/v1/coupons/{code}/redeem: a shop's checkout redeems a coupon, once."""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from bot.api.answers import error, unprocessable
from bot.api.bodies import parse_json
from bot.api.integration import IntegrationApi
from bot.api.schemas import RedeemBody, validation_errors
from bot.recovery.redemption import RedeemStatus, redeem_coupon


def add_coupon_routes(app: web.Application, api: IntegrationApi, prefix: str) -> None:
    async def redeem(request: web.Request, body: bytes) -> web.Response:
        try:
            given = RedeemBody.model_validate(parse_json(body, empty={}))
        except ValidationError as exc:
            return unprocessable(validation_errors(exc, None))
        code = request.match_info["code"]
        async with api.unit_of_work() as session:
            outcome = await redeem_coupon(session, code, given.order_external_id)
        if outcome.status is RedeemStatus.NOT_FOUND:
            return error(404, "unknown coupon code")
        if outcome.status is RedeemStatus.ALREADY_REDEEMED:
            return error(409, "coupon already redeemed")
        if outcome.status is RedeemStatus.EXPIRED:
            return error(410, "coupon expired")
        assert outcome.redeemed_at is not None and outcome.value is not None
        return web.json_response({
            "code": outcome.code,
            "percent": outcome.percent,
            "redeemed_at": outcome.redeemed_at.isoformat(),
            "value": str(outcome.value),
        })

    app.router.add_post(f"{prefix}/coupons/{{code}}/redeem", api.signed(redeem))
