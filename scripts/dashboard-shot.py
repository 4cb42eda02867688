#!/usr/bin/env python3
"""`make dashboard-shot`: the dashboard as an operator sees it, in headless
Chromium, saved as a PNG. Waits for order-service at ORDER_URL to be ready,
opens /admin/dashboard, gives it the admin token (run/admin-token), waits
WAIT seconds (20) while the page fills, and saves OUT
(reports/dashboard.png). docs/demo.md's picture of demonstration 4 was
taken this way while `make demo-4` ran. WebDriver is spoken directly
(JSON over HTTP to chromedriver): no client library. CHROME_BIN and
CHROMEDRIVER as for the browser test (`make test-deps` installs both)."""

import base64
import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER_URL = os.environ.get("ORDER_URL", "http://localhost:8080")
WAIT = float(os.environ.get("WAIT", "20"))
OUT = Path(os.environ.get("OUT", ROOT / "reports" / "dashboard.png"))
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def call(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"}, method=method)
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)["value"]


def until(check, what, within=60):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"dashboard-shot: {what} not within {within} s")


def main():
    token = (ROOT / "run" / "admin-token").read_text().strip()
    until(lambda: urllib.request.urlopen(f"{ORDER_URL}/ready", timeout=2).status == 200, "order-service ready")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    driver = subprocess.Popen([os.environ.get("CHROMEDRIVER", "chromedriver"), f"--port={port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        until(lambda: call("GET", f"{base}/status")["ready"], "chromedriver")
        options = {"binary": os.environ.get("CHROME_BIN", "/usr/bin/chromium"),
                   "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,1250",
                            # No calls home (the browser test says why).
                            "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", "--disable-quic", "--no-first-run"]}
        capabilities = {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}
        session = f"{base}/session/" + call("POST", f"{base}/session", {"capabilities": capabilities})["sessionId"]
        call("POST", f"{session}/url", {"url": f"{ORDER_URL}/admin/dashboard"})
        find = lambda css: call("POST", f"{session}/element", {"using": "css selector", "value": css})[ELEMENT]  # noqa: E731
        call("POST", f"{session}/element/{find('#token')}/value", {"text": token})
        call("POST", f"{session}/element/{find('#login-form button')}/click", {})
        time.sleep(WAIT)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_bytes(base64.b64decode(call("GET", f"{session}/screenshot")))
        call("DELETE", session)
        print(f"dashboard: {OUT}")
    finally:
        driver.kill()
        driver.wait()


if __name__ == "__main__":
    main()
