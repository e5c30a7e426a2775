"""A real OpenLDAP ``slapd`` on loopback for directory sync tests (IV.2, I.3).

Debian's ``slapd`` package (``apt-get install -y slapd ldap-utils``, with a policy-rc.d
that keeps the system instance from starting) runs here from a private ``slapd.conf``:
an mdb database under the test's folder, a free port on 127.0.0.1, the stock schemas,
and a root DN that the fixture uses to load a small LDIF and to apply changes with
``ldapmodify`` between two syncs. Stopped by its own process id.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from xmpp_clinic.dev.servers.ports import LOOPBACK, free_port, port_open, wait_until

SLAPD = "/usr/sbin/slapd"
BASE_DN = "dc=hospital,dc=test"
ROOT_DN = f"cn=admin,{BASE_DN}"
ROOT_PASSWORD = "ldap-test-secret"
PEOPLE = f"ou=people,{BASE_DN}"

CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile {run}/slapd.pid
argsfile {run}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 10485760
suffix "{base}"
rootdn "{root}"
rootpw {password}
directory {run}/data
index objectClass eq
"""

TLS_CONF = """\
TLSCACertificateFile {ca}
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}
"""


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    ca_key, ca, key, csr, cert = (
        folder / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt")
    )

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=xmpp-clinic test CA",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        str(key),
        "-out",
        str(csr),
    )
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n", encoding="utf-8")
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        str(ext),
        "-out",
        str(cert),
    )
    return ca, cert, key


@dataclass
class Slapd:
    """A running slapd: its URL, and the root DN's tools for loading and changing entries."""

    url: str
    folder: Path
    process: subprocess.Popen[bytes]
    ldaps_url: str = ""
    ca_file: Path | None = None

    def _tool(self, tool: str, ldif: str) -> None:
        subprocess.run(
            [tool, "-x", "-H", self.url, "-D", ROOT_DN, "-w", ROOT_PASSWORD],
            input=ldif.encode(),
            check=True,
            capture_output=True,
            timeout=30,
        )

    def add(self, ldif: str) -> None:
        self._tool("ldapadd", ldif)

    def modify(self, ldif: str) -> None:
        """Apply an LDIF change record with ``ldapmodify`` (as an operator would)."""
        self._tool("ldapmodify", ldif)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def person_ldif(uid: str, name: str, mail: str, staff_id: str, role: str, *wards: str) -> str:
    """One inetOrgPerson; ``departmentNumber`` carries the groups (multi-valued)."""
    lines = [
        f"dn: uid={uid},{PEOPLE}",
        "objectClass: inetOrgPerson",
        f"uid: {uid}",
        f"cn: {name}",
        f"sn: {name.split()[-1]}",
        f"mail: {mail}",
        f"employeeNumber: {staff_id}",
        f"title: {role}",
        *(f"departmentNumber: {w}" for w in wards),
    ]
    return "\n".join(lines) + "\n\n"


def start_slapd(folder: Path, *, tls: bool = False) -> Slapd:
    """slapd on a free loopback port, with the base and ``ou=people`` entries.

    With ``tls`` it also serves LDAPS on a second port (``ldaps_url``) and StartTLS on
    the plain one, with a certificate from a test CA (``ca_file``).
    """
    if not Path(SLAPD).exists() or shutil.which("ldapadd") is None:
        pytest.fail("slapd / ldap-utils are not installed: apt-get install -y slapd ldap-utils")
    (folder / "data").mkdir(parents=True)
    conf = folder / "slapd.conf"
    text = CONF.format(run=folder, base=BASE_DN, root=ROOT_DN, password=ROOT_PASSWORD)
    listen = []
    ca_file: Path | None = None
    ldaps_url = ""
    if tls:
        ca_file, cert, key = make_certificates(folder)
        text = TLS_CONF.format(ca=ca_file, cert=cert, key=key) + text
        ldaps_url = f"ldaps://{LOOPBACK}:{free_port()}"
        listen.append(f"{ldaps_url}/")
    conf.write_text(text, encoding="utf-8")
    port = free_port()
    url = f"ldap://{LOOPBACK}:{port}"
    log = (folder / "slapd.log").open("wb")
    # -d 0: stay in the foreground (so the pid is ours) and log nothing but errors.
    process = subprocess.Popen(
        [SLAPD, "-f", str(conf), "-h", " ".join([f"{url}/", *listen]), "-d", "0"],
        stdout=log,
        stderr=log,
    )
    slapd = Slapd(url, folder, process, ldaps_url, ca_file)
    try:
        wait_until(lambda: port_open(LOOPBACK, port) or process.poll() is not None, 15)
        if process.poll() is not None:
            raise RuntimeError(f"slapd exited: {(folder / 'slapd.log').read_text()[-500:]}")
        slapd.add(
            f"dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\n"
            f"o: Hospital\ndc: hospital\n\n"
            f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n"
        )
    except BaseException:
        slapd.stop()
        raise
    return slapd


def ldap_section(slapd: Slapd) -> dict[str, object]:
    """The ``[directory]`` section a gateway uses to sync from ``slapd``."""
    password = slapd.folder / "bind.password"
    password.write_text(ROOT_PASSWORD + "\n", encoding="utf-8")
    password.chmod(0o600)
    return {
        "max_removal_share": 0.5,
        "ldap": {
            "url": slapd.url,
            "base_dn": PEOPLE,
            "bind_dn": ROOT_DN,
            "bind_password_file": str(password),
            "page_size": 2,  # several pages even for a small LDIF: paging is exercised
            "attributes": {"groups": "departmentNumber"},
        },
    }
