"""HTTPS on 127.0.0.1 for the CLIs that speak only HTTPS to what the
emulators serve (gsutil's JSON API client; az with `--auth-mode login`,
whose Azure AD and Azurite token checks need TLS): a throwaway
self-signed certificate (with the venv's `cryptography`) and a threaded
server wrapped in TLS."""

import datetime
import ipaddress
import os
import ssl
import threading
from http.server import ThreadingHTTPServer


def self_signed(state, prefix, dns_names=()):
    """A key and a self-signed certificate for 127.0.0.1 (subjectAltName
    IP:127.0.0.1, what Python's ssl and httplib2 match an IP host
    against) and for `dns_names`, written under `state` as
    PREFIXcert.pem and PREFIXkey.pem; returns (cert path, key path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    alt += [x509.DNSName(n) for n in dns_names]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path = os.path.join(state, prefix + "cert.pem")
    key_path = os.path.join(state, prefix + "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


def serve_https(handler, cert, key):
    """`handler` served over HTTPS on a free port of 127.0.0.1 in a daemon
    thread; returns (server, base URL)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, "https://127.0.0.1:%d" % server.server_address[1]
