"""A WebDAV transport for filespooler (an example third-party plugin)."""
