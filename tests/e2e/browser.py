"""A real headless Chromium for the browser tests, driven over the DevTools protocol.

Every host but loopback is unresolvable, and the client records what the *page* does: every
request it makes (the browser's own background traffic is not the page's and is blocked
anyway), and every error it reports (uncaught exceptions, console.error, failed loads and
Content-Security-Policy violations)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.sync.client import ClientConnection, connect

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
RENDER_TIMEOUT_SECONDS = 30.0
LOCAL_SCHEMES = ("data", "blob", "about")


def chromium_path() -> str:
    """The Chromium binary; skipped locally when absent, a failure in CI."""
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    message = "headless Chromium is not installed (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run the browser tests")
    pytest.skip(message)


class DevTools:
    """A minimal DevTools-protocol client for one page target (flattened session)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0
        self.session: str | None = None
        self.requests: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self.responses: list[tuple[str, int, dict[str, str]]] = []  # url, status, headers
        self.errors: list[str] = []  # what the page reported as errors, one line each
        self._urls_by_id: dict[str, str] = {}
        self._finished: list[tuple[str, str]] = []  # (url, request id) of each complete load

    def call(self, method: str, timeout: float = 15.0, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if self.session is not None:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            incoming = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if incoming.get("id") == self.next_id:
                if "error" in incoming:
                    raise AssertionError(f"DevTools {method} failed: {incoming['error']}")
                result: dict[str, Any] = incoming.get("result", {})
                return result
            self._event(incoming)

    def _event(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            self.requests.append(url)
            self._urls_by_id[params["requestId"]] = url
        elif method == "Network.responseReceived":
            response = params["response"]
            headers = {name.lower(): value for name, value in response["headers"].items()}
            self.responses.append((response["url"], response["status"], headers))
        elif method == "Network.loadingFinished":
            request_id = params["requestId"]
            self._finished.append((self._urls_by_id.get(request_id, "?"), request_id))
        elif method == "Network.loadingFailed":
            url = self._urls_by_id.get(params.get("requestId", ""), "?")
            self.failed.append((url, params.get("errorText", "")))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"exception: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            values = [arg.get("value", arg.get("description")) for arg in params.get("args", [])]
            self.errors.append(f"console.{params['type']}: {values}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.errors.append(f"log ({entry['source']}): {entry['text']} {entry.get('url', '')}")

    def body_of(self, url_part: str) -> str:
        """The body of the latest complete response whose URL contains `url_part`, as the page
        received it."""
        self.evaluate("1")  # read the events still queued
        found = [request_id for url, request_id in self._finished if url_part in url]
        assert found, f"no complete response for {url_part!r} among {self.requests}"
        result = self.call("Network.getResponseBody", requestId=found[-1])
        if result.get("base64Encoded"):
            return base64.b64decode(result["body"]).decode()
        return str(result["body"])

    def evaluate(self, expression: str) -> Any:
        """The JSON value of `expression` in the page (promises are awaited)."""
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = RENDER_TIMEOUT_SECONDS) -> Any:
        """Poll `expression` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        text = self.evaluate("document.body ? document.body.innerText : ''") or ""
        raise AssertionError(
            f"{expression!r} stayed false for {timeout}s; page text:\n{text[:2000]}\n"
            f"errors: {self.errors}\nfailed: {self.failed}"
        )

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (beyond the viewport too) at `path`."""
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(data["data"]))
        return path


@contextmanager
def headless_chromium(tmp_path: Path) -> Iterator[DevTools]:
    """Chromium with every host but loopback unresolvable, attached to a blank page."""
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    process = subprocess.Popen(
        [
            chromium_path(),
            "--headless",
            "--no-sandbox",  # root in a container has no user namespace sandbox
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-features=Translate,OptimizationHints,MediaRouter",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "chromium.log").open("wb"),
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if process.poll() is not None or time.monotonic() > deadline:
                log = (tmp_path / "chromium.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"Chromium did not open its DevTools port\n{log}")
            time.sleep(0.05)
        port, browser_path = port_file.read_text().splitlines()[:2]
        with connect(f"ws://127.0.0.1:{port}{browser_path}", max_size=None) as ws:
            devtools = DevTools(ws)
            target = devtools.call("Target.createTarget", url="about:blank")["targetId"]
            devtools.session = devtools.call(
                "Target.attachToTarget", targetId=target, flatten=True
            )["sessionId"]
            for domain in ("Network", "Page", "Runtime", "Log"):
                devtools.call(f"{domain}.enable")
            yield devtools
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with suppress(OSError):
            shutil.rmtree(profile)


def render(devtools: DevTools, url: str, expected: list[str]) -> str:
    """Open `url` and wait until every `expected` text is in the rendered page; its text."""
    devtools.call("Page.navigate", url=url)
    deadline = time.monotonic() + RENDER_TIMEOUT_SECONDS
    text = ""
    while time.monotonic() < deadline:
        text = devtools.evaluate("document.body ? document.body.innerText : ''") or ""
        if all(item in text for item in expected):
            # Let late requests (images, lazy chunks) start, then read their events too.
            time.sleep(1.0)
            devtools.evaluate("1")
            return str(text)
        time.sleep(0.25)
    raise AssertionError(
        f"{url} did not render {expected} within {RENDER_TIMEOUT_SECONDS}s; page text:\n"
        f"{text[:2000]}\nrequests: {devtools.requests}\nfailed: {devtools.failed}"
    )


def off_host(requests: list[str], base: str) -> list[str]:
    """The requests that did not go to the server under test (or stay in the page)."""
    origin = urlsplit(base)
    outside = []
    for url in requests:
        parts = urlsplit(url)
        if parts.scheme in LOCAL_SCHEMES:
            continue
        if (parts.scheme, parts.hostname, parts.port) != ("http", origin.hostname, origin.port):
            outside.append(url)
    return outside
