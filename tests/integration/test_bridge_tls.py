"""Mutual TLS with the hospital CA: no client certificate, no connection (I.5, I.6).

A throwaway CA issues the bridge's server certificate (for 127.0.0.1) and the HIS's
client certificate; the bearer token still decides what the client may read.
"""

from __future__ import annotations

import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.unit.test_bridge_support import documented_store
from xmpp_clinic.bridge.api import BridgeContext
from xmpp_clinic.bridge.http import HttpBridge
from xmpp_clinic.settings.bridge import BridgeSettings

pytestmark = pytest.mark.requirement("I.5", "I.6")

NOW = datetime.now(UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    folder: Path,
    stem: str,
    cn: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    usage: x509.ObjectIdentifier | None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer[0].subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(minutes=5))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{stem}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


async def test_mutual_tls_requires_a_client_certificate_from_the_hospital_ca(
    tmp_path: Path,
) -> None:
    ca = _issue(tmp_path, "ca", "Hospital CA", None, None)
    _issue(tmp_path, "bridge", "bridge", ca, ExtendedKeyUsageOID.SERVER_AUTH)
    _issue(tmp_path, "his", "HIS", ca, ExtendedKeyUsageOID.CLIENT_AUTH)
    store, copies = await documented_store(tmp_path / "clinic.db")
    settings = BridgeSettings(
        enabled=True,
        listen="127.0.0.1:0",
        tls_cert=tmp_path / "bridge.pem",
        tls_key=tmp_path / "bridge.key",
        tls_client_ca=tmp_path / "ca.pem",
    )
    bridge = HttpBridge(settings, BridgeContext(store, copies))
    await bridge.start()
    url = f"https://127.0.0.1:{bridge.port}/fhir/metadata"
    try:
        with_cert = ssl.create_default_context(cafile=tmp_path / "ca.pem")
        with_cert.load_cert_chain(tmp_path / "his.pem", tmp_path / "his.key")
        async with httpx.AsyncClient(verify=with_cert) as client:
            assert (await client.get(url)).status_code == 200
        without = ssl.create_default_context(cafile=tmp_path / "ca.pem")
        async with httpx.AsyncClient(verify=without) as client:
            with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
                await client.get(url)
    finally:
        await bridge.stop()
        await store.close()
