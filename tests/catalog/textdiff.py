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


def is_insertion_into_list(old: str, new: str) -> bool:
    """Whether `new` is `old` with one insertion, where an empty flow list "[]" in `old`
    counts as the place of the new entry (the entry replaces it)."""
    stripped = old.lstrip()
    if stripped.startswith("[]") or "\n[]" in old or old.startswith("[]"):
        at = old.find("[]")
        return is_insertion(old[:at] + old[at + 2 :], new)
    return is_insertion(old, new)
