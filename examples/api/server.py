"""The `api` app of examples/apps.toml: a small JSON server on $PORT.

sempre restarts it whenever a file of this directory changes (watch = true).
"""
import http.server
import json
import os


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"app": "api", "env": os.environ.get("APP_ENV"), "pid": os.getpid()})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode() + b"\n")


port = int(os.environ.get("PORT", "3000"))
print(f"api listening on 127.0.0.1:{port}", flush=True)
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
