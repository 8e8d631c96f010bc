"""Records where huggingface_hub puts downloaded files, for Tests/HubTests (run by hand: python3 Scripts/make_hub_fixture.py).

A local HTTP server plays the hub (the API's revision endpoint, resolve URLs answering with ETag or, for LFS files,
a redirect to another origin carrying X-Linked-Etag) and huggingface_hub's snapshot_download fetches a model and a
dataset split from it into an empty cache. The fixture holds the repositories served and the cache that resulted:
every path under its root, with each symlink's target and each ref's contents.
"""
import hashlib
import json
import os
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

COMMITS = {"models": "a" * 39 + "1", "datasets": "b" * 39 + "2"}
REPOS = {
    ("models", "org/fixture"): {
        "config.json": (b'{"model_type": "albert_moe"}', False),
        "model.safetensors": (bytes(range(256)) * 8, True),
        "tokenizer.json": (b'{"version": "1.0"}', False),
        "README.md": (b"# fixture", False),
    },
    ("datasets", "org/fixdata"): {
        "cfg/train-00000-of-00002.parquet": (b"PAR1 train 0", True),
        "cfg/train-00001-of-00002.parquet": (b"PAR1 train 1", True),
        "cfg/test-00000-of-00001.parquet": (b"PAR1 test 0", True),
    },
}


def etag(data, lfs):
    if lfs:
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def make_handler(cdn_port_holder, is_cdn):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, status, headers, body=b""):
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def find(self, kind, rest):
            for (k, repo_id), files in REPOS.items():
                if k == kind and rest.startswith(repo_id + "/"):
                    return repo_id, files, rest[len(repo_id) + 1:]
            return None, None, None

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            path = unquote(self.path.split("?")[0])
            if is_cdn:
                kind, rest = path[len("/cdn/"):].split("/", 1)
                repo_id, files, file = self.find(kind, rest)
                data = files[file][0]
                return self.answer(200, {"Content-Length": str(len(data))}, data)
            if path.startswith("/api/"):
                kind, rest = path[len("/api/"):].split("/", 1)
                repo_id, files, tail = self.find(kind, rest)
                body = json.dumps({"id": repo_id, "sha": COMMITS[kind],
                                   "siblings": [{"rfilename": f} for f in sorted(files)]}).encode()
                return self.answer(200, {"Content-Type": "application/json", "Content-Length": str(len(body))}, body)
            kind = "datasets" if path.startswith("/datasets/") else "models"
            rest = path[len("/datasets/"):] if kind == "datasets" else path[1:]
            repo_id, files, tail = self.find(kind, rest)
            commit, file = tail[len("resolve/"):].split("/", 1)
            data, lfs = files[file]
            headers = {"X-Repo-Commit": COMMITS[kind], "Content-Length": str(len(data))}
            if lfs:
                headers.update({"X-Linked-Etag": '"%s"' % etag(data, True), "X-Linked-Size": str(len(data)),
                                "ETag": '"%s"' % etag(data, False), "Content-Length": "0",
                                "Location": "http://127.0.0.1:%d/cdn/%s/%s/%s" % (cdn_port_holder[0], kind, repo_id, file)})
                return self.answer(302, headers)
            headers["ETag"] = '"%s"' % etag(data, False)
            return self.answer(200, headers, data)
    return Handler


def layout(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            full = Path(dirpath) / name
            rel = str(full.relative_to(root))
            if full.is_symlink():
                out[rel] = {"link": os.readlink(full)}
            elif full.is_dir():
                out[rel] = {"dir": True}
            elif "/refs/" in "/" + rel:
                out[rel] = {"text": full.read_text()}
            else:
                out[rel] = {"size": full.stat().st_size}
    return out


def main():
    cache = tempfile.mkdtemp()
    cdn_port = [0]
    cdn = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(cdn_port, True))
    cdn_port[0] = cdn.server_address[1]
    hub = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(cdn_port, False))
    for server in (cdn, hub):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ.update({"HF_HUB_CACHE": cache, "HF_ENDPOINT": "http://127.0.0.1:%d" % hub.server_address[1],
                       "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1"})
    import huggingface_hub
    huggingface_hub.snapshot_download("org/fixture", allow_patterns=["config.json", "model.safetensors", "tokenizer.json"])
    huggingface_hub.snapshot_download("org/fixdata", repo_type="dataset", allow_patterns=["cfg/train-*.parquet"])
    result = layout(cache)
    result = {k: v for k, v in result.items() if not k.startswith(".locks")}
    repos = [{"kind": kind, "id": repo_id, "commit": COMMITS[kind],
              "files": {f: {"text": d.decode("latin-1"), "lfs": lfs, "etag": etag(d, lfs)} for f, (d, lfs) in files.items()}}
             for (kind, repo_id), files in REPOS.items()]
    fixture = {"huggingface_hub": huggingface_hub.__version__, "repositories": repos, "cache": result}
    target = Path(__file__).resolve().parent.parent / "Tests/HubTests/Fixtures/huggingface_hub_layout.json"
    target.write_text(json.dumps(fixture, indent=1, sort_keys=True) + "\n")
    print("wrote", target, "with", len(result), "cache entries", file=sys.stderr)


if __name__ == "__main__":
    main()
