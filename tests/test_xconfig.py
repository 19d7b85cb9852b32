"""Tests for migrate.xconfig: the configuration text, parsed and edited as bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migrate import policy, xconfig
from migrate.errors import ConfigError, MigrateError

RETIRED = policy.RETIRED_SETTING.encode()
CHECKING = policy.CHECKING_SETTING.encode()

SAMPLE = (
    b'*c xConfiguration Administration HTTPS Mode: "On"\n'
    b"*c xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload: On\n"
    b'*c xConfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode: "On"\n'
    b'*c xConfiguration Zones Zone 6 DNS SIP TLS Verify Mode: "On"\n'
    b"OK\n"
)


def _one(line: bytes) -> xconfig.Setting:
    settings = xconfig.parse(line)
    assert len(settings) == 1, settings
    return settings[0]


class TestLines:
    """The one line splitter."""

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            (b"", []),
            (b"a", [(b"a", b"")]),
            (b"a\n", [(b"a", b"\n")]),
            (b"a\r\n", [(b"a", b"\r\n")]),
            (b"a\r\nb\nc", [(b"a", b"\r\n"), (b"b", b"\n"), (b"c", b"")]),
            (b"\n\n", [(b"", b"\n"), (b"", b"\n")]),
            (b"a\rb\n", [(b"a\rb", b"\n")]),
            (b"a\r", [(b"a\r", b"")]),
            (b"a\r\r\n", [(b"a\r", b"\r\n")]),
            (b"\xff\xfe\r\n\x00", [(b"\xff\xfe", b"\r\n"), (b"\x00", b"")]),
        ],
    )
    def test_splits_on_lf_with_cr_in_the_ending(self, data, expected):
        """A line ends at LF, a CR just before it belongs to the ending, and a lone CR is content."""
        assert xconfig.lines(data) == expected

    @given(st.binary())
    def test_round_trips_arbitrary_bytes(self, data):
        """Joining every line's content and ending gives back the input exactly."""
        assert b"".join(content + end for content, end in xconfig.lines(data)) == data

    @given(st.binary())
    def test_contents_hold_no_lf(self, data):
        """No content holds an LF and every ending but the last is non-empty."""
        pairs = xconfig.lines(data)
        assert all(b"\n" not in content for content, _ in pairs)
        assert all(end in (b"\n", b"\r\n") for _, end in pairs[:-1])


class TestParse:
    """Reading the settings out of the text."""

    @pytest.mark.parametrize(
        ("line", "name", "value"),
        [
            (b"*c xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload: On", policy.RETIRED_SETTING, "On"),
            (
                b'*c xConfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode: "On"',
                policy.CHECKING_SETTING,
                "On",
            ),
            (b"*c xConfiguration Logging Level: 1", "Logging Level", "1"),
            (b'*c xConfiguration SystemUnit Name: ""', "SystemUnit Name", ""),
            (b'*c xConfiguration SystemUnit Name: "a "quoted" b"', "SystemUnit Name", 'a "quoted" b'),
            (b'*c xConfiguration SystemUnit Name: "unbalanced', "SystemUnit Name", '"unbalanced'),
            (b'*c xConfiguration SystemUnit Name: "', "SystemUnit Name", '"'),
            (b'*c xConfiguration SystemUnit Name: ""On""', "SystemUnit Name", '"On"'),
            (b'*c xConfiguration Policy Url: "http://x:8080/a: b"', "Policy Url", "http://x:8080/a: b"),
            (b"*c xConfiguration Mode:  On", "Mode", "On"),
            (b"*c xConfiguration Mode: ", "Mode", ""),
        ],
    )
    def test_reads_quoted_and_bare_values(self, line, name, value):
        """One pair of surrounding quotes is stripped, and the name ends at the first colon-blank."""
        setting = _one(line)
        assert (setting.name, setting.value) == (name, value)

    @pytest.mark.parametrize(
        "line",
        [
            b"*c xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload: On",
            b"*C XCONFIGURATION XCP TLS Certificate CVS EnableServerEkuUpload: On",
            b"*c xconfiguration XCP TLS Certificate CVS EnableServerEkuUpload: On",
            b"  \t*c xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload: On",
            b"*c\txConfiguration\tXCP  TLS \t Certificate CVS    EnableServerEkuUpload:\tOn",
            b"*c   xConfiguration   XCP TLS Certificate CVS EnableServerEkuUpload :  On",
            b"*c xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload: On  \t",
            b"*c xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload: On\r",
            b'*c xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload: "On" \t',
        ],
    )
    def test_tolerates_case_and_blanks(self, line):
        """Keywords in any case, runs of spaces and tabs, and trailing blanks still give the same setting."""
        setting = _one(line)
        assert (setting.name, setting.value) == (policy.RETIRED_SETTING, "On")

    def test_keeps_the_name_case_of_the_file(self):
        """The name is the file's own spelling, with its words joined by single spaces."""
        setting = _one(b"*c xConfiguration xcp  tls\tcertificate CVS enableservereKUupload: off")
        assert setting.name == "xcp tls certificate CVS enableservereKUupload"

    @pytest.mark.parametrize(
        "line",
        [
            b"OK",
            b"",
            b"   ",
            b"# *c xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload: On",
            b"*s xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload: On",
            b"*c xStatus XCP TLS Certificate CVS EnableServerEkuUpload: On",
            b"*c xConfigurationXCP TLS Certificate CVS EnableServerEkuUpload: On",
            b"*cxConfiguration XCP TLS Certificate CVS EnableServerEkuUpload: On",
            b"*c xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload On",
            b"*c xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload:On",
            b"*c xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload:",
            b"*c xConfiguration : On",
            b"*c xConfiguration",
        ],
    )
    def test_ignores_lines_that_are_not_settings(self, line):
        """Lines without the prefix, the keyword, a name or the colon-blank separator are not settings."""
        assert xconfig.parse(line + b"\n") == ()

    def test_numbers_lines_from_one_counting_every_line(self):
        """Line numbers are 1-based and count blank and foreign lines too."""
        settings = xconfig.parse(SAMPLE)
        assert [s.line_no for s in settings] == [1, 2, 3, 4]
        data = b"OK\n\n# comment\r\n" + SAMPLE
        assert [s.line_no for s in xconfig.parse(data)] == [4, 5, 6, 7]

    def test_raw_is_the_line_without_its_ending(self):
        """``raw`` holds the line's exact bytes, quotes and trailing blanks included, without CR or LF."""
        data = b'OK\r\n*c  xConfiguration A B:  "On" \t\r\nrest'
        (setting,) = xconfig.parse(data)
        assert setting.raw == b'*c  xConfiguration A B:  "On" \t'

    @pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
    def test_reads_every_ending_and_a_last_line_without_one(self, ending):
        """LF, CRLF, mixed endings and an unterminated last line all give the same settings."""
        data = SAMPLE.replace(b"\n", ending)
        mixed = b"".join(c + (b"\r\n" if i % 2 else b"\n") for i, (c, _) in enumerate(xconfig.lines(SAMPLE)))
        unterminated = SAMPLE.replace(b"\nOK\n", b"")
        expected = [(s.name, s.value) for s in xconfig.parse(SAMPLE)]
        for text in (data, mixed, unterminated):
            assert [(s.name, s.value) for s in xconfig.parse(text)] == expected

    def test_decodes_odd_bytes_with_replacement(self):
        """Bytes that are not UTF-8 become U+FFFD in name and value, and stay exact in ``raw``."""
        line = b'*c xConfiguration SystemUnit Name\xff: "caf\xe9 \xc3\xa9"'
        setting = _one(b"\xfe\xff junk\n" + line + b"\n")
        assert setting.name == "SystemUnit Name\ufffd"
        assert setting.value == "caf\ufffd \u00e9"
        assert setting.raw == line

    def test_reads_a_first_line_after_a_bom(self):
        """A UTF-8 BOM before the first line does not hide its setting, and stays in ``raw``."""
        data = xconfig.BOM + SAMPLE
        settings = xconfig.parse(data)
        assert settings[0].name == "Administration HTTPS Mode"
        assert settings[0].raw.startswith(xconfig.BOM)

    def test_a_bom_inside_the_text_is_content(self):
        """A BOM sequence past the start of the file is not skipped: that line is not a setting."""
        assert xconfig.parse(b"OK\n" + xconfig.BOM + b"*c xConfiguration A: On\n") == ()


class TestFind:
    """Looking a setting up by its full name."""

    @pytest.mark.parametrize(
        "query",
        [
            policy.RETIRED_SETTING,
            policy.RETIRED_SETTING.upper(),
            policy.RETIRED_SETTING.lower(),
            "  XCP\tTLS  Certificate CVS EnableServerEkuUpload ",
        ],
    )
    def test_matches_ignoring_case_and_blanks(self, query):
        """A query in any case and spacing finds the setting written in any case and spacing."""
        data = b"*c xConfiguration xcp  TLS\tcertificate cvs ENABLESERVEREKUUPLOAD: On\n"
        assert [s.line_no for s in xconfig.find(xconfig.parse(data), query)] == [1]

    @pytest.mark.parametrize(
        "query",
        [
            "XCP TLS Certificate CVS",
            "XCP TLS Certificate CVS EnableServerEkuUploadX",
            "TLS Certificate CVS EnableServerEkuUpload",
            "XCP TLS Certificate CVS EnableServerEkuUpload Extra",
            "",
        ],
    )
    def test_matches_the_full_name_only(self, query):
        """A prefix, suffix or longer name does not match."""
        assert xconfig.find(xconfig.parse(SAMPLE), query) == ()

    def test_finds_every_duplicate(self):
        """Each EnableServerEkuUpload line is found, in file order, whatever its case or quoting."""
        data = (
            b"*c xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload: On\n"
            b"OK\n"
            b'*c xConfiguration Zones Zone 6 DNS SIP TLS Verify Mode: "On"\n'
            b"*c xconfiguration xcp tls certificate cvs enableservereku upload: On\n"
            b'*C XCONFIGURATION XCP TLS CERTIFICATE CVS ENABLESERVEREKUUPLOAD: "off"\r\n'
            b"  *c xConfiguration XCP TLS Certificate CVS  EnableServerEkuUpload: On"
        )
        found = xconfig.find(xconfig.parse(data), policy.RETIRED_SETTING)
        assert [(s.line_no, s.value) for s in found] == [(1, "On"), (5, "off"), (6, "On")]

    def test_finds_the_checking_setting(self):
        """The X15.5 checking mode is found by its policy name."""
        (setting,) = xconfig.find(xconfig.parse(SAMPLE), policy.CHECKING_SETTING)
        assert (setting.line_no, setting.value) == (3, "On")


class TestIsOn:
    """Reading an On/Off value."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("On", True),
            ("on", True),
            ("ON", True),
            ('"ON"', True),
            (' "On" ', True),
            ("Off", False),
            ("off", False),
            ('"OFF"', False),
            ("", None),
            ('""', None),
            ("1", None),
            ("true", None),
            ("Onn", None),
            ('"On', None),
            ("O n", None),
            ("\ufffd", None),
        ],
    )
    def test_reads_on_and_off_in_any_case(self, value, expected):
        """On and Off in any case, quoted or bare, are read; anything else is unknown."""
        assert xconfig.is_on(value) is expected


class TestLineEnding:
    """The file's own line ending."""

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            (b"", b"\n"),
            (b"no newline", b"\n"),
            (b"a\nb\r\n", b"\n"),
            (b"a\r\nb\n", b"\r\n"),
            (b"\r\n", b"\r\n"),
            (b"\n", b"\n"),
            (b"a\rb\nc\r\n", b"\n"),
            (b"lone cr\r", b"\n"),
        ],
    )
    def test_is_the_ending_of_the_first_terminated_line(self, data, expected):
        """The first line's ending is the file's; LF when no line is terminated."""
        assert xconfig.line_ending(data) == expected


class TestSettingLine:
    """The line the migration writes to state a setting."""

    def test_states_the_setting_in_the_printed_form(self):
        """The line is ``*c xConfiguration <name>: <value>`` with no line ending."""
        line = xconfig.setting_line(policy.CHECKING_SETTING, policy.CHECKING_DEFAULT)
        assert line == b"*c xConfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode: On"

    @pytest.mark.parametrize("value", ["On", '"On"', "Off", "caf\u00e9"])
    def test_parses_back_to_the_same_setting(self, value):
        """What setting_line writes, parse reads back as that name and unquoted value."""
        (setting,) = xconfig.parse(xconfig.setting_line(policy.CHECKING_SETTING, value))
        assert (setting.name, setting.value) == (policy.CHECKING_SETTING, value.strip('"'))
        assert xconfig.find([setting], policy.CHECKING_SETTING) == (setting,)

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("A\nB", "On"),
            ("A", "On\r\n*c xConfiguration B: Off"),
            ("A", "On\r"),
            ("", "On"),
            ("  ", "On"),
            ("A: B", "On"),
        ],
    )
    def test_refuses_what_would_not_be_one_setting_line(self, name, value):
        """A line break, an empty name or a colon-blank inside the name is a programming error."""
        with pytest.raises(ValueError):
            xconfig.setting_line(name, value)


class TestEdit:
    """Removing and appending lines, byte for byte."""

    def test_nothing_to_do_returns_the_same_bytes(self):
        """Without removals or appends the input object itself comes back."""
        data = b"odd \xff\r\n\xef\xbb\xbfline  \nlast"
        assert xconfig.edit(data) is data
        assert xconfig.edit(data, remove_lines=[], append=[]) is data
        assert xconfig.edit(b"") == b""

    @pytest.mark.parametrize(
        ("remove", "expected"),
        [
            ({1}, b"two\r\nthree\nfour"),
            ({4}, b"one\ntwo\r\nthree\n"),
            ({1, 4}, b"two\r\nthree\n"),
            ({2, 3}, b"one\nfour"),
            ([3, 3, 2], b"one\nfour"),
            ({1, 2, 3, 4}, b""),
        ],
    )
    def test_removes_lines_with_their_endings(self, remove, expected):
        """Removed lines go with their endings, first and last included; others keep theirs."""
        data = b"one\ntwo\r\nthree\nfour"
        assert xconfig.edit(data, remove_lines=remove) == expected

    @pytest.mark.parametrize("bad", [0, 5, -1, 100])
    def test_removing_a_missing_line_fails(self, bad):
        """A line number the text does not have raises ConfigError ``config-line-missing``."""
        with pytest.raises(ConfigError) as info:
            xconfig.edit(b"one\ntwo\nthree\nfour\n", remove_lines=[2, bad])
        assert info.value.id == "config-line-missing"
        assert isinstance(info.value, MigrateError)
        assert str(bad) in info.value.message

    def test_removing_from_an_empty_text_fails(self):
        """An empty text has no line 1."""
        with pytest.raises(ConfigError) as info:
            xconfig.edit(b"", remove_lines=[1])
        assert info.value.id == "config-line-missing"

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            (b"a\nb\n", b"a\nb\nX\nY\n"),
            (b"a\r\nb\r\n", b"a\r\nb\r\nX\r\nY\r\n"),
            (b"a\r\nb\n", b"a\r\nb\nX\r\nY\r\n"),
            (b"a\nb", b"a\nb\nX\nY\n"),
            (b"a\r\nb", b"a\r\nb\r\nX\r\nY\r\n"),
            (b"a", b"a\nX\nY\n"),
            (b"a\r", b"a\r\nX\nY\n"),
            (b"", b"X\nY\n"),
        ],
    )
    def test_appends_with_the_files_own_ending(self, data, expected):
        """Appended lines take the file's ending, and an unterminated last line gets it first."""
        assert xconfig.edit(data, append=[b"X", b"Y"]) == expected

    def test_remove_and_append_together(self):
        """The retired setting goes and the checking mode arrives, everything else unchanged."""
        data = (
            b"OK\r\n"
            b"*c xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload: On\r\n"
            b'*c xConfiguration Zones Zone 6 DNS SIP TLS Verify Mode: "On"  \r\n'
            b'*c xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload: "Off"'
        )
        retired = xconfig.find(xconfig.parse(data), policy.RETIRED_SETTING)
        line = xconfig.setting_line(policy.CHECKING_SETTING, policy.CHECKING_DEFAULT)
        out = xconfig.edit(data, remove_lines=[s.line_no for s in retired], append=[line])
        assert out == (b'OK\r\n*c xConfiguration Zones Zone 6 DNS SIP TLS Verify Mode: "On"  \r\n' + line + b"\r\n")
        assert xconfig.find(xconfig.parse(out), policy.RETIRED_SETTING) == ()
        (checking,) = xconfig.find(xconfig.parse(out), policy.CHECKING_SETTING)
        assert xconfig.is_on(checking.value) is True

    def test_removing_the_unterminated_last_line_before_appending(self):
        """When the unterminated last line is removed, the line before it keeps its single ending."""
        assert xconfig.edit(b"a\r\nb", remove_lines=[2], append=[b"X"]) == b"a\r\nX\r\n"

    def test_keeps_odd_bytes(self):
        """Lines with bytes that are not UTF-8, NULs and lone CRs survive untouched."""
        data = b'\xff\xfe\x00 junk\r\n*c xConfiguration A: On\n\x80\rx\r\n*c xConfiguration B: "\xe9"\n'
        out = xconfig.edit(data, remove_lines=[2], append=[b"Z"])
        assert out == b'\xff\xfe\x00 junk\r\n\x80\rx\r\n*c xConfiguration B: "\xe9"\nZ\r\n'

    @pytest.mark.parametrize(
        ("remove", "expected"),
        [
            ({2}, xconfig.BOM + b"*c xConfiguration A: On\r\n"),
            ({1}, xconfig.BOM + b"*c xConfiguration B: On\r\n"),
            ({1, 2}, xconfig.BOM),
        ],
    )
    def test_keeps_a_bom(self, remove, expected):
        """A BOM that starts the file stays at its start, even when the first line is removed."""
        data = xconfig.BOM + b"*c xConfiguration A: On\r\n*c xConfiguration B: On\r\n"
        assert xconfig.edit(data, remove_lines=remove) == expected

    def test_keeps_a_bom_when_appending(self):
        """Appending to a file with a BOM keeps the BOM and every byte before the new line."""
        data = xconfig.BOM + b"*c xConfiguration A: On"
        assert xconfig.edit(data, append=[b"B"]) == data + b"\nB\n"

    @pytest.mark.parametrize("line", [b"X\nY", b"X\r", b"\n"])
    def test_refuses_an_appended_line_with_a_break(self, line):
        """An appended line holding CR or LF would shift line numbers, so it is refused."""
        with pytest.raises(ValueError):
            xconfig.edit(b"a\n", append=[line])

    @given(
        st.lists(
            st.tuples(st.binary().map(lambda b: b.replace(b"\n", b"")), st.sampled_from([b"\n", b"\r\n"])),
            max_size=12,
        ),
        st.binary().map(lambda b: b.replace(b"\n", b"")),
        st.data(),
    )
    def test_removal_keeps_exactly_the_other_lines(self, terminated, last, draw):
        """Removing any subset of lines leaves the bytes of the other lines, in order."""
        pieces = [content + end for content, end in terminated] + ([last] if last else [])
        data = b"".join(pieces)
        assert len(xconfig.lines(data)) == len(pieces)
        remove = draw.draw(st.sets(st.integers(1, len(pieces))) if pieces else st.just(set()))
        kept = b"".join(piece for no, piece in enumerate(pieces, start=1) if no not in remove)
        if 1 in remove and data.startswith(xconfig.BOM):
            kept = xconfig.BOM + kept
        assert xconfig.edit(data, remove_lines=remove) == kept

    @given(st.binary(), st.lists(st.binary().map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")), max_size=4))
    def test_append_keeps_the_text_as_a_prefix(self, data, append):
        """Appending never changes a byte of the text, only adds the missing ending and the new lines."""
        out = xconfig.edit(data, append=append)
        if not append:
            assert out is data
            return
        ending = xconfig.line_ending(data)
        fixed = data + ending if data and not data.endswith(b"\n") else data
        assert out == fixed + b"".join(line + ending for line in append)
        assert xconfig.lines(out)[-len(append) :] == [(line, ending) for line in append]
