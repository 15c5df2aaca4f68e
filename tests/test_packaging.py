"""A plain (non-editable) install works from any folder, built offline from the sdist."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".git", ".ci", "__pycache__", "build", "dist", "*.egg-info", ".pytest_cache",
                              ".venv", "*.db*", ".env")


def _build(source: Path, hook: str, out: Path) -> Path:
    """Run setuptools' PEP 517 hook in `source` as pip would, but with no network (no isolation)."""
    out.mkdir(exist_ok=True)
    code = f"from setuptools import build_meta; print(build_meta.{hook}({str(out)!r}))"
    result = subprocess.run([sys.executable, "-c", code], cwd=source, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return out / result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("build")
    shutil.copytree(ROOT, work / "src", ignore=SKIP)
    sdist = _build(work / "src", "build_sdist", work / "dist")
    with tarfile.open(sdist) as archive:
        archive.extractall(work / "unpacked", filter="data")
    [unpacked] = (work / "unpacked").iterdir()
    return _build(unpacked, "build_wheel", work / "dist")


def test_the_sdist_carries_what_the_wheel_and_the_tests_need(wheel: Path) -> None:
    [sdist] = wheel.parent.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in ("messages/en/labels.toml", "messages/zh/labels.toml", "alembic.ini", ".env.example",
                   "LICENSE", "tests/harness.py", "tests/conftest.py", "bot/migrations/script.py.mako"):
        assert needed in names


def test_the_wheel_installs_only_bot_with_its_texts(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")}
    assert top == {"bot"}
    for locale in ("en", "zh"):
        assert f"bot/messages/{locale}/labels.toml" in names
        assert any(name.startswith(f"bot/messages/{locale}/") and name.endswith(".html") for name in names)
    assert any(name.startswith("bot/migrations/versions/0001_") for name in names)
    for page in ("index.html", "play.css", "play.js"):  # `stockbot play` serves them from the package
        assert f"bot/play/static/{page}" in names


def test_stockbot_demo_runs_from_any_folder_after_a_plain_install(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    # The fresh venv sees the dependencies already installed here (offline), but not this checkout:
    # its own site-packages comes first, and the parent's are only appended as plain paths.
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    parents = [p for p in (*site.getsitepackages(), site.getusersitepackages()) if Path(p).is_dir()]
    (Path(purelib) / "parent-site.pth").write_text("\n".join(parents) + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
         str(wheel)], capture_output=True, text=True, timeout=180,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields and k != "PYTHONPATH"}
    # A hang guard, not a speed limit: the demo took 39 s at load 8.
    result = subprocess.run([env_dir / "bin" / "stockbot", "demo", "--locale", "en"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Velvet Matte Lipstick Red" in result.stdout
    located = subprocess.run([python, "-c", "import bot; print(bot.__file__)"], cwd=elsewhere, env=env,
                             capture_output=True, text=True, check=True).stdout
    assert located.startswith(purelib), located
