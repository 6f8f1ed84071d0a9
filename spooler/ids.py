"""Random identifiers: UUIDs and job file names.

Built from os.urandom directly: importing the uuid module costs more than
the rest of ``fspl gen-uuid`` together.
"""

from __future__ import annotations

import os

JOB_PREFIX = "fspl-"
JOB_SUFFIX = ".fspl"


def uuid4_text() -> str:
    """A random version-4 UUID, lowercase and hyphenated."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_job_name() -> str:
    """A fresh, unique ``fspl-UUID.fspl`` name."""
    return f"{JOB_PREFIX}{uuid4_text()}{JOB_SUFFIX}"
