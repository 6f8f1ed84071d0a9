"""Built-in transport plugins of filespooler (installed as ``spooler_plugins``).

Each sub-package registers exactly like a third-party plugin: a light module
with ``@hookimpl`` functions, listed in the ``filespooler`` entry-point group,
whose transport class is imported only when a URL needs it.
"""
