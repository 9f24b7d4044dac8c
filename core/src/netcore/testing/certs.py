"""Certificates made at test time: a test CA, a server certificate, client certificates.

Nothing here is ever written into the repository: :func:`make_test_pki` writes PEM files
into a directory the caller owns (pytest's ``tmp_path``). Uses the ``cryptography``
package, which the TLS tests need (tox.ini's deps); it is imported only when called.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import attrs


@attrs.frozen
class TestPKI:
    """Paths of the PEM files :func:`make_test_pki` wrote."""

    __test__ = False  # not a pytest test class

    ca_cert: Path
    server_cert: Path
    server_key: Path
    #: A client certificate signed by the CA, and its key.
    client_cert: Path
    client_key: Path
    #: Signed by the CA but expired yesterday.
    expired_cert: Path
    expired_key: Path
    #: Self-signed by a CA the server does not know.
    stranger_cert: Path
    stranger_key: Path
    #: The server's key encrypted with ``key_password``.
    server_key_encrypted: Path
    key_password: str = "test-password"


def make_test_pki(directory: Path) -> TestPKI:
    """A CA, a server certificate for localhost/127.0.0.1/::1, and client certificates."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory = Path(directory)
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "netcore tests"),
                          x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def write_key(path: Path, private: ec.EllipticCurvePrivateKey, password: str | None = None) -> Path:
        encryption = (serialization.BestAvailableEncryption(password.encode()) if password
                      else serialization.NoEncryption())
        path.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               encryption))
        return path

    def write_cert(path: Path, cert: x509.Certificate) -> Path:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    def ca(common: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        private = key()
        cert = (x509.CertificateBuilder().subject_name(name(common)).issuer_name(name(common))
                .public_key(private.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - day).not_valid_after(now + 30 * day)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(private.public_key()), critical=False)
                .sign(private, hashes.SHA256()))
        return cert, private

    def leaf(common: str, issuer: tuple, usage, *, expired: bool = False, san: bool = False):
        issuer_cert, issuer_key = issuer
        private = key()
        start, end = (now - 10 * day, now - day) if expired else (now - day, now + 30 * day)
        builder = (x509.CertificateBuilder().subject_name(name(common)).issuer_name(issuer_cert.subject)
                   .public_key(private.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                  critical=False))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256()), private

    the_ca = ca("netcore test CA")
    server, server_key = leaf("localhost", the_ca, ExtendedKeyUsageOID.SERVER_AUTH, san=True)
    client, client_key = leaf("alice", the_ca, ExtendedKeyUsageOID.CLIENT_AUTH)
    expired, expired_key = leaf("old-bob", the_ca, ExtendedKeyUsageOID.CLIENT_AUTH, expired=True)
    stranger_ca = ca("someone else's CA")
    stranger, stranger_key = leaf("mallory", stranger_ca, ExtendedKeyUsageOID.CLIENT_AUTH)
    d = directory
    return TestPKI(
        ca_cert=write_cert(d / "ca.pem", the_ca[0]),
        server_cert=write_cert(d / "server.pem", server),
        server_key=write_key(d / "server.key", server_key),
        client_cert=write_cert(d / "client.pem", client),
        client_key=write_key(d / "client.key", client_key),
        expired_cert=write_cert(d / "expired.pem", expired),
        expired_key=write_key(d / "expired.key", expired_key),
        stranger_cert=write_cert(d / "stranger.pem", stranger),
        stranger_key=write_key(d / "stranger.key", stranger_key),
        server_key_encrypted=write_key(d / "server-encrypted.key", server_key, "test-password"),
    )


__all__ = ["TestPKI", "make_test_pki"]
