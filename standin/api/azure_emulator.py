#!/usr/bin/env python3
"""A local Azure Blob Storage for the real `az`: Azurite's blob service
(npm, installed by scripts/setup.sh into .venv/npm) on 127.0.0.1 at a free
port, with the storage account cloudimg's tests name (`caposimages`).

    azure_emulator.py --state DIR [--faults SPEC] [--login]

prints one JSON line {"blob": URL, "account": NAME, "key": KEY,
"connection_string": ...} once Azurite listens, then serves until its
standard input closes or SIGTERM, and stops Azurite. Faults are not
injected here (Azure compute has no emulator; see standin/api/README.md).

With --login, `az ... --auth-mode login` works too (see login() below):
Azurite speaks HTTPS with `--oauth basic`, beside it run a local Azure AD
and Resource Manager (HTTPS, same self-signed certificate) and an HTTP
CONNECT proxy that takes `ACCOUNT.blob.SUFFIX:443` to Azurite; the JSON
line gains "login": {aad, arm, proxy, ca_bundle, tenant, subscription,
app_id, secret, storage_suffix}, and "blob"/"connection_string" are
https.

Azurite takes its accounts from AZURITE_ACCOUNTS ("name:key"; Azurite's
README, "Customized Storage Accounts & Keys"), answers path-style URLs
(`http://127.0.0.1:PORT/ACCOUNT/...`), and is run with
--disableTelemetry so that nothing leaves 127.0.0.1.
"""

import argparse
import base64
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import tls

ACCOUNT = "caposimages"
#: Any base64 key will do for an emulator account.
KEY = base64.b64encode(b"cloudimg-azurite-test-key-000000").decode()
HERE = os.path.dirname(os.path.realpath(__file__))
AZURITE = os.path.join(HERE, "..", "..", ".venv", "npm", "bin", "azurite-blob")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc):
    for _ in range(400):
        if proc.poll() is not None:
            raise SystemExit("azurite-blob exited with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("azurite-blob did not start")


def start_azurite(state, cert_key=None):
    """Azurite's blob service; `cert_key` = (cert, key) runs it over HTTPS
    with `--oauth basic` (Azurite checks Bearer tokens only over HTTPS:
    BlobTokenAuthenticator.js, "Authentication scheme Bearer is not
    allowed with HTTP.") and with product-style URLs on (the account is
    the first label of a host name that is not an IP address:
    blobStorageContext.middleware.js, extractStoragePartsFromPath), as
    `az --auth-mode login` names the account in the host."""
    port = free_port()
    root = os.path.join(state, "azurite")
    os.makedirs(root, exist_ok=True)
    env = dict(os.environ, AZURITE_ACCOUNTS="%s:%s" % (ACCOUNT, KEY))
    log = open(os.path.join(state, "azurite.log"), "wb")
    args = [AZURITE, "--blobHost", "127.0.0.1", "--blobPort", str(port),
            "--location", root, "--silent", "--skipApiVersionCheck", "--disableTelemetry"]
    if cert_key:
        args += ["--oauth", "basic", "--cert", cert_key[0], "--key", cert_key[1]]
    else:
        args += ["--disableProductStyleUrl"]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    wait_listening(port, proc)
    return proc, port


# ------------------------------------------------------------ --login ----

#: The storage endpoint suffix of the local cloud (`az cloud register
#: --suffix-storage-endpoint`): az names the account in the host,
#: `https://ACCOUNT.blob.SUFFIX` (azure-cli's storage/_client_factory.py,
#: get_account_url). `.test` is reserved (RFC 6761): no DNS answers it,
#: and only the proxy below ever sees the name.
SUFFIX = "cloudimg.test"
TENANT = "00000000-0000-4000-8000-00000000c10d"
SUBSCRIPTION = "00000000-0000-4000-8000-0000000005b5"
APP_ID = "00000000-0000-4000-8000-0000000a9900"
SECRET = "cloudimg-test-secret"
#: Azurite's basic OAuth accepts a token whose `iss` starts with one of
#: VALID_ISSUE_PREFIXES (azurite dist/src/common/utils/constants.js:
#: "https://sts.windows.net/", ...) and whose `aud` is one of
#: VALID_BLOB_AUDIENCES (dist/src/blob/utils/constants.js:
#: "https://storage.azure.com", ...); it decodes the token without
#: checking a signature and checks nbf <= now <= exp and that iat is set
#: (BlobTokenAuthenticator.js, authenticateBasic).
ISSUER = "https://sts.windows.net/%s/" % TENANT


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(audience):
    """An unsigned JWT (`alg: none`, empty signature) good for an hour."""
    now = int(time.time())
    head = {"alg": "none", "typ": "JWT"}
    body = {"aud": audience, "iss": ISSUER, "iat": now, "nbf": now - 60, "exp": now + 3600,
            "appid": APP_ID, "oid": APP_ID, "sub": APP_ID, "tid": TENANT, "ver": "1.0"}
    return "%s.%s." % (b64url(json.dumps(head).encode()), b64url(json.dumps(body).encode()))


class Aad(BaseHTTPRequestHandler):
    """Azure AD and Resource Manager, as much as `az login
    --service-principal` and `az storage ... --auth-mode login` ask:

    - GET /TENANT/v2.0/.well-known/openid-configuration (MSAL's tenant
      discovery, msal/authority.py, when instance discovery is off);
    - POST /TENANT/oauth2/v2.0/token, grant_type=client_credentials with
      APP_ID and SECRET: a token whose audience is the scope's resource
      (`https://storage.azure.com/.default` -> `https://storage.azure.com`);
    - GET /subscriptions and /tenants (az login lists them,
      azure/cli/core/_profile.py SubscriptionFinder).
    """

    protocol_version = "HTTP/1.1"
    base = ""
    log_file = None

    def log_message(self, fmt, *args):
        if self.log_file:
            with open(self.log_file, "a") as f:
                f.write("%s\n" % (fmt % args))

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path.rstrip("/")
        t = "%s/%s" % (self.base, TENANT)
        if path == "/%s/v2.0/.well-known/openid-configuration" % TENANT:
            return self.reply(200, {
                "issuer": t + "/v2.0",
                "authorization_endpoint": t + "/oauth2/v2.0/authorize",
                "token_endpoint": t + "/oauth2/v2.0/token",
                "device_authorization_endpoint": t + "/oauth2/v2.0/devicecode",
                "jwks_uri": t + "/discovery/v2.0/keys",
                "response_types_supported": ["code", "token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "tenant_region_scope": "WW",
            })
        if path == "/subscriptions":
            return self.reply(200, {"value": [{
                "id": "/subscriptions/" + SUBSCRIPTION, "subscriptionId": SUBSCRIPTION,
                "tenantId": TENANT, "displayName": "cloudimg-test", "state": "Enabled",
                "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01",
                                         "quotaId": "PayAsYouGo_2014-09-01",
                                         "spendingLimit": "Off"},
                "authorizationSource": "RoleBased"}]})
        if path == "/tenants":
            return self.reply(200, {"value": [{"id": "/tenants/" + TENANT, "tenantId": TENANT,
                                               "tenantCategory": "Home"}]})
        self.reply(404, {"error": {"code": "NotFound", "message": self.path}})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        form = dict(urllib.parse.parse_qsl(self.rfile.read(n).decode()))
        if self.path.split("?")[0] != "/%s/oauth2/v2.0/token" % TENANT:
            return self.reply(404, {"error": "not_found"})
        if form.get("grant_type") != "client_credentials":
            return self.reply(400, {"error": "unsupported_grant_type"})
        if form.get("client_id") != APP_ID or form.get("client_secret") != SECRET:
            return self.reply(401, {"error": "invalid_client",
                                    "error_description": "AADSTS7000215: Invalid client secret."})
        scope = form.get("scope", "").split()[0] if form.get("scope") else ""
        audience = scope[:-len("/.default")] if scope.endswith("/.default") else scope
        self.reply(200, {"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600,
                         "access_token": token(audience)})


class Proxy(BaseHTTPRequestHandler):
    """An HTTP CONNECT proxy (az honours HTTPS_PROXY: requests, under
    azure-core and MSAL) that takes `ACCOUNT.blob.SUFFIX:443` to Azurite
    and refuses every other host, so nothing leaves 127.0.0.1."""

    azurite_port = 0

    def log_message(self, fmt, *args):
        pass

    def do_CONNECT(self):
        host, _, port = self.path.rpartition(":")
        if host != "%s.blob.%s" % (ACCOUNT, SUFFIX) or port != "443":
            self.send_error(403, "only %s.blob.%s:443 is proxied" % (ACCOUNT, SUFFIX))
            return
        up = socket.create_connection(("127.0.0.1", self.azurite_port))
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        pair = [self.connection, up]
        try:
            while True:
                ready, _, _ = select.select(pair, [], [], 60)
                if not ready:
                    break
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (up if s is self.connection else self.connection).sendall(data)
        finally:
            up.close()
            self.close_connection = True


def login(state, azurite_port, cert, key):
    """The local Azure AD, Resource Manager and proxy; their JSON."""
    aad, base = tls.serve_https(Aad, cert, key)
    Aad.base = base
    Aad.log_file = os.path.join(state, "aad.log")
    Proxy.azurite_port = azurite_port
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    return {"aad": base, "arm": base + "/", "proxy": "http://127.0.0.1:%d" % proxy.server_address[1],
            "ca_bundle": cert, "tenant": TENANT, "subscription": SUBSCRIPTION,
            "app_id": APP_ID, "secret": SECRET, "storage_suffix": SUFFIX}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state", required=True)
    ap.add_argument("--faults", default="")
    ap.add_argument("--login", action="store_true",
                    help="HTTPS, OAuth, a local Azure AD and proxy (for --auth-mode login)")
    a = ap.parse_args()
    os.makedirs(a.state, exist_ok=True)
    state = os.path.realpath(a.state)
    cert_key = None
    if a.login:
        names = ["%s.blob.%s" % (ACCOUNT, SUFFIX), "*.blob.%s" % SUFFIX]
        cert_key = tls.self_signed(state, "", names)
    proc, port = start_azurite(state, cert_key)
    scheme = "https" if a.login else "http"
    url = "%s://127.0.0.1:%d/%s" % (scheme, port, ACCOUNT)
    conn = ("DefaultEndpointsProtocol=%s;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;"
            % (scheme, ACCOUNT, KEY, url))
    out = {"blob": url, "account": ACCOUNT, "key": KEY, "connection_string": conn}
    if a.login:
        out["login"] = login(state, port, *cert_key)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    print(json.dumps(out), flush=True)
    done.wait()
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


if __name__ == "__main__":
    main()
