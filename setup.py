"""Package layout that pyproject.toml cannot say: `messages/` installs as `bot/messages`.

Translators keep working in `messages/` at the top of the repository; the wheel carries it inside
the `bot` package, so an install adds no top-level name but `bot` and reads its texts from there.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["bot", "bot.*"], exclude=["*.__pycache__"]), "bot.messages"],
    package_dir={"bot.messages": "messages"},
    package_data={"bot.messages": ["*/*.html", "*/*.toml"], "bot.migrations": ["script.py.mako"],
                  "bot.inventory": ["pinyin_readings.json"], "bot.play": ["static/*"]},
)
