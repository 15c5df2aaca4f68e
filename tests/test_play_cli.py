"""`stockbot play` as a person starts it: a process that serves the page until Ctrl+C."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
ENV.pop("DATABASE_URL", None)  # the demo shop is its own temporary SQLite file


def _play(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bot", "play", *args], cwd=cwd, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_play_serves_the_page_on_the_demo_shop_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    process = _play("--port", "0", cwd=tmp_path)
    try:
        url = None
        assert process.stdout is not None
        for line in process.stdout:
            if found := re.search(r"open (http://127\.0\.0\.1:\d+/)", line):
                url = found.group(1)
                break
        assert url, process.stderr.read() if process.stderr else "no URL printed"
        with urllib.request.urlopen(url + "play/people", timeout=10) as answer:
            people = json.load(answer)["people"]
        assert {person["role"] for person in people} == {"admin", "purchaser", "sales", "customer"}
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert b"Stockbot play" in answer.read()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not list(tmp_path.iterdir()), "the demo shop lives in a temporary folder, not the working one"


def test_a_port_in_use_is_one_clear_line_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = _play("--port", str(port), cwd=tmp_path)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert err.strip() == f"stockbot: setting --port: 127.0.0.1:{port} is in use"
    assert out == ""
