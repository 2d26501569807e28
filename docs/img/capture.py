"""Screenshots of the dashboards for docs/img/, taken as a user sees them: headless Chromium driven over the
DevTools protocol (navigate, click by visible text, wait, capture), no test framework.

    python docs/img/capture.py URL OUT.png [--click TEXT ...] [--wait SECONDS] [--size 1600x1000]

Needs `chromium` (apt) and websocket-client (in the dependency tree). Example (the ZenML dashboard started by
`zenml login --local`, MLflow by `mlflow ui`): see docs/img/README.md.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import websocket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """One headless Chromium tab."""

    def __init__(self, width: int = 1600, height: int = 1000):
        self.port, self.profile = free_port(), tempfile.mkdtemp(prefix="chromium-")
        binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        if binary is None:
            raise SystemExit("chromium not found: apt-get install -y chromium")
        self.process = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", f"--remote-debugging-port={self.port}",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json") as answer:
                    page = next(t for t in json.load(answer) if t["type"] == "page")
                break
            except (OSError, StopIteration):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        self.ws, self.ids = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60), itertools.count(1)
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params):
        message_id = next(self.ids)
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            answer = json.loads(self.ws.recv())
            if answer.get("id") == message_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                         awaitPromise=True).get("result", {}).get("value")

    def goto(self, url: str, wait: float) -> None:
        self.call("Page.navigate", url=url)
        time.sleep(wait)

    def click(self, text: str, wait: float) -> bool:
        """Click, with real mouse events, the innermost visible element whose text is `text` (exact, then
        prefix)."""
        box = self.evaluate(f"""(() => {{
            const want = {json.dumps(text)};
            const all = [...document.querySelectorAll('button, a, [role=tab], [role=button], [role=treeitem], span, div, p, li')]
                .filter(e => e.offsetParent !== null);
            const exact = all.filter(e => e.innerText && e.innerText.trim() === want);
            const pick = (exact.length ? exact : all.filter(e => e.innerText && e.innerText.trim().startsWith(want)))
                .sort((a, b) => a.innerText.length - b.innerText.length)[0];
            if (!pick) return null;
            pick.scrollIntoView({{block: 'center'}});
            const r = pick.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2]; }})()""")
        if box:
            x, y = box
            for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
                self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
        time.sleep(wait)
        return bool(box)

    def screenshot(self, out: Path, full_page: bool = False) -> None:
        params = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": size["width"],
                                                              "height": min(size["height"], 4000), "scale": 1})
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", **params)["data"]))

    def close(self) -> None:
        self.ws.close()
        self.process.terminate()
        self.process.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("out", type=Path)
    parser.add_argument("--click", nargs="*", default=[], help="texts to click in order, after loading")
    parser.add_argument("--wait", type=float, default=4.0)
    parser.add_argument("--size", default="1600x1000")
    parser.add_argument("--full-page", action="store_true")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    browser = Browser(width, height)
    try:
        browser.goto(args.url, args.wait)
        for text in args.click:
            if not browser.click(text, args.wait):
                print(f"not found on the page: {text!r}")
        browser.screenshot(args.out, args.full_page)
        print(f"{args.out}: {browser.evaluate('document.title')!r} at {browser.evaluate('location.href')}")
    finally:
        browser.close()


if __name__ == "__main__":
    main()
