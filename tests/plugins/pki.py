"""A throwaway test CA with a server certificate (for 127.0.0.1) and a client certificate
whose key is encrypted, made with the ``openssl`` command line tool."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

DAYS = "3"


@dataclass(frozen=True)
class Pki:
    """The files a TLS test needs (all PEM)."""

    ca: Path  # the CA certificate: clients' and broker's trust store
    server_keystore: Path  # server private key (unencrypted PKCS#8) + certificate
    client_cert: Path
    client_key: Path  # encrypted with ``client_key_password``
    client_key_password: str


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()[-500:]}")


def _sign(directory: Path, name: str, extensions: str) -> None:
    (directory / f"{name}.ext").write_text(extensions, encoding="ascii")
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", DAYS, "-sha256",
        "-extfile", f"{name}.ext",
        cwd=directory,
    )  # fmt: skip


def make_pki(directory: Path, key_password: str = "client-key-pass") -> Pki:
    """Create the CA, server and client files in ``directory`` (overwritten)."""
    if shutil.which("openssl") is None:
        raise FileNotFoundError("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", DAYS, "-subj", "/CN=Newswire test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1",
        cwd=directory,
    )  # fmt: skip
    _sign(
        directory,
        "server",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    keystore = directory / "server-keystore.pem"
    keystore.write_text(
        (directory / "server.key").read_text() + (directory / "server.pem").read_text()
    )
    _openssl(
        "req", "-newkey", "rsa:2048", "-keyout", "client.key", "-passout",
        f"pass:{key_password}", "-out", "client.csr", "-subj", "/CN=newswire-client",
        cwd=directory,
    )  # fmt: skip
    _sign(directory, "client", "extendedKeyUsage=clientAuth\n")
    for name in ("ca.key", "server.key", "client.key", "server-keystore.pem"):
        (directory / name).chmod(0o600)
    return Pki(
        ca=directory / "ca.pem",
        server_keystore=keystore,
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        client_key_password=key_password,
    )


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA, server and client certificates for the session (needs openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: it makes the test CA and certificates")
    return make_pki(tmp_path_factory.mktemp("pki"))
