"""Queues on a WebDAV server, with nothing but the standard library.

WebDAV has what the delivery rules need:

* ``MOVE`` with ``Overwrite: F`` is a create-only rename (412 when the target
  exists): upload to ``jobs/tmp-NAME.tmp``, then move it to its job name;
* ``PUT``/``DELETE`` with ``If-None-Match: *`` and ``If-Match: ETAG`` are the
  conditional writes :mod:`spooler.lease` needs for the processing lock;
* an exclusive ``LOCK`` makes those checks atomic: servers (wsgidav among
  them) evaluate ``Overwrite`` and ``If-*`` and then act, so two requests can
  both pass the check.  Each check-then-act runs holding a WebDAV lock on the
  queue's claim resource (``.claim`` beside ``jobs/``), which the server's
  lock manager grants to one client at a time.  The resource is created on
  first use and never deleted: with a claim per name, deleted after use, a
  holder's DELETE could remove the resource while another client's LOCK was
  between granting and answering, and wsgidav then answered 500 and kept an
  orphan lock until it expired;
* ``GET`` with ``Range`` reads just a header.
"""

from __future__ import annotations

import base64
import http.client
import re
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import BinaryIO
from urllib.parse import quote, unquote, urlsplit

from spooler.delivery import StagedTransport
from spooler.errors import SpoolError, append_only, no_queue
from spooler.layout import SEQ_NAME, SEQ_TEMP_NAME
from spooler.lease import DEFAULT_TTL, Conflict, LeaseStore, LockCopy, hold, holder
from spooler.plugin import Capability, Option, SequencePeek, SequenceState, parse_options
from spooler.seqfile import parse_seq
from spooler.streams import spooled_upload

LOCK_NAME = "nextseq.dav-lock"
CLAIM_NAME = ".claim"
LOCK_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:">'
    b"<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
    b"</D:lockinfo>"
)
CLAIM_SECONDS = 60  # the server drops a claim whose holder died after this
OPTIONS = (
    Option("user"),
    Option("password"),
    Option("lock_ttl", "seconds", DEFAULT_TTL, minimum=1),
    Option("timeout", "seconds", 60.0, minimum=0.1),
)


class WebDAVTransport(StagedTransport):
    """A queue collection on a WebDAV server."""

    capabilities = frozenset(
        {
            Capability.PROCESS,
            Capability.CREATE_ONLY,
            Capability.CONCURRENT_HEADERS,
            Capability.LEASE,
        }
    )

    def __init__(self, location: str, options: Mapping[str, str]) -> None:
        super().__init__(location)
        parts = urlsplit(location)
        if not parts.hostname:
            raise SpoolError(f"{location}: no host (webdav://HOST[:PORT]/PATH)")
        self.https = parts.scheme == "webdavs"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.root = "/" + parts.path.strip("/")
        user = options.get("user", unquote(parts.username or ""))
        password = options.get("password", unquote(parts.password or ""))
        self.auth = (
            "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode() if user else None
        )
        opts = parse_options("webdav", options, OPTIONS)
        self.timeout: float = opts["timeout"]
        self.lock_ttl: float = opts["lock_ttl"]
        self._local = threading.local()

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, str]) -> WebDAVTransport:
        return cls(url, options)

    # -- HTTP -------------------------------------------------------------------
    def _url_path(self, relative: str) -> str:
        return quote(f"{self.root.rstrip('/')}/{relative}")

    def _connection(self) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def request(
        self,
        method: str,
        relative: str,
        body: bytes | BinaryIO | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> http.client.HTTPResponse:
        """One request; ``stream`` returns the unread response on its own connection."""
        all_headers = dict(headers or {})
        if self.auth:
            all_headers["Authorization"] = self.auth
        if body is not None and not isinstance(body, bytes):
            all_headers["Transfer-Encoding"] = "chunked"
        conn = self._connection() if stream else self._shared()
        try:
            conn.request(
                method,
                self._url_path(relative),
                body=body,
                headers=all_headers,
                encode_chunked=body is not None and not isinstance(body, bytes),
            )
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self._local.conn = None
            raise SpoolError(f"{self.location}: {method} failed: {exc}") from None
        if not stream:
            response.read()
        if response.status == 401:
            raise SpoolError(f"{self.location}: authentication refused (401)")
        return response

    def _shared(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connection()
        return conn

    def expect(self, response: http.client.HTTPResponse, what: str, *ok: int) -> None:
        if response.status == 404:
            raise FileNotFoundError(what)
        if response.status not in ok:
            raise SpoolError(f"{self.location}: {what}: HTTP {response.status} {response.reason}")

    @contextmanager
    def claim(self) -> Iterator[None]:
        """Hold the exclusive WebDAV lock on ``.claim`` for one check-then-act.
        A claim held elsewhere (423) is waited for: its holder is one request
        away from done, or dead and expiring."""
        deadline = time.monotonic() + CLAIM_SECONDS + self.timeout
        while True:
            reply = self.request(
                "LOCK",
                CLAIM_NAME,
                body=LOCK_BODY,
                headers={"Depth": "0", "Timeout": f"Second-{CLAIM_SECONDS}"},
            )
            if reply.status != 423 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.expect(reply, f"LOCK {CLAIM_NAME}", 200, 201)
        token = re.sub(r"^<|>$", "", reply.getheader("Lock-Token") or "")
        try:
            yield
        finally:
            self.request("UNLOCK", CLAIM_NAME, headers={"Lock-Token": f"<{token}>"})

    # -- jobs -------------------------------------------------------------------
    def list_names(self) -> list[str]:
        response = self.request("PROPFIND", "jobs/", headers={"Depth": "1"}, stream=True)
        body = response.read()
        if response.status == 404:
            raise SpoolError(f'Reading queue directory "{self.location}/jobs": not found')
        self.expect(response, "PROPFIND jobs/", 207)
        own = self._url_path("jobs/").rstrip("/")
        names = []
        for href in ET.fromstring(body).iter("{DAV:}href"):
            path = urlsplit(href.text or "").path.rstrip("/")
            if path != own:
                names.append(unquote(path.rsplit("/", 1)[-1]))
        return names

    def open_job(self, name: str) -> BinaryIO:
        response = self.request("GET", f"jobs/{name}", stream=True)
        if response.status != 200:
            response.read()
            self.expect(response, f"GET jobs/{name}", 200)
        return response

    def read_prefixes(
        self, names: Iterable[str], size: int
    ) -> Iterator[tuple[str, bytes | OSError]]:
        def head(name: str) -> tuple[str, bytes | OSError]:
            response = self.request(
                "GET", f"jobs/{name}", headers={"Range": f"bytes=0-{size - 1}"}, stream=True
            )
            data = response.read(size)
            response.close()
            if response.status not in (200, 206):
                return name, FileNotFoundError(name) if response.status == 404 else OSError(
                    f"HTTP {response.status}"
                )
            return name, data

        with ThreadPoolExecutor(4) as pool:
            yield from pool.map(head, list(names))

    # -- delivery (spooler.delivery's protocol) ----------------------------------
    def write_staged(self, temp: str, source: BinaryIO, progress: Callable[[int], None]) -> None:
        if self.request("PROPFIND", "jobs/", headers={"Depth": "0"}).status == 404:
            raise no_queue(self.location)
        self.expect(self.request("PUT", f"jobs/{temp}", body=source), f"PUT {temp}", 200, 201, 204)

    def publish(self, temp: str, final: str) -> None:
        """``MOVE`` with ``Overwrite: F`` under the queue's claim: the server
        refuses to replace (412)."""
        with self.claim():
            moved = self.request(
                "MOVE",
                f"jobs/{temp}",
                headers={"Destination": self._url_path(f"jobs/{final}"), "Overwrite": "F"},
            )
        if moved.status == 412:
            raise FileExistsError(final)
        self.expect(moved, f"MOVE {temp}", 201, 204)

    def discard(self, temp: str) -> None:
        try:
            self.request("DELETE", f"jobs/{temp}")
        except Exception:  # cleanup must not hide the first failure
            pass

    def delete(self, name: str) -> None:
        self.expect(self.request("DELETE", f"jobs/{name}"), f"DELETE jobs/{name}", 200, 204)

    def open_output(self, name: str) -> AbstractContextManager[BinaryIO]:
        def upload(spool: BinaryIO) -> None:
            reply = self.request("PUT", f"jobs/{name}", body=spool)
            self.expect(reply, f"PUT jobs/{name}", 200, 201, 204)

        return spooled_upload(upload)

    # -- structure and sequence ----------------------------------------------------
    def init(self, append_only: bool = False) -> None:
        created = self.request("MKCOL", "")
        if created.status == 405:
            raise SpoolError(f'Queue "{self.location}" already exists')
        self.expect(created, "MKCOL", 201)
        self.expect(self.request("MKCOL", "jobs/"), "MKCOL jobs/", 201)
        if not append_only:
            self.expect(self.request("PUT", SEQ_NAME, body=b"1\n"), "PUT nextseq", 201, 204)

    def is_append_only(self) -> bool:
        if self.request("HEAD", SEQ_NAME).status != 404:
            return False
        if self.request("PROPFIND", "jobs/", headers={"Depth": "0"}).status == 404:
            raise no_queue(self.location)
        return True

    @cached_property
    def lock_store(self) -> DAVLockStore:
        return DAVLockStore(self)

    def lock_sequence(self) -> AbstractContextManager[SequenceState]:
        if self.is_append_only():
            raise append_only(self.location)
        return hold(self.lock_store, self.location, self.lock_ttl, self._read_seq, self._write_seq)

    def peek_sequence(self) -> SequencePeek:
        doc = holder(self.lock_store)
        who = None if doc is None else f"{doc.get('host', '?')} (pid {doc.get('pid', '?')})"
        return SequencePeek(self._read_seq(), who)

    def _read_seq(self) -> int:
        response = self.request("GET", SEQ_NAME, stream=True)
        body = response.read()
        self.expect(response, "GET nextseq", 200)
        return parse_seq(body.decode("ascii", "replace"), self.location)

    def _write_seq(self, value: int) -> None:
        temp = SEQ_TEMP_NAME
        self.expect(self.request("PUT", temp, body=b"%d\n" % value), "PUT", 201, 204)
        moved = self.request(
            "MOVE", temp, headers={"Destination": self._url_path(SEQ_NAME), "Overwrite": "T"}
        )
        self.expect(moved, "MOVE nextseq", 201, 204)


class DAVLockStore(LeaseStore):
    """``nextseq.dav-lock`` with WebDAV's conditional requests: ``PUT
    If-None-Match: *`` creates it, ``If-Match: ETAG`` replaces or deletes it
    only if unchanged, and its age is the server's ``Date`` minus its
    ``Last-Modified`` (the server's clock only)."""

    def __init__(self, t: WebDAVTransport) -> None:
        self.t = t

    def create(self, body: bytes) -> str:
        with self.t.claim():
            reply = self.t.request("PUT", LOCK_NAME, body=body, headers={"If-None-Match": "*"})
        if reply.status == 412:
            raise FileExistsError(LOCK_NAME)
        self.t.expect(reply, "PUT lock", 200, 201, 204)
        return reply.getheader("ETag") or ""

    def read(self) -> LockCopy | None:
        response = self.t.request("GET", LOCK_NAME, stream=True)
        body = response.read()
        if response.status == 404:
            return None
        self.t.expect(response, "GET lock", 200)
        return LockCopy(body, response.getheader("ETag") or "", _server_age(response))

    def _conditional(self, method: str, version: str, body: bytes | None = None) -> str:
        with self.t.claim():
            reply = self.t.request(method, LOCK_NAME, body=body, headers={"If-Match": version})
        if reply.status == 412:
            raise Conflict(LOCK_NAME)
        self.t.expect(reply, f"{method} lock", 200, 201, 204)
        return reply.getheader("ETag") or ""

    def replace(self, body: bytes, version: str) -> str:
        etag = self._conditional("PUT", version, body)
        if etag:
            return etag
        current = self.read()  # servers that do not answer PUT with an ETag
        if current is None:
            raise FileNotFoundError(LOCK_NAME)
        return current.version

    def delete(self, version: str) -> None:
        try:
            self._conditional("DELETE", version)
        except FileNotFoundError:
            pass


def _server_age(response: http.client.HTTPResponse) -> float | None:
    date, modified = response.getheader("Date"), response.getheader("Last-Modified")
    if not date or not modified:
        return None
    try:
        return (parsedate_to_datetime(date) - parsedate_to_datetime(modified)).total_seconds()
    except (TypeError, ValueError):
        return None
