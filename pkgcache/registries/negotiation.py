"""Content negotiation by ``Accept`` (RFC 9110 12.5.1), as registries need
it: pick the best of a few media types the server can give, or none."""

from __future__ import annotations


def accepted(header: str | None) -> list[tuple[str, float]]:
    """The media ranges of an Accept header with their weights, in order.

    A missing or empty header accepts anything (``*/*``). A malformed
    weight counts as 0 (not acceptable) rather than failing the request.
    """
    if not header or not header.strip():
        return [("*/*", 1.0)]
    ranges = []
    for item in header.split(","):
        media, *parameters = (part.strip() for part in item.split(";"))
        if not media:
            continue
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    weight = 0.0
        ranges.append((media.lower(), weight))
    return ranges


def choose(header: str | None, offered: tuple[str, ...]) -> str | None:
    """The offered type the client weighs highest; ties go to the earlier
    in ``offered`` (the server's preference). None: nothing offered is
    acceptable (answer 406). The most specific matching range decides a
    type's weight, as RFC 9110 says."""
    ranges = accepted(header)
    best: tuple[float, int] | None = None
    chosen = None
    for order, media in enumerate(offered):
        weight = _weight(media, ranges)
        if weight <= 0:
            continue
        if best is None or (weight, -order) > best:
            best, chosen = (weight, -order), media
    return chosen


def _weight(media: str, ranges: list[tuple[str, float]]) -> float:
    kind = media.split("/", 1)[0]
    found: tuple[int, float] | None = None
    for pattern, weight in ranges:
        if pattern == media:
            specificity = 2
        elif pattern == f"{kind}/*":
            specificity = 1
        elif pattern == "*/*":
            specificity = 0
        else:
            continue
        if found is None or specificity > found[0]:
            found = (specificity, weight)
    return found[1] if found else 0.0
