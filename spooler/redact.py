"""Keep passwords in URLs out of everything we print or export.

``scheme://user:SECRET@host/…`` becomes ``scheme://user:***@host/…`` in
error messages, logs and the job environment (FSPL_JOB_QUEUEDIR,
FSPL_JOB_FULLPATH), whatever the transport.
"""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*):[^/@\s]*@")


def redact(text: str) -> str:
    """``text`` with the password of every URL's userinfo replaced by ``***``."""
    # Most texts (local paths, per job in the environment) hold no URL at all.
    return _USERINFO.sub(r"\g<head>:***@", text) if "://" in text else text


def has_password(url: str) -> bool:
    """True if ``url``'s userinfo carries a password."""
    return _USERINFO.search(url) is not None
