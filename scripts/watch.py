#!/usr/bin/env python3
"""`make watch`: the circuit breaker's transitions, one line each, as they
happen. Follows order-service's `GET /admin/breaker/events` (server-sent
events) and reconnects whenever the stream ends (order-service restarted,
or this reader fell behind): the first event of each connection is the
breaker's state, so nothing is left unsaid.

Usage: watch.py [ORDER_URL] — ADMIN_TOKEN from the environment.
"""

import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime

URL = (sys.argv[1] if len(sys.argv) > 1 else "http://localhost:8080").rstrip("/")
if "://" not in URL:
    URL = f"http://{URL}"
TOKEN = os.environ.get("ADMIN_TOKEN", "")


def clock(at_ms):
    return datetime.fromtimestamp(at_ms / 1000).strftime("%H:%M:%S.%f")[:-3]


def reason(r):
    kind = r.get("kind")
    return {
        "consecutive_failures": lambda: f"{r['failures']} consecutive failures",
        "failure_ratio": lambda: f"{r['failures']} of {r['calls']} calls failed",
        "open_time_elapsed": lambda: "open time over, probing",
        "trial_failed": lambda: "a trial failed",
        "trial_timed_out": lambda: "a trial never reported",
        "trials_succeeded": lambda: f"{r['trials']} trials succeeded",
        "mode_changed": lambda: f"operator set {r['mode']}",
    }.get(kind, lambda: str(kind))()


def line(name, event, first):
    if name == "state":
        s = event["status"]
        mode = f", mode {s['mode']}" if s["mode"] != "auto" or not first else ""
        where = f"watching {URL}; " if first else ""
        return (f"{clock(event['at_ms'])}  {s['state']}{mode}  "
                f"({where}window {s['window_calls']} calls, {s['window_failures']} failed)")
    return (f"{clock(event['at_ms'])}  {event['from']} → {event['to']}  "
            f"({reason(event['reason'])}; window {event['window_calls']} calls, "
            f"{event['window_failures']} failed)")


def follow():
    req = urllib.request.Request(
        f"{URL}/admin/breaker/events",
        headers={"Authorization": f"Bearer {TOKEN}", "Accept": "text/event-stream"},
    )
    with urllib.request.urlopen(req, timeout=60) as stream:
        name, data, first = None, [], True
        for raw in stream:
            text = raw.decode("utf-8").rstrip("\r\n")
            if text.startswith("event: "):
                name = text[len("event: "):]
            elif text.startswith("data: "):
                data.append(text[len("data: "):])
            elif text == "" and data:
                print(line(name, json.loads("\n".join(data)), first), flush=True)
                name, data, first = None, [], False


def main():
    waiting = None
    while True:
        pause = 1.0
        try:
            follow()
            waiting = None
        except urllib.error.HTTPError as e:
            body = e.read().decode("utf-8", "replace")
            if e.code in (401, 403, 404):
                sys.exit(f"{URL}/admin/breaker/events answered {e.code}: {body}\n"
                         "(404: order-service has no ADMIN_TOKEN; 401: set ADMIN_TOKEN to its token)")
            # 503 (too many watchers, shutting down), a proxy's 502: later.
            why = f"answered {e.code}"
            pause = float(e.headers.get("Retry-After") or 1)
            if waiting != why:
                print(f"order-service at {URL} {why}; retrying …", flush=True)
                waiting = why
        except (OSError, urllib.error.URLError, http.client.HTTPException) as e:
            why = str(getattr(e, "reason", e))
            if waiting != why:
                print(f"waiting for order-service at {URL} ({why}) …", flush=True)
                waiting = why
        time.sleep(pause)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
