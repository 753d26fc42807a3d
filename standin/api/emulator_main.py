"""The command line both emulators share: start the servers on
127.0.0.1, print their base URLs as one JSON line, and serve until stdin
closes or SIGTERM arrives."""

import argparse
import json
import os
import signal
import sys
import threading


def run(description, serve, names):
    """`serve(state, faults)` returns one URL per name in `names`, then
    its shutdown function; they are printed as {name: url}."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--state", required=True)
    ap.add_argument("--faults", default=os.environ.get("CLOUDIMG_API_FAULTS", ""))
    a = ap.parse_args()
    os.makedirs(a.state, exist_ok=True)
    *urls, shutdown = serve(os.path.realpath(a.state), a.faults)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    print(json.dumps(dict(zip(names, urls))), flush=True)
    done.wait()
    shutdown()
