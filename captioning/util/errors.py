"""One readable line from a TensorFlow error message, for users and API clients.

A graph error's message starts with a generic header ("Graph execution error:"), then where the op was defined, and
a failed check reads "assertion failed: [its message] [more data]..."; the line that matters is buried.
"""

import re

_ASSERTION = re.compile(r"assertion failed: \[([^\]]*)\](?: \[([^\]]*)\])?")
_NOISE = ("Graph execution error", "Detected at node", "File ", "[[{{node")


def tf_error_line(message: str, limit: int = 300) -> str:
    """A failed assertion's own message (with its next piece when it ends in ':'), else the first informative line."""
    assertion = _ASSERTION.search(message)
    if assertion:
        first, second = assertion.groups()
        return (f"{first} {second}" if second and first.endswith(":") else first)[:limit]
    lines = [line.strip() for line in message.splitlines()
             if line.strip() and not line.strip().startswith(_NOISE)]
    return (lines or [message.strip()])[0][:limit]
