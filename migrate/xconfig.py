"""The node's configuration text, parsed and edited as bytes.

The file is what ``xconfiguration`` prints, one setting a line::

    *c xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload: On
    *c xConfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode: "On"

Everything here is pure: bytes in, values or bytes out.  The text is never
decoded as a whole, so a line the migration does not own survives an edit
byte for byte: its order, quoting, line ending (LF or CRLF, even mixed),
trailing whitespace and any bytes that are not UTF-8.

Decisions:

* **One line splitter**, :func:`lines`: a line ends at ``\\n``; a ``\\r``
  right before it belongs to the ending; a lone ``\\r`` is ordinary content.
  Line numbers are 1-based indexes into that list.
* **Decoding**: :attr:`Setting.name` and :attr:`Setting.value` are decoded
  as UTF-8 with ``errors="replace"``.  They are for matching and reporting
  (they reach reports, logs and JSON, where lone surrogates from
  ``surrogateescape`` would fail to encode); the exact bytes are kept in
  :attr:`Setting.raw`, and :func:`edit` works on line numbers, never on
  decoded text.
* **A setting line** is ``*c xConfiguration <words>: <value>`` or, as the
  technote and administrators print it, ``xconfiguration <words>: <value>``
  without the ``*c``: ``*c`` and ``xConfiguration`` in any case, runs of
  spaces/tabs as separators, leading spaces/tabs allowed, and a UTF-8 BOM
  allowed before the first line.
* **A line that names a setting the tool relies on** but is not a setting
  line of that name (a comment, a missing colon, ``:On`` without a blank) is
  reported by :func:`unplaced`, never skipped in silence.  The
  name ends at the first ``:`` followed by a space or tab; a line without that
  separator is not a setting.
* **Linear time**: the file is hostile input (written by less-privileged
  accounts), so a line is read by a head match that never backtracks and a
  search for the fixed two-byte separator, never by a pattern that could give
  back a run of blanks and try again.
* **A BOM stays**: when line 1 is removed, a UTF-8 BOM that started the file
  is kept at the start of the result; it marks the file, not the setting.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterable, Sequence

import attrs

from .errors import ConfigError

__all__ = ["Setting", "edit", "find", "is_on", "line_ending", "lines", "parse", "setting_line", "unplaced"]

BOM = b"\xef\xbb\xbf"

# A setting line's head, up to its name's first byte.  Every run is possessive
# and ends at a byte its class excludes, so the match never backtracks.
_HEAD = re.compile(rb"[ \t]*+(?:\*c[ \t]++)?+xConfiguration[ \t]++", re.IGNORECASE)
# Where the name ends: fixed length, so a search costs O(1) per offset.
_SEPARATOR = re.compile(rb":[ \t]")
_BLANKS = re.compile(rb"[ \t]+")
# Trailing blanks are not part of a value; nor is a stray CR (a last line
# that ends in CR without LF, or a CR CR LF ending).
_TRAILING = b" \t\r"


@attrs.frozen
class Setting:
    """One ``*c xConfiguration`` line of the configuration text.

    ``name`` is the setting path with its words joined by single spaces, in
    the file's own case; ``value`` is the value without its surrounding
    quotes or trailing blanks.  Both are decoded as UTF-8 with
    ``errors="replace"``; ``raw`` holds the line's exact bytes (without its
    line ending).
    """

    line_no: int
    name: str
    value: str
    raw: bytes


def lines(data: bytes) -> list[tuple[bytes, bytes]]:
    """The text as ``(content, ending)`` pairs, whose concatenation is ``data`` exactly.

    ``ending`` is ``b"\\r\\n"``, ``b"\\n"``, or ``b""`` for a last line without
    a newline.  An empty text has no lines.
    """
    out: list[tuple[bytes, bytes]] = []
    pieces = bytes(data).split(b"\n")
    for piece in pieces[:-1]:
        if piece.endswith(b"\r"):
            out.append((piece[:-1], b"\r\n"))
        else:
            out.append((piece, b"\n"))
    if pieces[-1]:
        out.append((pieces[-1], b""))
    return out


def _split_setting(text: bytes) -> tuple[bytes, bytes] | None:
    """The raw name and value of a setting line (BOM removed), or None if it is not one.

    The name starts at the first byte after the head, even a ``:``, and ends
    before the blanks ahead of the first ``:`` + blank after that byte; the
    value is what follows that separator's run of blanks.
    """
    head = _HEAD.match(text)
    if head is None or head.end() == len(text):
        return None
    start = head.end()  # not a blank: the possessive run stopped there
    separator = _SEPARATOR.search(text, start + 1)
    if separator is None:
        return None
    return text[start : separator.start()].rstrip(b" \t"), text[separator.end() :].lstrip(b" \t")


def _parse_line(line_no: int, content: bytes) -> Setting | None:
    text = content[len(BOM) :] if line_no == 1 and content.startswith(BOM) else content
    split = _split_setting(text)
    if split is None:
        return None
    name, value = split  # the name starts and ends with a non-blank
    if b"  " in name or b"\t" in name:
        name = b" ".join(_BLANKS.split(name))
    value = value.rstrip(_TRAILING)
    if len(value) >= 2 and value.startswith(b'"') and value.endswith(b'"'):
        value = value[1:-1]
    return Setting(
        line_no=line_no,
        name=name.decode("utf-8", errors="replace"),
        value=value.decode("utf-8", errors="replace"),
        raw=content,
    )


def parse(data: bytes) -> tuple[Setting, ...]:
    """Every ``*c xConfiguration`` setting of the text, in file order; other lines are ignored."""
    found = []
    for line_no, (content, _) in enumerate(lines(data), start=1):
        setting = _parse_line(line_no, content)
        if setting is not None:
            found.append(setting)
    return tuple(found)


@functools.lru_cache(maxsize=4096)  # setting names are a fixed vocabulary: a fleet repeats them on every node
def _normal(name: str) -> str:
    return " ".join(name.split()).casefold()


def find(settings: Iterable[Setting], name: str) -> tuple[Setting, ...]:
    """The settings whose full name is ``name``, ignoring case and runs of blanks; duplicates included."""
    wanted = _normal(name)
    return tuple(setting for setting in settings if _normal(setting.name) == wanted)


def unplaced(
    data: bytes, settings: Iterable[Setting], *, exact: Iterable[str] = (), suffixes: Iterable[str] = ()
) -> tuple[tuple[int, str], ...]:
    """The lines that name a relied-on setting but are not a setting line of that name: ``(line_no, name)``.

    A line names ``exact`` setting ``N`` when its text, blanks collapsed and case
    ignored, holds ``N``; it is placed when it parsed as a setting whose name is
    ``N``.  A ``suffixes`` name (``TraversalServer SIP TLS Verify Mode``) is placed
    by a setting whose name ends with it (``Zones Zone 7 TraversalServer ...``).
    Each line is read once, with substring searches only: linear time.
    """
    wanted = [(_normal(name), name, False) for name in exact] + [(_normal(name), name, True) for name in suffixes]
    if not wanted:
        return ()
    parsed = {setting.line_no: _normal(setting.name) for setting in settings}
    out = []
    for line_no, (content, _) in enumerate(lines(data), start=1):
        text = " ".join(content.decode("utf-8", errors="replace").split()).casefold()
        for needle, name, is_suffix in wanted:
            if needle not in text:
                continue
            got = parsed.get(line_no)
            placed = got is not None and (got == needle or (is_suffix and got.endswith(" " + needle)))
            if not placed:
                out.append((line_no, name))
                break
    return tuple(out)


def is_on(value: str) -> bool | None:
    """``True`` for On, ``False`` for Off (any case, quoted or not), ``None`` for anything else."""
    text = value.strip()
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        text = text[1:-1].strip()
    return {"on": True, "off": False}.get(text.casefold())


def line_ending(data: bytes) -> bytes:
    """The file's own line ending: that of its first terminated line, ``b"\\n"`` if it has none."""
    end = data.find(b"\n")
    if end > 0 and data[end - 1 : end] == b"\r":
        return b"\r\n"
    return b"\n"


def setting_line(name: str, value: str) -> bytes:
    """The line that states a setting, without a line ending: ``*c xConfiguration <name>: <value>``.

    ``value`` is written as given (quote it yourself).  A name or value that
    would break the line apart, or a name that :func:`parse` would not read
    back, is refused with ``ValueError``: it is a programming error.
    """
    if any(c in name + value for c in "\r\n"):
        raise ValueError(f"setting {name!r} would span lines")
    if not name.split() or re.search(r":[ \t]", name):
        raise ValueError(f"{name!r} is not a setting name")
    return b"*c xConfiguration " + name.encode() + b": " + value.encode()


def edit(data: bytes, *, remove_lines: Collection[int] = (), append: Sequence[bytes] = ()) -> bytes:
    """``data`` without the 1-based ``remove_lines`` and with the ``append`` lines at its end.

    A removed line goes with its line ending.  Each appended line is
    terminated with the file's own ending (:func:`line_ending`); a last line
    without a newline gets that ending first.  Every other byte is kept
    as it was.  With nothing to do, ``data`` itself is returned.

    Raises :class:`ConfigError` (``config-line-missing``) for a line number
    the text does not have, and ``ValueError`` for an appended line that
    holds a CR or LF.
    """
    remove = set(remove_lines)
    append = list(append)
    if not remove and not append:
        return data
    for line in append:
        if b"\n" in line or b"\r" in line:
            raise ValueError(f"an appended line must be one line without its ending: {line!r}")
    pairs = lines(data)
    missing = sorted(no for no in remove if not 1 <= no <= len(pairs))
    if missing:
        raise ConfigError(
            f"the configuration has {len(pairs)} lines; cannot remove line {', '.join(map(str, missing))}",
            id="config-line-missing",
            hint="the configuration changed since it was read: scan the node again",
        )
    kept = [pair for no, pair in enumerate(pairs, start=1) if no not in remove]
    head = BOM if 1 in remove and data.startswith(BOM) else b""
    if append:
        ending = line_ending(data)
        if kept and not kept[-1][1]:
            kept[-1] = (kept[-1][0], ending)
        kept.extend((line, ending) for line in append)
    return head + b"".join(content + end for content, end in kept)
