"""The Docker image and CI install requirements.lock: it must pin every run-time dependency the
package declares, within the declared ranges, and a copied .env must not undo the image's own
database path and listen address."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line):
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def test_the_lock_pins_every_runtime_dependency_inside_its_range() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = _locked()
    for text in declared:
        requirement = Requirement(text)
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in requirements.lock: run pip-compile (docs/deploy.md)"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {requirement.specifier}"
        assert "<" in str(requirement.specifier), f"{name} has no upper bound: the next major may break it"


def test_the_image_installs_the_lock_and_the_package_without_resolving_again() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --require-virtualenv -r requirements.lock" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    assert dockerfile.count("FROM python:3.11-slim") == 2  # a build stage and the image
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("-r requirements.lock") < ci.index("--no-deps -e .") < ci.index('-e ".[dev]"')


def test_a_copied_env_example_leaves_the_database_and_listen_address_to_the_image() -> None:
    # `docker run --env-file` passes KEY=VALUE lines; commented ones are not passed.
    passed = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()
              if "=" in line and not line.lstrip().startswith("#")}
    assert "DATABASE_URL" not in passed and "API_HOST" not in passed
    assert "WORKDIR /app/data" in (ROOT / "Dockerfile").read_text()  # a relative SQLite path lands in the volume
