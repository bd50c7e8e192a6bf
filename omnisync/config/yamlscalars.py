"""Plain YAML scalars read by YAML 1.2's core schema, as check-jsonschema (ruamel.yaml)
reads them, not by PyYAML's YAML 1.1 rules: ``yes``, ``off`` and ``1:30`` are text,
``010`` is ten, ``0o10`` is eight and ``1e3`` a number. Pure.

CI runs check-jsonschema and ``omnisync validate`` on the same files, and the two must
agree on what a file says. :func:`plain_tag` tags a plain scalar by its form; the
``CONSTRUCTORS`` build the value of a tagged scalar from its text.
"""

from __future__ import annotations

import re
from collections.abc import Callable

TAG_PREFIX = "tag:yaml.org,2002:"
MAP = TAG_PREFIX + "map"
SEQ = TAG_PREFIX + "seq"
MERGE = TAG_PREFIX + "merge"
NULL = TAG_PREFIX + "null"
BOOL = TAG_PREFIX + "bool"
INT = TAG_PREFIX + "int"
FLOAT = TAG_PREFIX + "float"
STR = TAG_PREFIX + "str"
#: A plain ``=``: YAML's "value" indicator. ruamel.yaml tags it so and cannot build it
#: (check-jsonschema fails to parse the file), so omnisync refuses it too.
VALUE = TAG_PREFIX + "value"
# Kept as the text written: a config has no use for datetime objects, and a
# date-like value in a string field should stay the string it looks like.
TEXT_TAGS = frozenset({STR, TAG_PREFIX + "timestamp", "!"})

# The forms of YAML 1.2's core schema as ruamel.yaml's resolver writes them, so that
# check-jsonschema reads each plain scalar as omnisync does: it also takes '_' between
# digits, 0b binary and a sign on 0o and 0x, and wants a sign in the exponent of ".5e+3".
#: The tag of a plain scalar by its form, the first that matches all of it; else text.
_PLAIN_FORMS = (
    (BOOL, re.compile(r"true|True|TRUE|false|False|FALSE")),
    (
        FLOAT,
        re.compile(
            r"""[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
            |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
            |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN)""",
            re.VERBOSE,
        ),
    ),
    # A sign or a digit first: "_1" is text.
    (INT, re.compile(r"(?=[-+0-9])[-+]?(?:0b[01_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|[0-9_]+)")),
    (MERGE, re.compile(r"<<")),
    (VALUE, re.compile(r"=")),
    (NULL, re.compile(r"~|null|Null|NULL|")),
)
_FORMS = dict(_PLAIN_FORMS)
_BASES = {"0b": 2, "0o": 8, "0x": 16}


def _form(text: str, *tags: str) -> str:
    """``text``, if it has the form of one of ``tags``; raises :class:`ValueError` otherwise."""
    if not any(_FORMS[tag].fullmatch(text) for tag in tags):
        raise ValueError("not the form of its tag")  # never the text: it may be a secret
    return text


def _boolean(text: str) -> bool:
    return _form(text, BOOL).lower() == "true"


def _integer(text: str) -> int:
    """Decimal (``010`` is ten: YAML 1.2 has no octal without ``0o``), ``0b``, ``0o`` or
    ``0x``, with '_' between digits ignored."""
    digits = _form(text, INT).replace("_", "")
    # int() takes a sign, and the prefix of its base; "0b" alone raises.
    return int(digits, _BASES.get(digits.lstrip("+-")[:2], 10))


def _float(text: str) -> float:
    """A float's form, or an integer's (``!!float 1``) read as a float."""
    digits = _form(text, FLOAT, INT).replace("_", "").lower()
    # float() takes a sign and spells YAML's .inf and .nan without the dot; "0x10" raises.
    return float(digits.replace(".inf", "inf").replace(".nan", "nan"))


#: What a scalar of each tag is, from its text; :class:`ValueError` when it is not one.
CONSTRUCTORS: dict[str, Callable[[str], object]] = {
    NULL: lambda _text: None,
    BOOL: _boolean,
    INT: _integer,
    FLOAT: _float,
}
SCALAR_TAGS = frozenset(CONSTRUCTORS)
#: Said after "this value is not a valid !!bool".
ADVICE = {BOOL: ": write true or false"}
#: Why a plain ``=`` is refused, as a value or a key.
PLAIN_VALUE_PROBLEM = "a plain = is YAML's 'value' indicator, not text: quote it ('=')"


def plain_tag(text: str) -> str:
    """The tag of the plain scalar ``text``: the first form that matches all of it, else text."""
    return next((tag for tag, form in _PLAIN_FORMS if form.fullmatch(text)), STR)
