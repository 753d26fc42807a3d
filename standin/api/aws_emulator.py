#!/usr/bin/env python3
"""A local AWS for the real `aws` CLI: moto's server (S3, STS, and the EC2
Actions we do not answer) and our EC2 endpoint in front of it (ec2.py),
both on 127.0.0.1 at free ports.

    aws_emulator.py --state DIR [--faults SPEC]

prints one JSON line {"moto": URL, "ec2": URL} once both listen, then
serves until its standard input closes (the test that started it ended,
however it ended) or SIGTERM; on the way out every QEMU is stopped.

Point the CLI at it with AWS_ENDPOINT_URL=<moto> and
AWS_ENDPOINT_URL_EC2=<ec2> (botocore >= 1.31 reads both; awscli v1
1.29+). Control endpoints on the EC2 URL:

    GET  /_standin/leftovers   JSON list of every resource still held
                               (ours, QEMUs, and moto's S3 objects)
    POST /_standin/faults      replace the fault spec (faults.py)
"""

import http.client
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

import ec2query  # noqa: E402
from ec2 import ApiError, Ec2  # noqa: E402
import emulator_main  # noqa: E402
from faults import Faults  # noqa: E402

#: Dummy credentials moto accepts (it checks none).
CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
         "region_name": "us-east-1"}


class Handler(BaseHTTPRequestHandler):
    """One HTTP request to our EC2 endpoint."""

    protocol_version = "HTTP/1.1"
    ec2 = None  # set on the class by serve()
    moto = None  # (host, port)

    def log_message(self, fmt, *args):  # quiet: the CLI's stderr is enough
        pass

    def send(self, status, body, ctype="text/xml;charset=UTF-8"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        if self.path == "/_standin/leftovers":
            left = self.ec2.leftovers() + moto_leftovers(self.ec2.s3)
            return self.send(200, json.dumps(left).encode(), "application/json")
        self.send(404, b"")

    def do_POST(self):
        raw = self.body()
        if self.path == "/_standin/faults":
            self.ec2.faults.set(raw.decode())
            return self.send(200, b"{}", "application/json")
        params = dict(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True))
        action = params.get("Action", "")
        try:
            self.inject(action)
            if action in Ec2.OWN:
                req = ec2query.parse_request(action, params)
                out = self.ec2.handle(action, req)
                self.lost(action)
                return self.send(200, ec2query.response_xml(action, out))
        except ApiError as e:
            return self.send(e.status, ec2query.error_xml(e.code, e.message))
        self.forward(raw)

    def lost(self, action):
        """Fault lost-response=OP: the call was done, but its answer is
        lost on the way back and the client sees a 500."""
        if self.ec2.faults.due("lost-response", action):
            raise ApiError(500, "InternalError", "An internal error has occurred (injected "
                           "after the request was carried out)")

    def inject(self, action):
        f = self.ec2.faults
        if f.due("transient", action):
            raise ApiError(500, "InternalError", "An internal error has occurred (injected)")
        if f.due("unavailable", action):
            raise ApiError(503, "Unavailable", "The server is overloaded and can't handle "
                           "the request (injected)")
        if f.due("throttle", action):
            raise ApiError(503, "RequestLimitExceeded", "Request limit exceeded.")
        if action in f.ops("permission"):
            # Client error table of "Error codes for the Amazon EC2 API"
            # (docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html);
            # the message is what the API returns without an encoded
            # authorization message [U: exact wording unconfirmed].
            raise ApiError(403, "UnauthorizedOperation",
                           "You are not authorized to perform this operation.")
        if action in f.ops("quota"):
            # VcpuLimitExceeded: "You've reached the limit on the number of
            # vCPUs ... assigned to the running instances in your account"
            # (the same error code table; message wording [U]).
            raise ApiError(400, "VcpuLimitExceeded", "You have requested more vCPU capacity "
                           "than your current vCPU limit of 0 allows for the instance bucket "
                           "that the specified instance type belongs to. Please visit "
                           "http://aws.amazon.com/contact-us/ec2-request to request an "
                           "adjustment to this limit.")

    def forward(self, raw):
        """Send the request to moto as it came; answer with moto's answer."""
        conn = http.client.HTTPConnection(*self.moto, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        conn.request("POST", self.path, body=raw, headers=headers)
        r = conn.getresponse()
        data = r.read()
        self.send(r.status, data, r.getheader("Content-Type", "text/xml"))
        conn.close()


def moto_leftovers(s3):
    """Every object in moto's S3 buckets."""
    out = []
    for b in s3.list_buckets().get("Buckets", []):
        for o in s3.list_objects_v2(Bucket=b["Name"]).get("Contents", []):
            out.append("s3 object s3://%s/%s" % (b["Name"], o["Key"]))
    return out


def serve(state, faults_spec):
    """Start moto and our endpoint; returns (moto url, ec2 url, shutdown)."""
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    mhost, mport = moto.get_host_and_port()
    moto_url = "http://%s:%d" % (mhost, mport)
    os.environ["CLOUDIMG_STANDIN_STATE"] = state  # standin/lib's state root
    s3 = boto3.client("s3", endpoint_url=moto_url, **CREDS)
    Handler.ec2 = Ec2(state, Faults(faults_spec), s3)
    Handler.moto = (mhost, mport)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def shutdown():
        Handler.ec2.shutdown()
        httpd.shutdown()
        moto.stop()

    return moto_url, "http://127.0.0.1:%d" % httpd.server_address[1], shutdown


def main():
    emulator_main.run(__doc__.split("\n")[0], serve, ("moto", "ec2"))


if __name__ == "__main__":
    main()
