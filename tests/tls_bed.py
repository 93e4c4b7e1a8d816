"""Real TLS for the tests: a throwaway CA (openssl) and nginx demanding client certificates."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from testbed.devserver import free_port, wait_port


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass
class Certs:
    ca: bytes
    server_cert: Path
    server_key: Path
    client_cert: bytes
    client_key: bytes
    ca_path: Path


def make_certs(directory: Path) -> Certs:
    """CA, a server cert for 127.0.0.1/localhost and a client cert, all signed by the CA."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=test-ca", "-keyout", "ca.key", "-out", "ca.pem", cwd=directory)
    common = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
    (directory / "server.ext").write_text(
        common + "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (directory / "client.ext").write_text(common + "extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=directory)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile",
                 f"{name}.ext", cwd=directory)
    return Certs(ca=(directory / "ca.pem").read_bytes(), server_cert=directory / "server.pem",
                 server_key=directory / "server.key",
                 client_cert=(directory / "client.pem").read_bytes(),
                 client_key=(directory / "client.key").read_bytes(),
                 ca_path=directory / "ca.pem")


class NginxGrpcProxy:
    """nginx terminating mTLS on a free port and proxying gRPC to the dev server (or, HTTP,
    its HTTP API)."""

    def __init__(self, directory: Path, certs: Certs, upstream_port: int,
                 http: bool = False) -> None:
        self.directory = directory
        self.port = free_port()
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.binary = binary
        (directory / "logs").mkdir(parents=True, exist_ok=True)
        self.conf = directory / "nginx.conf"
        self.conf.write_text(f"""
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {directory}/body;
  proxy_temp_path {directory}/proxy;
  fastcgi_temp_path {directory}/fastcgi;
  uwsgi_temp_path {directory}/uwsgi;
  scgi_temp_path {directory}/scgi;
  server {{
    listen 127.0.0.1:{self.port} ssl{"" if http else " http2"};
    ssl_certificate {certs.server_cert};
    ssl_certificate_key {certs.server_key};
    ssl_client_certificate {certs.ca_path};
    ssl_verify_client on;
    grpc_read_timeout 300s;
    grpc_send_timeout 300s;
    location / {{ {"proxy_pass http" if http else "grpc_pass grpc"}://127.0.0.1:{upstream_port}; }}
  }}
}}
""")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> NginxGrpcProxy:
        self.process = subprocess.Popen(
            [self.binary, "-p", str(self.directory), "-c", str(self.conf), "-g",
             "daemon off;"], stdout=subprocess.DEVNULL,
            stderr=open(self.directory / "logs" / "stderr.log", "wb"))
        wait_port(self.port, timeout=15)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
