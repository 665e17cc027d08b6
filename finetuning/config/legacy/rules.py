"""The parts the rules for retired fields are made of: the :class:`Upgrade` note a translation leaves, the
:class:`Edit` a rule makes to a section (and the document around it), :class:`Retired` (a rule and its refusal), and
the rule makers several tables share."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

Section = MutableMapping[str, Any]


@dataclass(frozen=True)
class Upgrade:
    """One retired field translated: where it was, what replaced it (None: removed), and why."""

    path: str
    replacement: str | None
    reason: str

    def __str__(self) -> str:
        if self.replacement is None:
            return f"{self.path} is no longer needed and was removed: {self.reason}"
        return f"{self.path} is now {self.replacement}: {self.reason}"

    def as_dict(self) -> dict[str, str | None]:
        return {"param": self.path, "replacement": self.replacement, "reason": self.reason}


class Edit:
    """The section being upgraded, with the document around it (some fields move to another section)."""

    def __init__(self, doc: Section, section: Section, path: str) -> None:
        self.doc = doc
        self.section = section
        self.path = path
        self.original = dict(section)  # as the user wrote it: a rule may look at a sibling another rule removed

    def loc(self, key: str) -> str:
        return f"{self.path}.{key}"

    def set(self, key: str, value: Any) -> None:
        self.section[key] = value

    def drop(self, key: str) -> None:
        del self.section[key]

    def rename(self, key: str, new_key: str, value: Any) -> None:
        """Replace ``key`` by ``new_key`` at the same position (with its comment, in a round-trip map)."""
        section = self.section
        if new_key in section:
            del section[key]
            section[new_key] = value
            return
        index = list(section).index(key)
        insert = getattr(section, "insert", None)
        if insert is not None:  # ruamel's CommentedMap
            comments = getattr(section, "ca", None)
            comment = comments.items.pop(key, None) if comments is not None else None
            del section[key]
            insert(index, new_key, value)
            if comment is not None and comments is not None:
                comments.items[new_key] = comment
            return
        items = list(section.items())
        section.clear()
        for old_key, old_value in items:
            if old_key == key:
                section[new_key] = value
            else:
                section[old_key] = old_value

    def subsection(self, dotted: str) -> Section | None:
        """The mapping at ``dotted`` (from the document's root), created when missing; None if a value is there."""
        current: Any = self.doc
        for part in dotted.split("."):
            child = current.get(part)
            if child is None:
                child = type(self.section)()  # a round-trip map for a round-trip document
                current[part] = child
            if not isinstance(child, MutableMapping):
                return None
            current = child
        return current


# A rule translates ``section[key]`` (it may edit the document) and returns the note's (replacement, reason), or
# None to leave the field to be refused.
Rule = Callable[[Edit, str, Any], tuple[str | None, str] | None]


@dataclass(frozen=True)
class Retired:
    """A field an older library had. ``refusal``: why a value the rule does not translate is refused."""

    rule: Rule
    refusal: str


def is_unset(value: Any) -> bool:
    return value is None or value is False or value == "" or value == [] or value == {}


def renamed(new_key: str, reason: str) -> Retired:
    """Same meaning, new name. Both names with different values: refused, there is no telling which was meant."""

    def rule(edit: Edit, key: str, value: Any) -> tuple[str | None, str] | None:
        if value is None:
            edit.drop(key)
            return None, "it was unset"
        if new_key in edit.original and edit.original[new_key] != value:
            return None
        edit.rename(key, new_key, value)
        return edit.loc(new_key), reason

    return Retired(rule, f"renamed to {new_key} ({reason}); give only {new_key}")


def no_effect(reason: str, *, unless: Callable[[Any], bool] | None = None, refusal: str = "") -> Retired:
    """Removed, and nothing the run does depends on it (for the values ``unless`` does not pick out)."""

    def rule(edit: Edit, key: str, value: Any) -> tuple[str | None, str] | None:
        if unless is not None and unless(value):
            return None
        edit.drop(key)
        return None, reason

    return Retired(rule, refusal or reason)


def drop_if_unset(edit: Edit, key: str, value: Any, reason: str) -> tuple[str | None, str] | None:
    if is_unset(value):
        edit.drop(key)
        return None, reason
    return None


def switch_to(target: str, target_value: Any, reason: str) -> Rule:
    """A boolean flag that became a value of another field."""

    def rule(edit: Edit, key: str, value: Any) -> tuple[str | None, str] | None:
        if value is False or value is None:
            edit.drop(key)
            return None, "false was the default"
        if value is not True:
            return None
        current = edit.original.get(target)
        if current is not None and current != target_value:
            return None
        edit.rename(key, target, target_value)
        return f"{edit.loc(target)}: {target_value}", reason

    return rule
