"""`mcp-notary export --format syslog` into a real rsyslogd (Debian's `rsyslog`, run in the
foreground with its own configuration, work directory and pid file under tmp_path).

rsyslog's imtcp receives the RFC 6587 octet-counted frames, its RFC 5424 parser splits each
message, mmpstrucdata parses the structured data, and an omfile action writes what rsyslog
parsed (its properties, as JSON) for the test to read. Over TLS, the same through rsyslog's
GnuTLS network stream driver (RFC 5425), with a test CA the exporter is told to trust.

`make test` installs rsyslog and rsyslog-gnutls; without them these tests skip (and fail
under CI)."""

from __future__ import annotations

import datetime
import glob
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from e2e_notary import Notary
from export_events import AWKWARD_METHOD, stored_bodies, write_varied_store
from factories import append, event

from mcp_notary.export.mapping import to_syslog
from mcp_notary.ledger.stores import open_store

SD_ID = "mcpNotary@32473"

# What rsyslog parsed, one JSON object per message: `ts` is its TIMESTAMP (RFC 3339), `wire`
# the header properties, MSG and the raw message, `rfc5424-sd` mmpstrucdata's parse of the
# structured data (names keep their case).
CONF = """\
global(workDirectory="{work}" maxMessageSize="64k" net.enableDNS="off"{tls_files})
module(load="imtcp"{tls_module})
module(load="mmpstrucdata")
template(name="parsed" type="string"
         string="{{\\"ts\\":\\"%timereported:::date-rfc3339%\\",\\"tree\\":%$!%}}\\n")
ruleset(name="export") {{
  action(type="mmpstrucdata" sd_name.lowercase="off")
  set $!wire!pri = $pri;
  set $!wire!facility = $syslogfacility;
  set $!wire!severity = $syslogseverity;
  set $!wire!protocol = $protocol-version;
  set $!wire!hostname = $hostname;
  set $!wire!app = $app-name;
  set $!wire!procid = $procid;
  set $!wire!msgid = $msgid;
  set $!wire!sd = $structured-data;
  set $!wire!msg = $msg;
  set $!wire!raw = $rawmsg;
  action(type="omfile" file="{out}" template="parsed")
}}
input(type="imtcp" port="0" listenPortFileName="{portfile}" ruleset="export")
"""


def _rsyslogd() -> str:
    found = shutil.which("rsyslogd") or shutil.which("rsyslogd", path="/usr/sbin:/sbin")
    if found is None:
        _unavailable("rsyslogd is not installed (Debian package rsyslog; `make test` installs it)")
    assert found is not None
    return found


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class Certs:
    ca: Path
    cert: Path
    key: Path


def make_certs(directory: Path) -> Certs:
    """A CA and a server certificate for 127.0.0.1 (IP SAN), valid for an hour."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcp-notary test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    certs = Certs(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    certs.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    certs.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    certs.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certs


class Rsyslogd:
    """One rsyslogd in the foreground (`-n`), listening on an ephemeral loopback port."""

    def __init__(self, directory: Path, certs: Certs | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        work = directory / "work"
        work.mkdir(exist_ok=True)
        self.out = directory / "parsed.jsonl"
        self.log = directory / "rsyslogd.log"
        portfile = directory / "port"
        tls_files = tls_module = ""
        if certs is not None:
            tls_files = (
                f' defaultNetstreamDriverCAFile="{certs.ca}"'
                f' defaultNetstreamDriverCertFile="{certs.cert}"'
                f' defaultNetstreamDriverKeyFile="{certs.key}"'
            )
            tls_module = ' streamDriver.name="gtls" streamDriver.mode="1"'
            tls_module += ' streamDriver.authMode="anon"'
        conf = directory / "rsyslog.conf"
        conf.write_text(
            CONF.format(
                work=work,
                out=self.out,
                portfile=portfile,
                tls_files=tls_files,
                tls_module=tls_module,
            )
        )
        rsyslogd = _rsyslogd()
        check = subprocess.run(
            [rsyslogd, "-N1", "-f", str(conf)], capture_output=True, timeout=30, check=False
        )
        assert check.returncode == 0, check.stderr.decode(errors="replace")
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [rsyslogd, "-n", "-f", str(conf), "-i", str(directory / "rsyslogd.pid")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 20
        while not (portfile.exists() and portfile.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.terminate()
                pytest.fail(f"rsyslogd did not start listening: {self.messages()}")
            time.sleep(0.05)
        self.port = int(portfile.read_text())

    def messages(self) -> str:
        """rsyslogd's own messages (errors, warnings) from its stdout and stderr."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def parsed(self) -> list[dict[str, Any]]:
        """What rsyslog wrote so far (complete lines only)."""
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().split("\n")[:-1]]

    def wait_for_message(self, text: str, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while text not in self.messages():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def wait_for(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.parsed()) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def stop(self) -> None:
        """SIGTERM, as a service manager would: rsyslogd drains its queues and exits 0."""
        self.terminate()
        assert self.proc.returncode == 0, self.messages()


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Callable[..., Rsyslogd]]:
    _rsyslogd()
    started: list[Rsyslogd] = []

    def start(name: str = "rsyslog", certs: Certs | None = None) -> Rsyslogd:
        daemon = Rsyslogd(tmp_path / name, certs)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.terminate()


def export_syslog(
    notary: Notary, store: Path, to: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*notary.argv, "export", "--format", "syslog", "--to", to, "--store", str(store)],
        env=notary.env(extra=extra_env),
        cwd=notary.home,
        capture_output=True,
        timeout=60,
        check=False,
    )


def exported_count(proc: subprocess.CompletedProcess[bytes]) -> int:
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    found = re.search(rb"(\d+) event\(s\) exported", proc.stderr)
    assert found, proc.stderr
    return int(found.group(1))


def expected_action(body: dict[str, Any]) -> str:
    """docs/export.md: the JSON-RPC method, else the kind (and lifecycle phase)."""
    phase = (body.get("details") or {}).get("phase")
    return str(body["method"] or (f"{body['kind']}.{phase}" if phase else body["kind"]))


def expected_severity(body: dict[str, Any]) -> int:
    """docs/export.md: 2 integrity alerts, 4 denied/auth/anomaly/unclean shutdown, 5 other
    failures, 6 otherwise."""
    phase = (body.get("details") or {}).get("phase")
    if body["kind"] == "integrity_alert":
        return 2
    if body["outcome"] == "denied" or body["kind"] in ("auth", "anomaly"):
        return 4
    if phase in ("ended_uncleanly", "spool_full"):
        return 4
    if body["outcome"] in ("tool_error", "protocol_error", "transport_error", "cancelled"):
        return 5
    return 6


def assert_rsyslog_parsed_every_event(
    parsed: list[dict[str, Any]], stored: list[dict[str, Any]]
) -> None:
    """Each stored event arrived exactly once, and rsyslog's RFC 5424 parse of it gives back
    the header, the structured data and the JSON MSG the exporter meant."""
    host = socket.gethostname()
    by_id = {body["event_id"]: body for body in stored}
    arrived: Counter[str] = Counter()
    for record in parsed:
        wire = record["tree"]["wire"]
        assert wire["protocol"] == "1", wire  # parsed as RFC 5424, not as BSD syslog
        assert wire["msg"].startswith("\ufeff"), wire["msg"][:40]
        body = json.loads(wire["msg"][1:])
        expected = by_id[body["event_id"]]
        arrived[body["event_id"]] += 1
        assert body == expected
        # The frame boundaries were right: rsyslog's raw message is exactly the record sent.
        assert wire["raw"].encode() == to_syslog(expected, host)
        assert (wire["hostname"], wire["app"], wire["procid"]) == (host, "mcp-notary", "-")
        assert wire["msgid"] == expected["kind"]
        assert wire["facility"] == "13"
        assert int(wire["severity"]) == expected_severity(expected), expected
        assert int(wire["pri"]) == 13 * 8 + expected_severity(expected)
        assert datetime.datetime.fromisoformat(record["ts"]) == datetime.datetime.fromisoformat(
            expected["timestamp"]
        )
        assert record["tree"]["rfc5424-sd"] == {
            SD_ID: {
                "eventId": expected["event_id"],
                "stream": expected["stream"],
                "seq": str(expected["seq"]),
                "action": expected_action(expected),
            }
        }
    assert arrived == Counter({event_id: 1 for event_id in by_id})


def test_rsyslog_parses_every_exported_message(
    notary: Notary, rsyslog: Callable[..., Rsyslogd], tmp_path: Path
) -> None:
    path = tmp_path / "audit.db"
    write_varied_store(path)
    store = open_store(str(path))
    try:
        append(store, "second", [event(f"tool{i}") for i in range(5)])
    finally:
        store.close()
    daemon = rsyslog()

    proc = export_syslog(notary, path, f"syslog+tcp://127.0.0.1:{daemon.port}")
    count = exported_count(proc)
    stored = stored_bodies(str(path))
    assert count == len(stored)  # the export's own audit_access event included
    daemon.wait_for(count)
    daemon.stop()  # flushes; anything sent twice would now be in the file too
    parsed = daemon.parsed()

    assert_rsyslog_parsed_every_event(parsed, stored)
    assert {b["kind"] for b in stored} >= {"call", "anomaly", "lifecycle", "integrity_alert"}
    actions = [r["tree"]["rfc5424-sd"][SD_ID]["action"] for r in parsed]
    assert AWKWARD_METHOD in actions  # `"`, `]` and `\` escaped and unescaped again
    assert max(len(r["tree"]["wire"]["raw"]) for r in parsed) > 20_000  # not cut at 8 KiB
    assert "error" not in daemon.messages().lower(), daemon.messages()


def _gtls_driver() -> None:
    if not any(glob.glob(f"/usr/lib/{sub}rsyslog/lmnsd_gtls.so") for sub in ("*/", "")):
        _unavailable(
            "rsyslog's GnuTLS driver is not installed (Debian package rsyslog-gnutls; "
            "`make test` installs it)"
        )


def test_rsyslog_over_tls(notary: Notary, rsyslog: Callable[..., Rsyslogd], tmp_path: Path) -> None:
    _gtls_driver()
    path = tmp_path / "audit.db"
    store = open_store(str(path))
    try:
        append(store, "s1", [event(f"tool{i}") for i in range(4)])
    finally:
        store.close()
    certs = make_certs(tmp_path)
    daemon = rsyslog("rsyslog-tls", certs)
    to = f"syslog+tls://127.0.0.1:{daemon.port}"

    # The exporter verifies the receiver's certificate: not trusted, nothing is sent.
    untrusted = export_syslog(notary, path, to)
    assert untrusted.returncode != 0
    assert b"CERTIFICATE_VERIFY_FAILED" in untrusted.stderr, untrusted.stderr
    assert daemon.wait_for_message("handshake"), daemon.messages()  # refused by the exporter
    refused = len(daemon.messages())

    count = exported_count(export_syslog(notary, path, to, {"SSL_CERT_FILE": str(certs.ca)}))
    stored = stored_bodies(str(path))
    assert count == len(stored) == 6  # 4 calls and the audit_access of each export
    daemon.wait_for(count)
    daemon.stop()

    assert_rsyslog_parsed_every_event(daemon.parsed(), stored)
    # The exporter ends its TLS session with close_notify (RFC 5425 4.4): rsyslog reports a
    # connection that just drops ("non-properly terminated") as an error.
    after = daemon.messages()[refused:]
    assert "error" not in after.lower(), after
