"""The names inside a queue, shared by every transport and the engine.

A queue is ``QUEUE/nextseq`` (the next sequence number, one line),
``QUEUE/nextseq.lock`` (the file the reference flocks), and ``QUEUE/jobs/``
holding ``fspl-*.fspl`` packets.  Transports on storage without real
directories keep ``jobs/`` alive with a placeholder object, and transports
without flock add a lock object of their own beside ``nextseq`` (named by
each, as the protocols differ).  Written once here so that a transport
cannot drift from the layout the reference and the other transports use.
"""

from __future__ import annotations

JOBS_DIR = "jobs"
SEQ_NAME = "nextseq"
#: The reference's flock target; its presence marks a queue with sequence state.
SEQ_LOCK_NAME = f"{SEQ_NAME}.lock"
#: ``nextseq`` is replaced by writing this and renaming it over.
SEQ_TEMP_NAME = f"{SEQ_NAME}.temp"
#: An empty object keeping ``jobs/`` in stores without directories (S3…).
PLACEHOLDER = ".fspl-keep"
