"""Argument checks shared by the whole package.

Each check returns the value it accepted (converted where it says so) and
raises `ValueError` naming the argument, what was received and what was
expected. Booleans are refused wherever a number is expected: `True` is an
`int` in Python, and a flag used as a count hides bugs.
"""

import math
import numbers


def check_integer(argument, value, minimum=None, allow_none=False):
    """`int(value)` if it is an integer (not a bool) ≥ `minimum`.

    Args:
        argument: the argument's name, for the message.
        value: the value to check; Python and numpy integers are accepted.
        minimum: the smallest value allowed, or None for no bound.
        allow_none: also accept None (returned as is).

    Returns:
        The value as a Python `int`, or None.

    Raises:
        ValueError: `value` is not such an integer.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (minimum is not None and value < minimum):
        expected = "an integer" if minimum is None else f"an integer ≥ {minimum}"
        expected += " or None" if allow_none else ""
        raise ValueError(f"{argument} must be {expected}. Received: {argument}={value!r}")
    return int(value)


def check_real(argument, value):
    """`value` if it is a real number (Python or numpy; not a bool), else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{argument} must be a real number. Received: {argument}={value!r}")
    return value


def check_positive(argument, value):
    """`float(value)` if it is a finite real number > 0, else a ValueError."""
    check_real(argument, value)
    if not value > 0:
        raise ValueError(f"{argument} must be > 0. Received: {argument}={value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{argument} must be finite. Received: {argument}={value!r}")
    return float(value)


def check_range(argument, value, minimum, maximum=None, include_maximum=True):
    """`value` if it is a real number with minimum ≤ value ≤ (or <) maximum."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum if include_maximum else value < maximum
    if not ok:
        upper = "" if maximum is None else (f" and ≤ {maximum}" if include_maximum else f" and < {maximum}")
        raise ValueError(f"{argument} must be a number ≥ {minimum}{upper}. Received: {argument}={value!r}")
    return value


def check_choice(argument, value, choices):
    """`value` if it is one of the strings `choices`, else a ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"Unknown {argument}. Expected one of {tuple(choices)}. Received: {argument}={value!r}")
    return value
