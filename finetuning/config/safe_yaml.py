"""The one YAML loader for configs from people: the CLI's files and the API's YAML bodies both go through it.

``yaml.safe_load`` builds only plain data, but an alias (``*name``) reuses the object of its anchor (``&name``), so a
few hundred bytes can describe a document of billions of values ("billion laughs"): loading is cheap, yet whatever
walks the result afterwards (validation, JSON encoding, storing it) expands every alias and never finishes. A
document may also refer to itself (``a: &a [*a]``), which no config needs and which recursive walkers do not survive.
:func:`safe_load` measures the expanded size once, visiting each distinct object once, and refuses both.
"""

from __future__ import annotations

from typing import IO, Any

import yaml

# Far above any real config (the largest recipes are a few hundred values), far below what hurts a walker.
MAX_YAML_VALUES = 200_000


class YAMLExpansionError(yaml.YAMLError):
    """The document is too large once its aliases are expanded, or refers to itself.

    A :class:`yaml.YAMLError`, so callers that turn bad YAML into an error for people need nothing extra.
    """


def safe_load(stream: str | bytes | IO[str] | IO[bytes], *, max_values: int = MAX_YAML_VALUES) -> Any:
    """``yaml.safe_load(stream)``, refusing a document that expands to more than ``max_values`` values through its
    anchors and aliases, or that contains itself (:class:`YAMLExpansionError`). Other bad input raises what PyYAML
    raises (``YAMLError``, and for some malformed tags ValueError, IndexError, KeyError or AttributeError)."""
    data = yaml.safe_load(stream)
    check_expanded_size(data, max_values=max_values)
    return data


def check_expanded_size(data: Any, *, max_values: int = MAX_YAML_VALUES) -> int:
    """The number of values ``data`` holds with every shared object counted each time it is reached (each container
    and each scalar counts one; mapping keys are not counted); :class:`YAMLExpansionError` above ``max_values`` or on
    a cycle. Each distinct container is visited once, so a bomb is measured in the time its text takes to read."""
    sizes: dict[int, int] = {}  # id of a finished container -> its expanded size
    open_ids: set[int] = set()  # containers whose children are being measured: meeting one again is a cycle
    # (node, children measured?) in post-order, without recursion: nesting depth is the user's to choose
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, measured = stack.pop()
        if not isinstance(node, dict | list):
            continue  # a scalar: counted by its parent
        children = list(node.values()) if isinstance(node, dict) else node
        key = id(node)
        if measured:
            open_ids.discard(key)
            size = 1 + sum(sizes[id(child)] if isinstance(child, dict | list) else 1 for child in children)
            if size > max_values:
                raise YAMLExpansionError(
                    f"it expands to more than {max_values} values through its anchors and aliases (&name, *name): "
                    "write the repeated parts out, or use fewer aliases"
                )
            sizes[key] = size  # ids stay unique: `data` keeps every container alive meanwhile
            continue
        if key in sizes:
            continue  # an alias of a container already measured
        if key in open_ids:
            raise YAMLExpansionError("it contains itself: an alias (*name) inside its own anchor (&name)")
        open_ids.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children)
    if isinstance(data, dict | list):
        return sizes[id(data)]
    return 1
