"""Checks on how one text differs from another, for the edit tests."""


def common_prefix(old: str, new: str) -> int:
    n = 0
    while n < min(len(old), len(new)) and old[n] == new[n]:
        n += 1
    return n


def only_replaced(old: str, new: str, start: int, end: int) -> bool:
    """Whether `new` is `old` with at most old[start:end] replaced by something."""
    return new.startswith(old[:start]) and new.endswith(old[end:]) and len(new) >= start + len(old) - end


def is_insertion(old: str, new: str) -> bool:
    """Whether `new` is `old` with text inserted at one place and nothing else changed."""
    at = common_prefix(old, new)
    return only_replaced(old, new, at, at)
