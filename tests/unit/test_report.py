"""Output: secrets masked in diffs, control characters from hosts made visible."""
import io

from tasks.engine.report import Redactor, Reporter, StepResult, mask_secret_fields, printable, \
    unified_diff

OLD = "Old-CDATA-pw-42"
NEW = "New-pw-77"


def test_cdata_password_masked_on_both_sides():
    before = f"<ds>\n  <password><![CDATA[{OLD}]]></password>\n  <url>u</url>\n</ds>\n"
    after = f"<ds>\n  <password><![CDATA[{NEW}]]></password>\n  <url>u</url>\n</ds>\n"
    d = unified_diff("/conf/x.xml", before.encode(), after.encode(), Redactor())
    assert OLD not in d and NEW not in d and "CDATA" not in d, d
    assert "-  <password>***</password>" in d and "+  <password>***changed***</password>" in d, d


def test_cdata_password_replaced_by_plain_text_and_back():
    cdata = f"<password><![CDATA[{OLD}]]></password>\n"
    plain = f"<password>{NEW}</password>\n"
    for a, b in ((cdata, plain), (plain, cdata)):
        d = unified_diff("/x", a.encode(), b.encode(), Redactor())
        assert OLD not in d and NEW not in d, d
        assert "***changed***" in d


def test_cdata_same_value_is_unchanged_and_multiline_cdata_masked():
    text = f"<tns:Password><![CDATA[{OLD}]]></tns:Password>"
    assert mask_secret_fields(text, text) == "<tns:Password>***</tns:Password>"
    multi = f"<password><![CDATA[\n{OLD}\n]]></password>"
    assert OLD not in mask_secret_fields(multi)
    # CDATA mixed with text, and a '<' inside the CDATA
    mixed = f"<password>a<![CDATA[<{OLD}>]]>b</password>"
    assert mask_secret_fields(mixed) == "<password>***</password>"


def test_cdata_password_not_in_run_log(tmp_path):
    before = f"<password><![CDATA[{OLD}]]></password>\n"
    after = f"<password>{NEW}</password>\n"
    rep = Reporter(Redactor([NEW]), log_dir=tmp_path, stream=io.StringIO(), color=False)
    d = unified_diff("/x", before.encode(), after.encode(), rep.redact)
    rep.record(StepResult("node1", "configure", "changed", "", ["update /x"], [d]))
    rep.close()
    log = rep.log_path.read_text()
    assert "***changed***" in log and OLD not in log and NEW not in log


def test_printable_keeps_newline_and_tab_shows_the_rest():
    assert printable("a\tb\nc") == "a\tb\nc"
    assert printable("x\r\ny\n") == "x\ny\n"  # CRLF is a line end
    assert printable("\x1b[2J\x1b]0;pwned\x07") == "\\x1b[2J\\x1b]0;pwned\\x07"
    assert printable("a\rb\x00\x7f\x9b\x85") == "a\\x0db\\x00\\x7f\\x9b\\x85"
    assert printable("pä$$wörd-ünï €") == "pä$$wörd-ünï €"  # printable non-ASCII stays


def test_every_printer_strips_control_characters(tmp_path):
    evil = "tail\x1b[2J\x1b]0;pwned\x07\rover"
    out = io.StringIO()
    rep = Reporter(Redactor(), log_dir=tmp_path, stream=out, color=False)
    rep.line("node1", evil)
    rep.warn(evil)
    rep.record(StepResult("node1", "restart", "failed", "not healthy:\n" + evil,
                          changes=[evil], diffs=[evil]), show_diff=True)
    rep.log_only("node1", evil)
    rep.close()
    for text in (out.getvalue(), rep.log_path.read_text()):
        assert not any(ch in text for ch in "\x1b\x07\r"), repr(text)
        assert "\\x1b[2J\\x1b]0;pwned\\x07\\x0dover" in text
    # our own colours are still painted (after the text was made printable)
    tty = io.StringIO()
    Reporter(Redactor(), stream=tty, color=True).line("node1", "ok\x1b[31m", "ok")
    assert tty.getvalue() == "\x1b[32m[node1] ok\\x1b[31m\x1b[0m\n"
