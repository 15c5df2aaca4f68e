"""Stockbot: a Telegram bot that keeps a shop's customers when its stock runs out."""

from bot import lazy_aiogram

lazy_aiogram.install()  # before any module of ours imports aiogram: see bot/lazy_aiogram.py
