"""Buttons on stockout offers and restock notices (filled in by the recovery work)."""

from __future__ import annotations

from aiogram import Router


def create_router() -> Router:
    return Router(name="offers")
