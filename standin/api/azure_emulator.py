#!/usr/bin/env python3
"""A local Azure Blob Storage for the real `az`: Azurite's blob service
(npm, installed by scripts/setup.sh into .venv/npm) on 127.0.0.1 at a free
port, with the storage account cloudimg's tests name (`caposimages`).

    azure_emulator.py --state DIR [--faults SPEC]

prints one JSON line {"blob": URL, "account": NAME, "key": KEY,
"connection_string": ...} once Azurite listens, then serves until its
standard input closes or SIGTERM, and stops Azurite. Faults are not
injected here (Azure compute has no emulator; see standin/api/README.md).

Azurite takes its accounts from AZURITE_ACCOUNTS ("name:key"; Azurite's
README, "Customized Storage Accounts & Keys"), answers path-style URLs
(`http://127.0.0.1:PORT/ACCOUNT/...`), and is run with
--disableTelemetry so that nothing leaves 127.0.0.1.
"""

import argparse
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

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


def start_azurite(state):
    port = free_port()
    root = os.path.join(state, "azurite")
    os.makedirs(root, exist_ok=True)
    env = dict(os.environ, AZURITE_ACCOUNTS="%s:%s" % (ACCOUNT, KEY))
    log = open(os.path.join(state, "azurite.log"), "wb")
    proc = subprocess.Popen([AZURITE, "--blobHost", "127.0.0.1", "--blobPort", str(port),
                             "--location", root, "--silent", "--skipApiVersionCheck",
                             "--disableTelemetry", "--disableProductStyleUrl"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    wait_listening(port, proc)
    return proc, "http://127.0.0.1:%d/%s" % (port, ACCOUNT)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state", required=True)
    ap.add_argument("--faults", default="")
    a = ap.parse_args()
    os.makedirs(a.state, exist_ok=True)
    proc, url = start_azurite(os.path.realpath(a.state))
    conn = ("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;"
            % (ACCOUNT, KEY, url))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    print(json.dumps({"blob": url, "account": ACCOUNT, "key": KEY,
                      "connection_string": conn}), flush=True)
    done.wait()
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


if __name__ == "__main__":
    main()
