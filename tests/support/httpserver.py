"""A threaded HTTP server on 127.0.0.1 for tests, with knobs for the trouble a download must survive.

    with serve() as server:
        route = server.add("/files/a.tar.gz", data, fail_first=2)   # two HTTP 500s, then the file
        fetch_from(server.url + "/files")
        assert route.hits == 3

Unknown paths answer 404. Every request is recorded in `server.requests` as (path, headers) and per route in
`route.hits` / `route.headers`.
"""
import contextlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    status: int = 200                 # the normal answer; 404, 403, 500... make the route an error page
    fail_first: int = 0               # answer the first N requests with fail_status instead
    fail_status: int = 500
    truncate_at: int | None = None    # close the connection after this many body bytes (Content-Length stays full)
    truncate_times: int | None = None # truncate only the first N answers; None: every answer
    ranges: bool = True               # honour Range; False answers 200 with the whole body, as some servers do
    delay: float = 0.0                # seconds to wait before answering
    chunk_delay: float = 0.0          # seconds between 4 KiB chunks of the body, for slow downloads
    etag: str | None = None
    announce_length: int | None = None   # the Content-Length to send instead of the body's true length
    send_length: bool = True          # False: no Content-Length, the body ends when the connection closes
    content_type: str = "application/octet-stream"
    redirect: str | None = None       # answer 302 with this Location (a path on this server or a URL)
    hits: int = 0
    headers: list = field(default_factory=list)   # the request headers, one dict per request
    truncated: int = 0                # how many answers were cut short


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so a truncated body really ends with a closed connection.
    protocol_version = "HTTP/1.0"

    def log_message(self, format, *args):
        pass

    def do_HEAD(self):
        self._answer(send_body=False)

    def do_GET(self):
        self._answer(send_body=True)

    def _answer(self, send_body):
        server = self.server.owner
        path = self.path.split("?", 1)[0]
        headers = dict(self.headers.items())
        with server.lock:
            route = server.routes.get(path)
            server.requests.append((path, headers))
            if route is not None:
                route.hits += 1
                route.headers.append(headers)
                failing = route.hits <= route.fail_first
                truncating = route.truncate_at is not None and (
                    route.truncate_times is None or route.truncated < route.truncate_times)
        if route is None:
            return self._plain(404, b"not found\n", send_body)
        if route.delay:
            time.sleep(route.delay)
        if failing:
            return self._plain(route.fail_status, b"failing on purpose\n", send_body)
        if route.redirect:
            return self._plain(302, b"moved\n", send_body, {"Location": route.redirect})
        if route.status != 200:
            return self._plain(route.status, b"error page\n", send_body)
        body, status, extra = route.body, 200, {}
        wanted = self.headers.get("Range", "")
        if route.ranges and wanted.startswith("bytes="):
            first, _, last = wanted[len("bytes="):].partition("-")
            start = int(first)
            end = min(int(last), len(body) - 1) if last else len(body) - 1
            if start >= len(body):
                return self._plain(416, b"range not satisfiable\n", send_body,
                                   {"Content-Range": f"bytes */{len(body)}"})
            status, extra = 206, {"Content-Range": f"bytes {start}-{end}/{len(route.body)}"}
            body = body[start:end + 1]
        if route.etag:
            extra["ETag"] = route.etag
        self.send_response(status)
        self.send_header("Content-Type", route.content_type)
        if route.send_length:
            self.send_header("Content-Length", str(route.announce_length or len(body)))
        self.send_header("Accept-Ranges", "bytes" if route.ranges else "none")
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        if not send_body:
            return
        if truncating:
            with server.lock:
                route.truncated += 1
            body = body[:route.truncate_at]
        try:
            for i in range(0, len(body), 4096):
                self.wfile.write(body[i:i + 4096])
                if route.chunk_delay:
                    time.sleep(route.chunk_delay)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _plain(self, status, text, send_body, extra=None):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if send_body:
            self.wfile.write(text)


class Server:
    def __init__(self, httpd):
        self._httpd = httpd
        self.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        self.routes = {}
        self.requests = []
        self.lock = threading.Lock()

    def add(self, path, body=b"", **knobs):
        """Serve `body` at `path` (starting with /), with Route knobs; returns the Route."""
        route = Route(body=body, **knobs)
        with self.lock:
            self.routes[path] = route
        return route

    def hits(self, path):
        with self.lock:
            return sum(1 for p, _ in self.requests if p == path)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True


@contextlib.contextmanager
def serve():
    """A running server on 127.0.0.1 (a free port); stopped when the block ends."""
    httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
    server = Server(httpd)
    httpd.owner = server
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
