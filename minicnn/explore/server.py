"""The explorer's HTTP server: the standard library's ``ThreadingHTTPServer``, JSON in and out.

Routes (all answers JSON unless a page asset):

    GET  /                    the page (static/index.html); /app.js, /style.css its assets
    GET  /api/model           layers, shapes, parameter counts, classes, normalisation
    GET  /api/images?...      test images (label=, predicted=, wrong=1, start=, count=)
    GET  /api/run             history.csv curves, per-class accuracy, confusion matrix; how far the run is
    GET  /api/filters         the first conv layer's kernels, and their timeline (filters.npz)
    GET  /api/stimulus?layer=L&channel=F   a channel's max-stimulus pattern
    POST /api/forward         {"index": i} | {"pixels": [...]} | {"synthetic": true}
    POST /api/conv            {"image": ..., "layer": L, "channel": F, "row": i, "col": j}

While watching a run the page polls ``/api/run`` every second: a few ``stat`` calls unless a file changed.

Bad requests get ``{"error": message}`` with 400 (malformed), 404 (unknown path or index),
411/413/415 (body length missing, too long, not JSON), 403 (on loopback, a ``Host`` other than
127.0.0.1 or localhost: DNS rebinding); an unexpected failure gets a 500
with the exception's one-line message, its traceback going to the server's own stderr.
"""

from __future__ import annotations

import ipaddress
import json
import sys
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qsl, urlsplit

from .api import Explorer
from .watch import WatchedRun
from .wire import ApiError

# The page's files, by the path the browser asks for: the client never names a file itself.
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
MAX_BODY = 1 << 20  # bytes: a 32x32x3 image as JSON is ~15 KB; anything near a megabyte is not a request of ours


def read_asset(name: str) -> bytes:
    return (resources.files(__package__) / "static" / name).read_bytes()


class Handler(BaseHTTPRequestHandler):
    """One request: route it, answer JSON, never a traceback page."""

    explorer: Explorer | WatchedRun  # set on the subclass make_server builds
    quiet = False
    server_version = "minicnn-explore"

    def _foreign_host(self) -> bool:
        """On loopback, answer only requests addressed to loopback: a web page whose domain was
        re-pointed at 127.0.0.1 (DNS rebinding) sends its own name in ``Host`` and is refused."""
        address = self.server.server_address  # (host, port) for an AF_INET server
        if not ipaddress.ip_address(str(address[0] if isinstance(address, tuple) else address)).is_loopback:
            return False  # bound elsewhere on purpose (--host): any name may reach it
        host = self.headers.get("Host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name in LOOPBACK_NAMES:
            return False
        self._error(HTTPStatus.FORBIDDEN, f"this server answers only requests for 127.0.0.1 or localhost, not {host!r}")
        return True

    def do_GET(self):
        if self._foreign_host():
            return
        url = urlsplit(self.path)
        if url.path in ASSETS:
            name, kind = ASSETS[url.path]
            return self._send(HTTPStatus.OK, read_asset(name), kind)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        e = self.explorer
        routes = {
            "/api/model": lambda: e.info(),
            "/api/images": lambda: e.images(query),
            "/api/run": lambda: e.run(),
            "/api/filters": lambda: e.filters(),
            "/api/stimulus": lambda: e.stimulus(query.get("layer"), query.get("channel")),
        }
        self._answer(routes.get(url.path))

    def do_POST(self):
        if self._foreign_host():
            return
        routes = {"/api/forward": self.explorer.forward, "/api/conv": self.explorer.explain}
        route = routes.get(urlsplit(self.path).path)
        if route is None:
            return self._answer(None)
        try:
            body = self._json_body()
        except ApiError as exc:
            return self._error(exc.status, str(exc))
        self._answer(lambda: route(body))

    def _json_body(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise ApiError("a POST needs a Content-Length header (no chunked bodies)", status=411)
        if int(length) > MAX_BODY:
            raise ApiError(f"the body is {int(length)} bytes; at most {MAX_BODY} are taken", status=413)
        kind = self.headers.get("Content-Type", "").split(";")[0].strip()
        if kind != "application/json":
            raise ApiError(f"the body must be application/json, got {kind or 'no Content-Type'!r}", status=415)
        raw = self.rfile.read(int(length))
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(f"the body is not valid JSON ({exc})") from None
        except RecursionError:
            raise ApiError("the body's JSON is nested too deeply") from None

    def _answer(self, compute):
        if compute is None:
            return self._error(HTTPStatus.NOT_FOUND, f"no such path: {urlsplit(self.path).path}")
        try:
            reply = compute()
        except ApiError as exc:
            return self._error(exc.status, str(exc))
        except Exception as exc:  # a bug of ours: say what, keep the traceback on the server's side
            traceback.print_exc(file=sys.stderr)
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {type(exc).__name__}: {exc}")
        self._send(HTTPStatus.OK, json.dumps(reply, allow_nan=False).encode(), "application/json")

    def _error(self, status, message):
        self._send(status, json.dumps({"error": message, "status": int(status)}).encode(), "application/json")

    def send_error(self, code, message=None, explain=None):
        """The standard library's own errors (a malformed request line, a method we lack) as JSON too."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # an unparsable request line: still answer with headers
            self.request_version = "HTTP/1.0"
        self._error(code, message or HTTPStatus(code).phrase)

    def _send(self, status, body: bytes, kind: str):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format, *args):
        if not self.quiet:
            super().log_message(format, *args)


def make_server(explorer: Explorer | WatchedRun, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False):
    """A ``ThreadingHTTPServer`` answering for ``explorer`` (port 0: any free port, see ``server_port``),
    an :class:`Explorer` or a :class:`~minicnn.explore.watch.WatchedRun` (the same replies, for a run in progress)."""
    handler = type("ExplorerHandler", (Handler,), {"explorer": explorer, "quiet": quiet})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True  # Ctrl-C does not wait for a slow request
    return server
