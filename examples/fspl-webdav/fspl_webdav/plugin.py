"""The plugin module: declares the transport, imports nothing heavy."""

from __future__ import annotations

from spooler.plugin import TransportSpec, provide

fspl_transports = provide(
    TransportSpec(
        name="webdav",
        schemes=("webdav", "webdavs"),
        factory="fspl_webdav.transport:WebDAVTransport",
        description="Queues on WebDAV servers (webdav://HOST:PORT/PATH; webdavs:// for HTTPS)",
        install_hint="fspl-webdav",
    )
)
