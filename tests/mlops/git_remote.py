"""Real Git remotes for the GitOps tests: a bare repository on disk, and the same served over
smart HTTP by `git http-backend` behind Basic auth (what a Git host does with a token)."""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


def git(*args: str, cwd: Path) -> str:
    """git as a person at the other end would run it (their own identity)."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")}, **GIT_ENV}
    cmd = ["git", "-c", "user.name=Someone Else", "-c", "user.email=else@example.org", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout  # fmt: skip


def bare_repo(root: Path, files: dict[str, object]) -> Path:
    """A bare repository whose `main` holds `files` (YAML documents) in one first commit."""
    bare = root / "deploy.git"
    git("init", "--quiet", "--bare", "--initial-branch", "main", str(bare), cwd=root)
    work = root / "seed"
    git("clone", "--quiet", str(bare), str(work), cwd=root)
    git("checkout", "--quiet", "-b", "main", cwd=work)
    for name, doc in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(yaml.safe_dump(doc, sort_keys=False))
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "the release's values", cwd=work)
    git("push", "--quiet", "origin", "main", cwd=work)
    return bare


def commit_elsewhere(bare: Path, root: Path, name: str, doc: object, message: str) -> str:
    """Another author's commit to main, pushed straight to the remote; its hash."""
    work = root / f"other-{len(list(root.glob('other-*')))}"
    git("clone", "--quiet", "--branch", "main", str(bare), str(work), cwd=root)
    (work / name).parent.mkdir(parents=True, exist_ok=True)
    (work / name).write_text(yaml.safe_dump(doc, sort_keys=False))
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", message, cwd=work)
    git("push", "--quiet", "origin", "main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work).strip()


def show(bare: Path, ref: str, path: str) -> object:
    return yaml.safe_load(git("show", f"{ref}:{path}", cwd=bare))


def log(bare: Path, ref: str = "main") -> list[str]:
    """Full messages, newest first."""
    return git("log", "--format=%B%x00", ref, cwd=bare).split("\x00\n")[:-1]


@contextmanager
def http_remote(project_root: Path, user: str, token: str) -> Iterator[str]:
    """`git http-backend` over the repositories under `project_root`, reachable only with
    Basic auth `user:token`; yields the base URL (http://127.0.0.1:PORT)."""
    expected = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet test output
            pass

        def _serve(self) -> None:
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            env = {
                **os.environ, **GIT_ENV, "GIT_PROJECT_ROOT": str(project_root),
                "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path, "QUERY_STRING": query,
                "REQUEST_METHOD": self.command, "REMOTE_USER": user, "REMOTE_ADDR": "127.0.0.1",
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            }  # fmt: skip
            out = subprocess.run(["git", "http-backend"], input=body, env=env,
                                 capture_output=True, check=True).stdout  # fmt: skip
            head, _, payload = out.partition(b"\r\n\r\n")
            headers = [h.split(":", 1) for h in head.decode().split("\r\n") if ":" in h]
            status = next((v.strip() for k, v in headers if k.lower() == "status"), "200 OK")
            self.send_response(int(status.split()[0]))
            for k, v in headers:
                if k.lower() != "status":
                    self.send_header(k, v.strip())
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _serve

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
