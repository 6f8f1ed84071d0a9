"""Amazon S3 and S3-compatible object stores (s3://BUCKET/PREFIX)"""

from __future__ import annotations

from spooler.plugin import TransportSpec, provide

fspl_transports = provide(
    TransportSpec(
        name="s3",
        schemes=("s3", "s3a"),
        factory="spooler_plugins.s3.transport:S3Transport",
        description="Amazon S3 and S3-compatible object stores (s3://BUCKET/PREFIX)",
        requires=("botocore", "s3fs"),
        install_hint="filespooler[s3]",
    )
)
