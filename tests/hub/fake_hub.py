"""A loopback stand-in for the Hugging Face Hub: the endpoints huggingface_hub 2.x uses for small files.

Upload (``HfApi.create_repo`` + ``upload_folder`` without xet):
  POST /api/repos/create                       {"name", "organization", "visibility"?, "type"?}
  POST /api/validate-yaml                      {"content", "repoType"} (when a README.md is uploaded)
  POST /api/models/{repo}/preupload/{rev}      answers every file "regular" (+ the remote blob oid)
  POST /api/models/{repo}/commit/{rev}         NDJSON: header line, then base64 "file" lines
Download (``snapshot_download`` / ``hf_hub_download``):
  GET  /api/models/{repo}/revision/{rev}       model info with "sha" and "siblings"
  GET  /api/models/{repo}/tree/{rev}           recursive listing of files and folders
  HEAD/GET /{repo}/resolve/{rev}/{path}        the bytes, with ETag, X-Repo-Commit, Content-Length

Every request is recorded (method, path, headers, body) so tests can check what reached the "Hub".
Any other route answers 404 and is recorded in ``unknown_routes``: a test can assert it stayed empty.
Failures are injected per route with ``fail(route, mode)``: "500", "500-echo" (the error message echoes
the Authorization header, as a careless server might) or "drop" (close the socket without answering).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml


GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    sha: str
    summary: str
    files: dict[str, bytes]


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: list[Commit] = field(default_factory=list)

    def at(self, revision: str) -> Commit | None:
        if not self.commits:
            return None
        if revision in ("main", "HEAD"):
            return self.commits[-1]
        return next((c for c in self.commits if c.sha == revision), None)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes


_REPO = r"(?P<repo>[^/]+/[^/]+)"
_ROUTES: list[tuple[str, str, re.Pattern[str]]] = [
    ("POST", "create", re.compile(r"^/api/repos/create$")),
    ("POST", "validate-yaml", re.compile(r"^/api/validate-yaml$")),
    ("POST", "preupload", re.compile(rf"^/api/models/{_REPO}/preupload/(?P<rev>[^/]+)$")),
    ("POST", "commit", re.compile(rf"^/api/models/{_REPO}/commit/(?P<rev>[^/]+)$")),
    ("GET", "info", re.compile(rf"^/api/models/{_REPO}/revision/(?P<rev>[^/]+)$")),
    ("GET", "info", re.compile(rf"^/api/models/{_REPO}$")),
    ("GET", "tree", re.compile(rf"^/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$")),
    ("GET", "resolve", re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")),
    ("HEAD", "resolve", re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")),
]


class FakeHub:
    """Start with ``FakeHub().start()``; ``.endpoint`` is the base URL; ``.stop()`` shuts it down."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[Recorded] = []
        self.unknown_routes: list[str] = []
        self._failures: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self) -> "FakeHub":
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "start() the fake hub first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ---- test helpers ----------------------------------------------------------------------------
    def fail(self, route: str, mode: str, times: int = 1) -> None:
        """Make the next ``times`` requests to ``route`` fail with ``mode`` ("500", "500-echo", "drop")."""
        self._failures.setdefault(route, []).extend([mode] * times)

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        commit = self.repos[repo_id].at(revision)
        return dict(commit.files) if commit else {}

    def routes_hit(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]

    def all_request_bytes(self) -> bytes:
        """Everything clients sent except the Authorization header (bodies, paths, other headers)."""
        parts = []
        for r in self.requests:
            headers = {k: v for k, v in r.headers.items() if k != "authorization"}
            parts += [r.path.encode(), json.dumps(headers).encode(), r.body]
        return b"\n".join(parts)

    def _take_failure(self, route: str) -> str | None:
        with self._lock:
            pending = self._failures.get(route)
            return pending.pop(0) if pending else None


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a deliberately dropped connection is not an error worth a traceback in the test log


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    # ---- plumbing --------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}  # HTTP header names are case-insensitive
        record = Recorded(method, url.path, parse_qs(url.query), headers, body)
        with self.fake._lock:
            self.fake.requests.append(record)
        for route_method, route, pattern in _ROUTES:
            match = pattern.match(url.path)
            if route_method != method or match is None:
                continue
            failure = self.fake._take_failure(route)
            if failure == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if failure in ("500", "500-echo"):
                message = "Internal Error: the commit could not be stored"
                if failure == "500-echo":
                    message += f" (request carried {self.headers.get('Authorization')})"
                return self._json(500, {"error": message})
            groups = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
            return getattr(self, "_" + route.replace("-", "_"))(record, **groups)
        with self.fake._lock:
            self.fake.unknown_routes.append(f"{method} {url.path}")
        self._json(404, {"error": f"fake hub: no route for {method} {url.path}"})

    def _json(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _repo_or_404(self, repo_id: str) -> Repo | None:
        repo = self.fake.repos.get(repo_id)
        if repo is None:
            self._json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        return repo

    def _commit_or_404(self, repo: Repo, rev: str) -> Commit | None:
        commit = repo.at(rev)
        if commit is None:
            self._json(404, {"error": f"Invalid rev id: {rev}"}, {"X-Error-Code": "RevisionNotFound"})
        return commit

    # ---- routes ----------------------------------------------------------------------------------
    def _create(self, record: Recorded) -> None:
        payload = json.loads(record.body)
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else f"user/{payload['name']}"
        url = f"{self.fake.endpoint}/{repo_id}"
        with self.fake._lock:
            if repo_id in self.fake.repos:
                return self._json(409, {"error": "You already created this model repo", "url": url})
            repo = Repo(repo_id, private=payload.get("visibility") == "private")
            # like the real Hub, a new repo starts with one commit holding .gitattributes
            repo.commits.append(Commit(hashlib.sha1(repo_id.encode()).hexdigest(), "initial commit", {".gitattributes": GITATTRIBUTES}))
            self.fake.repos[repo_id] = repo
        self._json(200, {"url": url, "name": repo_id})

    def _validate_yaml(self, record: Recorded) -> None:
        content = json.loads(record.body)["content"]
        errors = []
        if content.startswith("---"):
            front = content.split("---", 2)[1]
            try:
                if not isinstance(yaml.safe_load(front), dict):
                    errors.append({"message": "metadata must be a YAML mapping"})
            except yaml.YAMLError as err:
                errors.append({"message": f"invalid YAML: {err}"})
        self._json(400 if errors else 200, {"errors": errors, "warnings": []})

    def _preupload(self, record: Recorded, repo: str, rev: str) -> None:
        target = self._repo_or_404(repo)
        if target is None:
            return
        current = target.at(rev).files if target.at(rev) else {}
        files = []
        for entry in json.loads(record.body)["files"]:
            remote = current.get(entry["path"])
            files.append({
                "path": entry["path"],
                "uploadMode": "regular",
                "shouldIgnore": False,
                "oid": git_blob_sha1(remote) if remote is not None else None,
            })
        self._json(200, {"files": files, "commitOid": target.at(rev).sha if target.at(rev) else None})

    def _commit(self, record: Recorded, repo: str, rev: str) -> None:
        target = self._repo_or_404(repo)
        if target is None:
            return
        lines = [json.loads(line) for line in record.body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            return self._json(400, {"error": "commit payload must start with a header line"})
        parent = target.at(rev)
        files = dict(parent.files) if parent else {}
        for line in lines[1:]:
            value = line["value"]
            if line["key"] == "file" and value.get("encoding") == "base64":
                files[value["path"]] = base64.b64decode(value["content"])
            elif line["key"] == "deletedFile":
                files.pop(value["path"], None)
            else:
                return self._json(400, {"error": f"fake hub does not support commit entries of kind {line['key']!r}"})
        sha = hashlib.sha1(record.body + str(len(target.commits)).encode()).hexdigest()
        with self.fake._lock:
            target.commits.append(Commit(sha, lines[0]["value"].get("summary", ""), files))
        self._json(200, {"commitUrl": f"{self.fake.endpoint}/{repo}/commit/{sha}", "commitOid": sha, "pullRequestUrl": None})

    def _info(self, record: Recorded, repo: str, rev: str = "main") -> None:
        target = self._repo_or_404(repo)
        commit = target and self._commit_or_404(target, rev)
        if commit is None:
            return
        self._json(200, {
            "id": repo,
            "sha": commit.sha,
            "private": target.private,
            "siblings": [{"rfilename": p} for p in sorted(commit.files)],
        })

    def _tree(self, record: Recorded, repo: str, rev: str, path: str = "") -> None:
        target = self._repo_or_404(repo)
        commit = target and self._commit_or_404(target, rev)
        if commit is None:
            return
        recursive = record.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        entries: dict[str, dict] = {}
        for file_path, data in sorted(commit.files.items()):
            if not file_path.startswith(prefix):
                continue
            rest = file_path[len(prefix):].split("/")
            for depth in range(1, len(rest)):  # folders on the way
                if not recursive and depth > 1:
                    break
                folder = prefix + "/".join(rest[:depth])
                entries.setdefault(folder, {"type": "directory", "path": folder, "oid": git_blob_sha1(folder.encode())})
            if recursive or len(rest) == 1:
                size = getattr(data, "declared_size", len(data))  # a test can make a file claim to be huge
                entries[file_path] = {"type": "file", "path": file_path, "size": size, "oid": git_blob_sha1(data)}
        self._json(200, list(entries.values()))

    def _resolve(self, record: Recorded, repo: str, rev: str, path: str) -> None:
        target = self._repo_or_404(repo)
        commit = target and self._commit_or_404(target, rev)
        if commit is None:
            return
        data = commit.files.get(path)
        if data is None:
            return self._json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit.sha})
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", f'"{git_blob_sha1(data)}"')
        self.send_header("X-Repo-Commit", commit.sha)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
