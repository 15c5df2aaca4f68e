"""Chinese names read the same with the bot's lean pypinyin as with its full phrase table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bot.inventory.pinyin_readings import READINGS
from bot.inventory.search_text import run_pinyin

ROOT = Path(__file__).resolve().parents[1]

# Each in a fresh interpreter: pypinyin reads its environment once, at import.
_FULL_TABLE = """
import json, sys
from pypinyin import Style, lazy_pinyin
from pypinyin.constants import PHRASES_DICT, PINYIN_DICT
from bot.inventory.pinyin_readings import phrases_that_need_their_reading
phrases = sorted(PHRASES_DICT)
json.dump({"needed": phrases_that_need_their_reading(PHRASES_DICT, PINYIN_DICT),
           "phrases": phrases,
           "readings": [lazy_pinyin(p, style=Style.NORMAL, errors="ignore") for p in phrases]}, sys.stdout)
"""
_LEAN = """
import json, sys
from bot.inventory.search_text import run_pinyin
json.dump([list(run_pinyin(p)) for p in json.load(sys.stdin)], sys.stdout)
"""


def _python(code: str, stdin: str = "") -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, input=stdin, capture_output=True, text=True,
                          timeout=300, check=True).stdout


def test_every_phrase_reads_as_with_pypinyins_full_table_and_the_file_is_current() -> None:
    full = json.loads(_python(_FULL_TABLE))
    assert json.loads(READINGS.read_text(encoding="utf-8")) == full["needed"], (
        "pinyin_readings.json is not what the installed pypinyin gives: python -m bot.inventory.pinyin_readings")
    lean = json.loads(_python(_LEAN, json.dumps(full["phrases"])))
    differing = [(phrase, want, got) for phrase, want, got in zip(full["phrases"], full["readings"], lean, strict=True)
                 if want != got]
    assert len(full["phrases"]) > 40_000
    assert differing == []


def test_polyphones_in_product_names_read_by_their_phrase() -> None:
    assert run_pinyin("银行卡") == ("yin", "hang", "ka")  # 行 alone reads "xing"
    assert run_pinyin("重庆火锅底料") == ("chong", "qing", "huo", "guo", "di", "liao")  # 重 alone: "zhong"
    assert run_pinyin("长城") == ("chang", "cheng")
    assert run_pinyin("口红") == ("kou", "hong")
