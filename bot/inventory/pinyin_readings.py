"""pypinyin without its 47,000-phrase table: the few thousand phrases it is needed for.

Product search reads Chinese names as toneless pinyin. pypinyin gets polyphones right (银行 is
"yin hang", not "yin xing") by a table of 47,111 phrase readings, which costs a running bot
~55 MB of RSS: two thirds of it decoding the table from JSON, the rest a prefix set for
segmenting. Toneless, only 3,437 of those phrases read differently from their characters' own
default readings, and 106 more contain one of those and must stay known to win over it; for
every other phrase the table changes nothing we keep.

So the bot imports pypinyin with `PYPINYIN_NO_PHRASES` and loads just those phrases from
`pinyin_readings.json` (3,543 phrases, ~100 KB). Each of the 47,111 phrases reads as it does
with the full table (tests/test_pinyin_readings.py checks them all); a longer name where two
phrases overlap may, rarely, be cut differently. The file is made from the installed pypinyin's
own table; after upgrading pypinyin, write it again:

    python -m bot.inventory.pinyin_readings
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType

READINGS = Path(__file__).with_name("pinyin_readings.json")
_LEAN_IMPORT = {"PYPINYIN_NO_PHRASES": "1", "PYPINYIN_NO_DICT_COPY": "1"}


def import_lean_pypinyin() -> ModuleType:
    """pypinyin with only the phrases whose toneless reading needs them (see above)."""
    saved = {name: os.environ.get(name) for name in _LEAN_IMPORT}
    os.environ.update(_LEAN_IMPORT)  # read once, by pypinyin.constants at its import
    try:
        import pypinyin  # deferred: ~12 MB, paid only by a catalog with Chinese names
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    from pypinyin.constants import PHRASES_DICT  # deferred with pypinyin (above)

    if not PHRASES_DICT:  # imported without its table (here, not earlier by someone else)
        readings = json.loads(READINGS.read_text(encoding="utf-8"))
        pypinyin.load_phrases_dict({phrase: [[syllable] for syllable in reading.split()]
                                    for phrase, reading in readings.items()})
    return pypinyin


def phrases_that_need_their_reading(phrases: dict[str, list[list[str]]],
                                    characters: dict[int, str]) -> dict[str, str]:
    """The phrases whose toneless reading differs from their characters' first readings."""
    from pypinyin.style._utils import replace_symbol_to_no_symbol  # deferred with pypinyin

    def toneless(reading: str) -> str:
        return replace_symbol_to_no_symbol(reading)

    def character_reading(character: str) -> str:
        readings = characters.get(ord(character))
        return toneless(readings.split(",")[0]) if readings else character

    readings = {phrase: [toneless(options[0]) for options in reading] for phrase, reading in phrases.items()}
    differing = {phrase for phrase, syllables in readings.items()
                 if syllables != [character_reading(character) for character in phrase]}
    # pypinyin takes the longest phrase it knows: 一块石头落了地 must stay known, or its 落了
    # ("la le", a differing phrase) would win over the whole phrase's "luo le".
    shadowed = {phrase for phrase in readings if phrase not in differing and _contains_any(phrase, differing)}
    return {phrase: " ".join(readings[phrase]) for phrase in sorted(differing | shadowed)}


def _contains_any(phrase: str, parts: set[str]) -> bool:
    return any(phrase[start:end] in parts
               for start in range(len(phrase)) for end in range(start + 2, len(phrase) + 1))


def main() -> None:
    """Write pinyin_readings.json from the installed pypinyin's full table."""
    from pypinyin.constants import PHRASES_DICT, PINYIN_DICT  # the full table: not the bot's path

    needed = phrases_that_need_their_reading(PHRASES_DICT, PINYIN_DICT)
    READINGS.write_text(json.dumps(dict(sorted(needed.items())), ensure_ascii=False, indent=0) + "\n",
                        encoding="utf-8")
    print(f"{READINGS}: {len(needed):,} of {len(PHRASES_DICT):,} phrases")


if __name__ == "__main__":
    main()
