"""Linear-time parsing of untrusted text: the configuration and PEM parsers never backtrack over a run.

The files parsed are written by less-privileged accounts (``ca.pem`` is owned
by ``_nobody``), so a crafted file must not hold a command for minutes.  Two
kinds of test:

- Properties: the new parsers give exactly what the regexes they replaced
  gave, on lines built from the bytes those regexes were fragile on.  The old
  regexes live here, and only here, as the oracle.
- Worst cases as large as the scanner reads (1 MiB of PEM) or larger, each in
  a child process with a timeout, so a parser that hangs fails the test
  instead of hanging the session.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from migrate import pem, xconfig
from migrate.errors import CertError

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
BOM = b"\xef\xbb\xbf"

# --- The oracle: the regexes as they were before they were replaced ---------------

OLD_SETTING = re.compile(
    rb"[ \t]*\*c[ \t]+xConfiguration[ \t]+(?P<name>[^ \t].*?)[ \t]*:[ \t]+(?P<value>.*)",
    re.IGNORECASE | re.DOTALL,
)
OLD_LABEL = rb"[\x21-\x2c\x2e-\x7e]+(?:[ -][\x21-\x2c\x2e-\x7e]+)*"
OLD_BEGIN = re.compile(rb"-----BEGIN (" + OLD_LABEL + rb")-----[ \t]*(?:\r\n|\n|\r|\Z)")
OLD_END = re.compile(rb"-----END (" + OLD_LABEL + rb")-----")
OLD_HEADER = re.compile(rb"([!-9;-~]+):[ \t]*(.*?)[ \t]*")
OLD_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


def _old_setting(line_no: int, content: bytes) -> xconfig.Setting | None:
    """``xconfig._parse_line`` as it was, on the old regex."""
    text = content[len(BOM) :] if line_no == 1 and content.startswith(BOM) else content
    match = OLD_SETTING.fullmatch(text)
    if match is None:
        return None
    name = match["name"]
    if b"  " in name or b"\t" in name:
        name = b" ".join(re.split(rb"[ \t]+", name))
    value = match["value"].rstrip(b" \t\r")
    if len(value) >= 2 and value.startswith(b'"') and value.endswith(b'"'):
        value = value[1:-1]
    return xconfig.Setting(
        line_no=line_no,
        name=name.decode("utf-8", errors="replace"),
        value=value.decode("utf-8", errors="replace"),
        raw=content,
    )


def _old_parse(data: bytes) -> tuple[xconfig.Setting, ...]:
    found = (_old_setting(no, content) for no, (content, _) in enumerate(xconfig.lines(data), start=1))
    return tuple(setting for setting in found if setting is not None)


def _old_split_headers(lines: list[bytes], place: Callable[[], str]):
    """``pem._split_headers`` as it was, on the old regex."""
    ws = b" \t\r\n\v\f"
    first = next((i for i, text in enumerate(lines) if text.strip(ws)), None)
    if first is None or b":" not in lines[first]:
        return (), lines
    headers: list[tuple[str, str]] = []
    for i in range(first, len(lines)):
        text = lines[i]
        if not text.strip(ws):
            return tuple(headers), lines[i + 1 :]
        if text[:1] in (b" ", b"\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {text.strip(ws).decode('ascii', 'replace')}")
            continue
        match = OLD_HEADER.fullmatch(text)
        if match is None:
            break
        headers.append((match[1].decode("ascii"), match[2].decode("ascii", "replace")))
    raise CertError(f"{place()} has headers not followed by a blank line", hint="", id="pem-malformed")


def _outcome(call: Callable[[], object]) -> object:
    """What ``call`` returns, or the id and message of the CertError it raises."""
    try:
        return call()
    except CertError as exc:
        return ("error", exc.id, str(exc))


def _match(match: re.Match[bytes] | None) -> tuple[int, bytes] | None:
    return None if match is None else (match.end(), match[1])


# --- Generated input ---------------------------------------------------------------


def _joined(tokens: list[bytes], max_size: int) -> st.SearchStrategy[bytes]:
    """Byte strings made of up to ``max_size`` of ``tokens``."""
    return st.lists(st.sampled_from(tokens), max_size=max_size).map(b"".join)


# Separators: mostly right (one or more blanks), sometimes missing.
_BLANKS = st.sampled_from([b" ", b"\t", b"  ", b" \t", b"\t\t ", b""])
# The bytes the old setting regex was fragile on: blanks, colons, quotes, CR,
# the letters of its head in both cases, a BOM and its pieces, bytes >= 0x80.
_CONFIG_TOKENS = [b"*", b"c", b"C", b"x", b"X", b":", b" ", b"\t", b"  ", b'"', b"\r", b"a", b"Z", b"On", BOM]
_CONFIG_TOKENS += [b"\xef", b"\x80", b"\xff", b"\x00", b"\x0b", b"\xc3\xa9", b"xConfiguration", b": ", b":\t"]
_CONFIG_NOISE = _joined(_CONFIG_TOKENS, 10)
_CONFIG_LINE = st.one_of(
    _CONFIG_NOISE,
    st.tuples(
        st.sampled_from([b"", b"", b"", BOM, b"\xef\xbb"]),
        _BLANKS,
        st.sampled_from([b"*c", b"*C", b"*c", b"*C", b"*c", b"*", b"c", b"**c"]),
        _BLANKS,
        st.sampled_from([b"xConfiguration", b"XCONFIGURATION", b"xconfiguratioN", b"xConfiguration", b"xConfig"]),
        _BLANKS,
        st.sampled_from([b"SIP", b"A", b":", b'"', b"\xff", b"*c", b"x"]),
        _CONFIG_NOISE,
        st.sampled_from([b": ", b":\t", b" : ", b"\t:  ", b":", b" :", b""]),
        _CONFIG_NOISE,
    ).map(b"".join),
)
_CONFIG_TEXT = st.lists(st.tuples(_CONFIG_LINE, st.sampled_from([b"\n", b"\r\n", b"\r\n\n", b""]))).map(
    lambda pairs: b"".join(line + end for line, end in pairs)
)

# One header line as bytes.splitlines() gives it: no CR, no LF.
_HEADER_TOKENS = [b"Proc-Type", b"DEK-Info", b"P", b"-", b":", b" ", b"\t", b"  ", b",", b"4", b"ENCRYPTED"]
_HEADER_TOKENS += [b"\x00", b"\x7f", b"\x80", b"\xff", b"\x0b", b"\x0c", b"=", b";", b"~", b"!", b"AAAA", b"x"]
_HEADER_NOISE = _joined(_HEADER_TOKENS, 8)
_HEADER_LINE = st.one_of(
    _HEADER_NOISE,
    st.tuples(
        st.sampled_from([b"Proc-Type", b"DEK-Info", b"X", b"!~", b"A B", b"\x80", b"", b" P"]),
        st.sampled_from([b":", b":", b": ", b":\t \t", b""]),
        _HEADER_NOISE,
    ).map(b"".join),
)
_HEADER_LINES = st.one_of(
    st.lists(st.one_of(_HEADER_LINE, st.sampled_from([b"", b" ", b"\x0b", b"AAAA", b" x"])), max_size=8),
    st.tuples(
        st.lists(st.sampled_from([b"", b" ", b"\x0c"]), max_size=2),
        st.lists(st.one_of(_HEADER_LINE, _HEADER_LINE.map(lambda line: b" " + line)), min_size=1, max_size=4),
        st.lists(st.sampled_from([b"", b"AAAA", b"\t", b"Q:UFB"]), max_size=3),
    ).map(lambda parts: [line for part in parts for line in part]),
)

_LABELS = [b"A", b"RSA PRIVATE KEY", b"X-Y", b"CERTIFICATE", b"A B-C", b"!~,.", b"A-", b"A ", b"-A", b"A--B"]
_LABELS += [b"A  B", b"A -B", b"", b"\x7f", b"\x80"]
_ARMOUR_TOKENS = [b"-----", b"-", b" ", b"\t", b"\r", b"\n", b"\r\n", b"A", b"KEY", b"=", b"\x00", b":"]
_ARMOUR_TEXT = st.one_of(
    _joined([*_ARMOUR_TOKENS, b"-----BEGIN ", b"-----END "], 12),
    st.tuples(
        st.sampled_from([b"-----BEGIN ", b"-----END "]),
        st.sampled_from(_LABELS),
        st.sampled_from(
            [
                b"-----\n",
                b"-----\r\n",
                b"-----\r",
                b"-----",
                b"----- \t\n",
                b"-----\t",
                b"------",
                b"----\n",
                b"----- A\n",
            ]
        ),
        _joined(_ARMOUR_TOKENS, 4),
    ).map(b"".join),
)
_BASE64_TEXT = _joined([b"A", b"z", b"0", b"+", b"/", b"=", b"==", b"-", b" ", b"\xff"], 12)


class TestConfigLineParser:
    """``xconfig.parse`` against the old setting regex."""

    @given(_CONFIG_LINE)
    @example(b"*c xConfiguration A" + b" " * 40 + b"x")
    @example(b"*c xConfiguration :: x")
    @example(b"*c xConfiguration : x")
    @example(b"*c xConfiguration a \t: \t")
    @example(b'\t*C\tXCONFIGURATION\tA \t B\t:\t"v" \t\r')
    @example(BOM + b" *c xConfiguration A: B")
    def test_one_line_reads_as_the_old_regex_read_it(self, line):
        """A single line gives the same settings (name, value, raw bytes) as the old regex, or none as it did."""
        assert xconfig.parse(line) == _old_parse(line)

    @given(_CONFIG_TEXT)
    @example(BOM + b"*c xConfiguration A: B\r\n" + BOM + b"*c xConfiguration C: D\n")
    def test_a_text_reads_as_the_old_regex_read_it(self, data):
        """A text of many lines, LF and CRLF, with or without a BOM, gives the same settings as the old regex."""
        assert xconfig.parse(data) == _old_parse(data)


class TestPemHeaders:
    """RFC 1421 header parsing and the armour regexes against the old regexes."""

    @given(_HEADER_LINE)
    @example(b"Proc-Type: 4," + b" " * 40 + b"x")
    @example(b"DEK-Info:\t \t")
    @example(b":value")
    @example(b"Name\x7f: v")
    def test_a_header_line_reads_as_the_old_regex_read_it(self, line):
        """A line is a header with the same name and value as the old regex gave, or not one exactly when it was not."""
        old = OLD_HEADER.fullmatch(line)
        expected = None if old is None else (old[1].decode("ascii"), old[2].decode("ascii", "replace"))
        assert pem._header(line) == expected

    @given(_HEADER_LINES)
    @example([b"Proc-Type: 4,ENCRYPTED", b" a", b"\tb", b"DEK-Info: x", b" c", b"", b"AAAA"])
    @example([b"", b"Proc-Type: 4", b"AAAA"])
    def test_a_body_splits_as_the_old_parser_split_it(self, lines):
        """A block body gives the same headers (continuations joined), the same rest, or the same error as before."""

        def place():
            return "the block"

        assert _outcome(lambda: pem._split_headers(lines, place)) == _outcome(lambda: _old_split_headers(lines, place))

    @given(_ARMOUR_TEXT)
    @example(b"-----BEGIN A-B C-----\t\r\n")
    @example(b"-----BEGIN A------\n")
    @example(b"-----END A- B-----")
    def test_armour_lines_match_as_the_old_regexes_matched(self, text):
        """The BEGIN and END regexes, now atomic, match the same span and label as before."""
        assert _match(pem._BEGIN.match(text)) == _match(OLD_BEGIN.match(text))
        assert _match(pem._END.match(text)) == _match(OLD_END.match(text))

    @given(_BASE64_TEXT)
    def test_base64_check_matches_as_the_old_regex_matched(self, text):
        """The possessive base64 check accepts exactly the texts the old regex accepted."""
        assert (pem._BASE64.fullmatch(text) is None) == (OLD_BASE64.fullmatch(text) is None)


# --- Worst cases, each in a child process ---------------------------------------------

# Generous: the fixed parsers take well under a second on every case.
TIMEOUT = 20

_CHILD = """
import json, time
from migrate import certs, pem, policy, xconfig
from migrate.errors import CertError
MIB = 1 << 20
data = {data}
start = time.perf_counter()
try:
    outcome = {call}
except CertError as exc:
    outcome = exc.id
print(json.dumps({{"seconds": time.perf_counter() - start, "outcome": outcome}}))
"""

_SETTINGS = "[[s.name, s.value] for s in xconfig.parse(data)]"
_HEADERS = "[[[name, len(value)] for name, value in b.headers] for b in pem.pem_blocks(data)]"
_CA = "len(certs.load_ca_bundle(data))"


def _pem(label: str, body: str) -> str:
    return f'b"-----BEGIN {label}-----\\n" + {body} + b"\\n-----END {label}-----\\n"'


_SMALL = _pem("CERTIFICATE", 'b"QUFB"')


# (id, data, call, expected outcome).  Tried with the old code put back
# (certs.py and xconfig.py as of 2110ef2, in a copy of the tree): the five
# cases marked OLD-HANGS fail, still parsing at 20 s.  The old code, measured:
# a 256 KiB blank run took 81 s in a configuration line and 206 s in a PEM
# header line (x4 per doubling: about 20 min and 55 min at 1 MiB), and the
# 8 MiB of continuations 235 s.  The new code: every case in under 0.7 s
# (median of the child's own timing).  The other cases were linear before
# too; they guard against a regression.
WORST_CASES = [
    # OLD-HANGS: a run of blanks in the name, then no ':' (the lazy name retried the run at each blank).
    ("config-blank-run", 'b"*c xConfiguration SIP TLS" + b" " * MIB + b"Mode On\\n"', _SETTINGS, []),
    # OLD-HANGS: the same run, mixed tabs, with a separator after a later word.
    (
        "config-blank-run-then-colon",
        'b"*c xConfiguration A" + b" \\t" * (MIB // 2) + b"B: On\\n"',
        _SETTINGS,
        [["A B", "On"]],
    ),
    (
        "config-100k-lines",
        "b'*c xConfiguration SIP TLS Mode: \"On\"\\r\\n' * 100_000",
        "len(xconfig.parse(data))",
        100_000,
    ),
    ("config-every-byte", "bytes(range(256)) * (policy.MAX_CONFIG_BYTES // 256)", _SETTINGS, []),
    (
        "config-every-byte-after-head",
        '(b"*c xConfiguration " + bytes(range(256)).replace(b"\\n", b"") + b"\\n") * (MIB // 256)',
        _SETTINGS,
        [],
    ),
    # OLD-HANGS: a crafted ca.pem: a header line with a blank run before its last byte.
    (
        "ca-header-blank-run",
        _pem("CERTIFICATE", 'b"Proc-Type: 4," + b" " * MIB + b"x\\n\\nMIIB"'),
        _CA,
        "cert-unparsable",
    ),
    # OLD-HANGS: the same in a key block, read back: the value keeps its inner blanks.
    (
        "pem-header-blank-run",
        _pem("RSA PRIVATE KEY", 'b"Proc-Type: 4,ENCRYPTED" + b"\\t " * (MIB // 2) + b"x\\n\\nAAAA"'),
        _HEADERS,
        [[["Proc-Type", len("4,ENCRYPTED") + MIB + 1]]],
    ),
    # OLD-HANGS: continuations were joined one at a time, copying the value at
    # each line: 2.8 s at 1 MiB, 235 s at 8 MiB (pem_blocks has no size cap).
    (
        "pem-header-continuations",
        _pem("RSA PRIVATE KEY", 'b"Proc-Type: 4,ENCRYPTED\\n" + b" x\\n" * (8 * MIB // 3) + b"\\nAAAA"'),
        _HEADERS,
        [[["Proc-Type", len("4,ENCRYPTED") + 2 * (8 * MIB // 3)]]],
    ),
    ("ca-100k-begin-fragments", 'b"-----BEGIN " * 100_000', _CA, "pem-malformed"),
    ("ca-100k-begin-lines", 'b"-----BEGIN CERTIFICATE-----\\n" * 100_000', _CA, "pem-malformed"),
    ("ca-label-run", 'b"-----BEGIN " + b"A-" * (MIB // 2) + b"-----\\n"', _CA, "pem-malformed"),
    ("ca-base64-body", _pem("CERTIFICATE", '(b"QUFB" * 16 + b"\\n") * (MIB // 65)'), _CA, "cert-unparsable"),
    ("ca-30k-blocks", "(" + _SMALL + ") * 30_000", "len(pem.pem_blocks(data))", 30_000),
    ("ca-blank-run-between-blocks", _SMALL + ' + b" " * MIB + ' + _SMALL, "len(pem.pem_blocks(data))", 2),
]


def _run_child(data: str, call: str) -> dict:
    """Run ``call`` on ``data`` in a fresh interpreter, killed after TIMEOUT seconds; its JSON report."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD.format(data=data, call=call)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"still parsing after {TIMEOUT} s: super-linear on crafted input")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


class TestWorstCases:
    """Crafted input as large as the scanner reads, or larger, comes back well within the timeout, rightly parsed."""

    @pytest.mark.parametrize(
        ("data", "call", "expected"),
        [  # the everyday loop keeps one case that hung the old code per parser
            pytest.param(
                *case[1:],
                id=case[0],
                marks=() if case[0] in ("config-blank-run", "ca-header-blank-run") else pytest.mark.slow,
            )
            for case in WORST_CASES
        ],
    )
    def test_crafted_input_is_parsed_quickly(self, data, call, expected):
        """The parser returns (or refuses with a CertError) within the timeout, and its answer is the right one."""
        report = _run_child(data, call)
        assert report["outcome"] == expected
