"""RFC 7468 PEM blocks, parsed: bytes in, blocks out.

What it promises:

- Pure: no file system, no logging, no printing, no ``cryptography``.  A block
  is its label, its DER bytes and its RFC 1421 headers; what the DER holds is
  :mod:`migrate.certs`'s business.
- Strict on purpose: the appliance writes bare PEM (RFC 7468 blocks and
  nothing else), so any other byte in a managed file is a
  :class:`~migrate.errors.CertError` with a stable id (``file-empty``,
  ``not-pem``, ``not-pem-der``, ``pem-trailing-data``, ``pem-malformed``)
  rather than skipped.
- Works on bytes throughout: the file need not be UTF-8; LF, CRLF and CR line
  endings are accepted.

The files are hostile input (``ca.pem`` is written by a less-privileged
account), so the parser runs in linear time on any bytes: every regex is
possessive or atomic where a run could be given back, header lines are split
by hand, and each block is searched only up to its own END line.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

import attrs

from .errors import CertError

# --- Tables -------------------------------------------------------------------

ENCRYPTED_PRIVATE_KEY = "ENCRYPTED PRIVATE KEY"

_DER_HINT = (
    "convert it to PEM: `openssl x509 -inform der -in FILE -out FILE.pem` for a certificate, "
    "`openssl pkey -inform der -in FILE -out FILE.pem` for a key"
)
_STRICT_HINT = (
    "the appliance writes bare PEM: remove every line outside the -----BEGIN/-----END blocks "
    "(RFC 7468 explanatory text, such as openssl's 'Bag Attributes' or 'subject=' lines, is refused here)"
)
_MALFORMED_HINT = "re-export the file with openssl (`openssl x509` or `openssl pkey`) to get well-formed PEM"

# --- PEM blocks -----------------------------------------------------------------

_WHITESPACE = b" \t\r\n\v\f"
# RFC 7468 label: printable ASCII but '-', words joined by one space or hyphen.
# Atomic, so a failed match never gives the label back byte by byte; nothing
# is lost: inside a label every '-' is followed by a word byte, so no shorter
# label could be followed by "-----".
_LABEL = rb"(?>[\x21-\x2c\x2e-\x7e]+(?:[ -][\x21-\x2c\x2e-\x7e]+)*)"
_BEGIN = re.compile(rb"-----BEGIN (" + _LABEL + rb")-----[ \t]*+(?:\r\n|\n|\r|\Z)")
_END = re.compile(rb"-----END (" + _LABEL + rb")-----")
# RFC 1421 header name: printable ASCII but ':' (the name ends at the first
# ':'), tested with bytes.translate rather than a regex; see _header.
_HEADER_NAME = bytes(range(0x21, 0x7F))
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*+={0,2}")


@attrs.frozen
class PemBlock:
    """One ``-----BEGIN label-----`` ... ``-----END label-----`` block, decoded."""

    label: str
    der: bytes = attrs.field(repr=lambda der: f"<{len(der)} bytes>")
    # RFC 1421 headers (legacy OpenSSL encryption: Proc-Type, DEK-Info), in order.
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def encrypted(self) -> bool:
        """Whether the block is an encrypted key, PKCS#8 or legacy OpenSSL."""
        if self.label == ENCRYPTED_PRIVATE_KEY:
            return True
        return any(name.lower() == "proc-type" and "ENCRYPTED" in value.upper() for name, value in self.headers)


def _line_of(data: bytes, offset: int) -> int:
    """The 1-based line number of ``offset`` in ``data``."""
    return data.count(b"\n", 0, offset) + 1


def _malformed(message: str) -> CertError:
    return CertError(message, hint=_MALFORMED_HINT, id="pem-malformed")


def _skip_whitespace(data: bytes, pos: int) -> int:
    """The first offset at or after ``pos`` that is not whitespace."""
    while pos < len(data) and data[pos] in _WHITESPACE:
        pos += 1
    return pos


def _no_armour(data: bytes) -> CertError:
    """The error for data with no PEM armour at all: DER or garbage."""
    if data[:1] == b"\x30":
        return CertError(
            "the file is binary DER, not PEM (no -----BEGIN line; it starts with an ASN.1 SEQUENCE)",
            hint=_DER_HINT,
            id="not-pem-der",
        )
    return CertError(
        "the file holds no PEM block (no -----BEGIN line)",
        hint="expected a PEM certificate or key; check that the right file was installed",
        id="not-pem",
    )


def _header(text: bytes) -> tuple[str, str] | None:
    """The name and value of one RFC 1421 header line (``Name: value``, no CR or LF), or None.

    The name is one or more printable ASCII bytes up to the first ``:``; the
    value is the rest without surrounding spaces and tabs.  No regex: a
    partition, a translate and a strip, each one pass over the line.
    """
    name, colon, value = text.partition(b":")
    if not colon or not name or name.translate(None, _HEADER_NAME):
        return None
    return name.decode("ascii"), value.strip(b" \t").decode("ascii", "replace")


def _split_headers(lines: list[bytes], place: Callable[[], str]) -> tuple[tuple[tuple[str, str], ...], list[bytes]]:
    """RFC 1421 headers at the top of a block body, and the base64 lines after them."""
    first = next((i for i, text in enumerate(lines) if text.strip(_WHITESPACE)), None)
    if first is None or b":" not in lines[first]:
        return (), lines
    # Each header's value as its parts: continuation lines are joined once, at
    # the end (joining them one by one would copy the value at every line).
    headers: list[tuple[str, list[str]]] = []
    for i in range(first, len(lines)):
        text = lines[i]
        if not text.strip(_WHITESPACE):
            return tuple((name, " ".join(parts)) for name, parts in headers), lines[i + 1 :]
        if text[:1] in (b" ", b"\t") and headers:
            headers[-1][1].append(text.strip(_WHITESPACE).decode("ascii", "replace"))
            continue
        header = _header(text)
        if header is None:
            break
        headers.append((header[0], [header[1]]))
    raise _malformed(f"{place()} has headers not followed by a blank line")


def _decode_body(body: bytes, place: Callable[[], str]) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """The DER bytes and headers of one block body (the text between its armour lines).

    ``place`` names the block for a message; it is called only on error, as
    counting lines costs a pass over the file.
    """
    if b":" in body:  # RFC 1421 headers can only be there if a colon is (base64 has none)
        headers, lines = _split_headers(body.splitlines(), place)
        text = b"".join(lines).translate(None, _WHITESPACE)
    else:
        headers, text = (), body.translate(None, _WHITESPACE)
    if not text:
        raise _malformed(f"{place()} is empty")
    try:
        return binascii.a2b_base64(text, strict_mode=True), headers
    except binascii.Error:
        pass
    if _BASE64.fullmatch(text) is None:
        raise _malformed(f"{place()} holds characters that are not base64")
    raise _malformed(f"{place()} is not valid base64 (bad length or padding)")


def _read_block(data: bytes, pos: int) -> tuple[PemBlock, int]:
    """The block whose BEGIN line starts at ``pos``, and the offset just after its END line."""
    begin = _BEGIN.match(data, pos)
    if begin is None:
        raise _malformed(f"the -----BEGIN line at line {_line_of(data, pos)} is not a valid PEM armour line")
    label = begin[1].decode("ascii")

    def place() -> str:
        return f"the {label} block at line {_line_of(data, pos)}"

    end_at = data.find(b"-----END ", begin.end())
    # Searched only up to this block's END line, so the searches of all blocks
    # together read the file once, whatever the file holds after it.
    if end_at < 0 or data.find(b"-----BEGIN ", begin.end(), end_at) >= 0:
        raise _malformed(f"{place()} has no -----END line")
    end = _END.match(data, end_at)
    if end is None:
        raise _malformed(f"the -----END line at line {_line_of(data, end_at)} is not a valid PEM armour line")
    if end[1] != begin[1]:
        raise _malformed(f"{place()} ends with -----END {end[1].decode('ascii')}-----")
    der, headers = _decode_body(data[begin.end() : end_at], place)
    return PemBlock(label=label, der=der, headers=headers), end.end()


def pem_blocks(data: bytes) -> tuple[PemBlock, ...]:
    """Every PEM block of ``data``, in order; anything else in the file is an error.

    Works on bytes throughout: the file need not be UTF-8.  Accepts LF, CRLF
    and CR line endings, and RFC 1421 headers inside a block.
    """
    if not data.strip(_WHITESPACE):
        raise CertError("the file is empty", hint="install the PEM file again", id="file-empty")
    if b"-----BEGIN " not in data:
        raise _no_armour(data)
    blocks: list[PemBlock] = []
    pos = _skip_whitespace(data, 0)
    while pos < len(data):
        if not data.startswith(b"-----BEGIN ", pos):
            where = "before the first block" if not blocks else "after a block"
            raise CertError(
                f"the file has text outside its PEM blocks at line {_line_of(data, pos)} ({where})",
                hint=_STRICT_HINT,
                id="pem-trailing-data",
            )
        block, pos = _read_block(data, pos)
        blocks.append(block)
        pos = _skip_whitespace(data, pos)
    return tuple(blocks)


def armour(label: str, der: bytes) -> bytes:
    """``der`` as a bare PEM block (64-column base64, no headers)."""
    text = base64.b64encode(der)
    body = b"".join(text[i : i + 64] + b"\n" for i in range(0, len(text), 64))
    head = label.encode("ascii")
    return b"-----BEGIN " + head + b"-----\n" + body + b"-----END " + head + b"-----\n"
