"""An open job: header parsed, and a descriptor positioned at the payload.

Whatever the job came from (a local file, a remote stream, a decoder's
output) the result is one OS descriptor whose next byte is the first byte of
the payload.  A command can take that descriptor as its stdin directly, so
payloads are never copied through this process when the job is local:

* local file, no decoder: the file's own descriptor, after ``read_header``
  consumed exactly the header bytes;
* any stream without a descriptor: a :class:`~spooler.streams.Pump` thread
  feeds a pipe;
* with a decoder: ``$SHELL -c DECODER`` reads the job (file descriptor or
  pump pipe) and we read its stdout pipe.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, BinaryIO

from . import log
from .errors import HeaderError, SpoolError
from .packet import Header, read_header
from .streams import Pump, raw_fd

if TYPE_CHECKING:
    import subprocess

_log = log.Logger("spooler.jobsource")


def decoder_argv(decoder: str) -> list[str]:
    """The decoder runs under ``$SHELL -c`` (``/bin/sh`` when unset)."""
    return [os.environ.get("SHELL") or "/bin/sh", "-c", decoder]


class JobSource:
    """Context manager: ``.header`` and ``.fd`` (payload), cleaned up on exit."""

    def __init__(self, stream: BinaryIO, decoder: str | None = None) -> None:
        self._stream = stream
        self._pump: Pump | None = None
        self._decoder: subprocess.Popen[bytes] | None = None
        fd = raw_fd(stream)
        try:
            if fd is None:
                self._pump = Pump(stream)
                fd = self._pump.read_fd
            if decoder is not None:
                fd = self._start_decoder(decoder, fd)
            self.fd = fd
            self.header: Header = read_header(self._read)
        except BaseException:
            self.close()
            raise

    def _start_decoder(self, decoder: str, fd: int) -> int:
        import subprocess  # only decoders need it; plain listings stay lean

        try:
            self._decoder = subprocess.Popen(
                decoder_argv(decoder), stdin=fd, stdout=subprocess.PIPE
            )
        except OSError as exc:
            raise SpoolError(f"Starting decoder {decoder!r}: {exc}") from None
        if self._pump is not None:
            os.close(self._pump.read_fd)  # the decoder holds it now
            self._pump.read_fd = -1
        assert self._decoder.stdout is not None
        return self._decoder.stdout.fileno()

    def _read(self, size: int) -> bytes:
        try:
            return os.read(self.fd, size)
        except OSError as exc:
            raise HeaderError(f"reading header: {exc}") from None

    def close(self) -> None:
        """Release everything; raise if a pump failed (the payload was cut)."""
        if self._decoder is not None:
            if self._decoder.stdout is not None:
                self._decoder.stdout.close()
            status = self._decoder.wait()
            _log.debug("Decoder exited with status %s", status)
        if self._pump is not None:
            if self._pump.read_fd >= 0:
                os.close(self._pump.read_fd)
                self._pump.read_fd = -1
            pump, self._pump = self._pump, None
            try:
                pump.join()
            finally:
                self._stream.close()
        else:
            self._stream.close()

    def __enter__(self) -> JobSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
