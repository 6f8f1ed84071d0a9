"""Queues on a WebDAV server, with nothing but the standard library.

WebDAV has what the delivery rules need:

* ``MOVE`` with ``Overwrite: F`` is a create-only rename (412 when the target
  exists): upload to ``jobs/tmp-NAME.tmp``, then move it to its job name;
* ``PUT`` with ``If-None-Match: *`` is an exclusive create, used for the
  processing lock;
* ``GET`` with ``Range`` reads just a header.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, BinaryIO
from urllib.parse import quote, unquote, urlsplit

from spooler.errors import LockError, SpoolError, append_only
from spooler.ids import new_job_name
from spooler.lease import HeartbeatLock, hold
from spooler.seqfile import parse_seq
from spooler.transport import Capability, SequenceState, Transport, spooled_upload

LOCK_NAME = "nextseq.dav-lock"
SEQ_NAME = "nextseq"
DEFAULT_LOCK_TTL = 120.0
OPTIONS = ("user", "password", "lock_ttl", "timeout")


class WebDAVTransport(Transport):
    """A queue collection on a WebDAV server."""

    capabilities = frozenset(
        {Capability.PROCESS, Capability.CREATE_ONLY, Capability.CONCURRENT_HEADERS}
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
        self.timeout = float(options.get("timeout", 60))
        self.lock_ttl = float(options.get("lock_ttl", DEFAULT_LOCK_TTL))
        self._local = threading.local()

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, str]) -> WebDAVTransport:
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise SpoolError(f"Unknown webdav options: {', '.join(sorted(unknown))}")
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

    def _expect(self, response: http.client.HTTPResponse, what: str, *ok: int) -> None:
        if response.status == 404:
            raise FileNotFoundError(what)
        if response.status not in ok:
            raise SpoolError(f"{self.location}: {what}: HTTP {response.status} {response.reason}")

    # -- jobs -------------------------------------------------------------------
    def list_names(self) -> list[str]:
        response = self.request("PROPFIND", "jobs/", headers={"Depth": "1"}, stream=True)
        body = response.read()
        if response.status == 404:
            raise SpoolError(f'Reading queue directory "{self.location}/jobs": not found')
        self._expect(response, "PROPFIND jobs/", 207)
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
            self._expect(response, f"GET jobs/{name}", 200)
        return response  # type: ignore[return-value]

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

    def deliver(self, source: BinaryIO, name: str | None = None) -> str:
        """PUT to a temporary name, then a create-only MOVE to the job name."""
        name = name or new_job_name()
        temp = f"jobs/tmp-{name}.tmp"
        try:
            self._expect(self.request("PUT", temp, body=source), f"PUT {temp}", 200, 201, 204)
            moved = self.request(
                "MOVE",
                temp,
                headers={"Destination": self._url_path(f"jobs/{name}"), "Overwrite": "F"},
            )
            if moved.status == 412:
                raise FileExistsError(name)
            self._expect(moved, f"MOVE {temp}", 201, 204)
        except BaseException:
            self._remove_quietly(temp)
            raise
        return name

    def _remove_quietly(self, relative: str) -> None:
        try:
            self.request("DELETE", relative)
        except Exception:  # cleanup must not hide the first failure
            pass

    def delete(self, name: str) -> None:
        self._expect(self.request("DELETE", f"jobs/{name}"), f"DELETE jobs/{name}", 200, 204)

    def open_output(self, name: str) -> AbstractContextManager[BinaryIO]:
        def upload(spool: BinaryIO) -> None:
            reply = self.request("PUT", f"jobs/{name}", body=spool)
            self._expect(reply, f"PUT jobs/{name}", 200, 201, 204)

        return spooled_upload(upload)

    # -- structure and sequence ----------------------------------------------------
    def init(self, append_only: bool = False) -> None:
        created = self.request("MKCOL", "")
        if created.status == 405:
            raise SpoolError(f'Queue "{self.location}" already exists')
        self._expect(created, "MKCOL", 201)
        self._expect(self.request("MKCOL", "jobs/"), "MKCOL jobs/", 201)
        if not append_only:
            self._expect(self.request("PUT", SEQ_NAME, body=b"1\n"), "PUT nextseq", 201, 204)

    def is_append_only(self) -> bool:
        return self.request("HEAD", SEQ_NAME).status == 404

    def lock_sequence(self) -> AbstractContextManager[SequenceState]:
        if self.is_append_only():
            raise append_only(self.location)
        return hold(_Lock(self), self._read_seq, self._write_seq)

    def _read_seq(self) -> int:
        response = self.request("GET", SEQ_NAME, stream=True)
        body = response.read()
        self._expect(response, "GET nextseq", 200)
        return parse_seq(body.decode("ascii", "replace"), self.location)

    def _write_seq(self, value: int) -> None:
        temp = f"{SEQ_NAME}.temp"
        self._expect(self.request("PUT", temp, body=b"%d\n" % value), "PUT", 201, 204)
        moved = self.request(
            "MOVE", temp, headers={"Destination": self._url_path(SEQ_NAME), "Overwrite": "T"}
        )
        self._expect(moved, "MOVE nextseq", 201, 204)


class _Lock(HeartbeatLock):
    """``PUT If-None-Match: *`` creates it exclusively; the heartbeat thread,
    the lost-lock check and the release come from :class:`HeartbeatLock`.

    Stale rule: a lock whose ``expires`` has passed may be deleted, with
    ``If-Match`` on the ETag we saw, so that two breakers cannot both win.
    """

    def __init__(self, t: WebDAVTransport) -> None:
        super().__init__(t.location, t.lock_ttl)
        self.t = t

    def _body(self) -> bytes:
        return json.dumps(self.document()).encode()

    def create(self) -> None:
        for _ in range(2):
            reply = self.t.request(
                "PUT", LOCK_NAME, body=self._body(), headers={"If-None-Match": "*"}
            )
            if reply.status in (200, 201, 204):
                return
            if reply.status != 412:
                self.t._expect(reply, "PUT lock", 201)
            holder = self._read()
            if holder is not None and float(holder[0].get("expires", 0)) > time.time():
                raise LockError(self.describe_holder(holder[0], f"its lock {LOCK_NAME}"))
            if holder is not None:
                headers = {"If-Match": holder[1]} if holder[1] else {}
                self.t.request("DELETE", LOCK_NAME, headers=headers)
        raise LockError(f"{self.t.location}: lost the race for the lock; try again")

    def _read(self) -> tuple[dict[str, Any], str] | None:
        """The lock's document and ETag; None when there is no lock."""
        response = self.t.request("GET", LOCK_NAME, stream=True)
        body = response.read()
        if response.status == 404:
            return None
        try:
            return json.loads(body), response.getheader("ETag") or ""
        except ValueError:
            return {}, response.getheader("ETag") or ""

    def refresh(self) -> None:
        current = self._read()
        if not current or current[0].get("owner") != self.token:
            raise SpoolError("the lock now belongs to another processor")
        self.t.request("PUT", LOCK_NAME, body=self._body(), headers={"If-Match": current[1]})

    def remove(self) -> None:
        self.t._remove_quietly(LOCK_NAME)
