"""The one ``-o`` parser every transport uses (spooler.transport_options)."""

from __future__ import annotations

import pytest

from spooler.errors import UsageError
from spooler.plugin import Option, parse_options

KNOWN = (
    Option("ttl", "seconds", 120.0, minimum=1),
    Option("n", "int", 1, minimum=1, maximum=64),
    Option("ratio", "float"),
    Option("flag", "bool"),
    Option("extra", "json"),
    Option("name"),
)


def test_defaults_and_types() -> None:
    got = parse_options("t", {"n": "8", "flag": "yes", "extra": '{"a": 1}', "name": "x"}, KNOWN)
    assert got == {"ttl": 120.0, "n": 8, "flag": True, "extra": {"a": 1}, "name": "x"}
    assert parse_options("t", {"ttl": "2.5", "flag": "off"}, KNOWN)["ttl"] == 2.5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bogus": "1"}, "unknown t option bogus (known: extra, flag, n, name, ratio, ttl)"),
        ({"ttl": "abc"}, "-o ttl=abc: expected a number of seconds"),
        ({"ttl": "-5"}, "-o ttl=-5: expected a value of at least 1"),
        ({"ttl": "nan"}, "-o ttl=nan: expected a number of seconds"),
        ({"n": "1.5"}, "-o n=1.5: expected a whole number"),
        ({"n": "65"}, "-o n=65: expected a value from 1 to 64"),
        ({"ratio": "inf"}, "-o ratio=inf: expected a finite number"),
        ({"flag": "maybe"}, "-o flag=maybe: expected true or false"),
        ({"extra": "[1]"}, "-o extra=[1]: expected a JSON object"),
        ({"extra": "{"}, "-o extra={: expected a JSON object ("),
    ],
)
def test_bad_values_are_usage_errors(options: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_options("t", options, KNOWN)
    assert str(caught.value).startswith(message)
    assert caught.value.exit_code == 2
