"""A corpus of bad input for every configuration file the project reads (instructions, data maps, the
register of recipients), and property-based checks of the parsers: each bad input gets a clear
error that names the place, and nothing else escapes. (Each kind of error within a data map or an
instruction file: test_datamap.py and test_retention.py; normalisers: test_identities.py; server-log
lines: test_serverlogs.py; a wrong keyring: test_cli.py and test_vault.py.)"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.common.errors import InvalidInput
from include.common.yamlfiles import MAX_FILE_BYTES
from include.datamap.model import load_data_map
from include.duties.disclosures import load_register, read_batch
from include.policies.instructions import load_instruction_file
from include.policies.rules import FinancialYearEnd, RetentionRule

LOADERS = {"instructions": load_instruction_file, "data map": load_data_map, "recipients": load_register}
CORPUS = [
    ("binary", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", r"\.yaml: not UTF-8 text"),
    ("oversized", b"# " + b"x" * MAX_FILE_BYTES + b"\n", rf"\.yaml: larger than {MAX_FILE_BYTES:,} bytes"),
    ("empty", b"", r"\.yaml:1: expected a mapping with"),
    ("a list", b"- one\n- two\n", r"\.yaml:1: expected a mapping with"),
    ("broken YAML", b"controller: [unclosed\n", r"\.yaml:1: not valid YAML"),
    ("a tab", b"controller:\n\t- x\n", r"\.yaml:\d+: not valid YAML"),
    ("unknown key", b"surprise: 1\n", r"\.yaml:1: "),
    # Aliases: a "billion laughs" (nine levels of nine) is refused before it is expanded, a recursive
    # alias and deep nesting before they exhaust the stack.
    ("billion laughs", ("a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
        f"{b}: &{b} [{','.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi"))).encode(),
     r"\.yaml:2: refused YAML: its aliases stand for more than 100,000 values \(a \"billion laughs\"\)"),
    ("recursive alias", b"controller: &x [1, *x]\n",
     r"\.yaml:1: refused YAML: the alias \*x is inside the value it names"),
    ("nested too deep", b"controller: " + b"[" * 100 + b"]" * 100 + b"\n",
     r"\.yaml:1: refused YAML: nested more than 64 levels deep"),
    # Deeper than libyaml goes (1,000 levels): refused while it is read, before anything is composed.
    ("nested far too deep", b"controller: " + b"[" * 5000 + b"]" * 5000 + b"\n",
     r"\.yaml:1: not valid YAML: exceeded maximum nesting depth"),
    ("aliases nested too deep", ("a0: &a0 [[[[[[[[[[[[[[[[[[[[x]]]]]]]]]]]]]]]]]]]]\n" + "".join(
        f"a{i}: &a{i} [[[[[[[[[[[[[[[[[[[[*a{i - 1}]]]]]]]]]]]]]]]]]]]]\n" for i in range(1, 60))).encode(),
     r"\.yaml:2: refused YAML: its aliases nest values more than 64 levels deep"),
]


@pytest.mark.parametrize("kind", LOADERS)
@pytest.mark.parametrize(("case", "content", "message"), CORPUS, ids=[c[0] for c in CORPUS])
def test_every_config_file_refuses_bad_input_naming_the_file(tmp_path, kind, case, content, message):
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match=message) as caught:
        LOADERS[kind](path)
    assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize("kind", LOADERS)
def test_a_missing_file_is_named(tmp_path, kind):
    with pytest.raises(InvalidInput, match=r"nowhere\.yaml: cannot be read"):
        LOADERS[kind](tmp_path / "nowhere.yaml")


# Inputs a person might write for each grammar: its words in any case, with runs of spaces and tabs
# between and around them.
GAP = st.text(alphabet=" \t", min_size=1, max_size=3)


@st.composite
def typed(draw, phrase: str) -> str:
    words = [draw(st.sampled_from([w, w.upper(), w.capitalize()])) for w in phrase.split()]
    gaps = [draw(GAP) for _ in words[1:]]
    return (draw(st.text(" ", max_size=2)) + words[0] + "".join(g + w for g, w in zip(gaps, words[1:], strict=True))
            + draw(st.text(" ", max_size=2)))


# The anchors of include/policies/rules.py's docstring, written out: phrase -> anchor.
ANCHOR_PHRASES = {"collection": "collection", "the date of collection": "collection",
                  "the end of the financial year": "financial_year_end",
                  "the end of the financial year the record relates to": "financial_year_end",
                  "the contract ends": "contract_end", "the end of the contract": "contract_end"}


@st.composite
def retention_rules(draw) -> tuple[str, tuple[int, str, str]]:
    """A rule from the grammar, and the (amount, unit, anchor) it means."""
    if draw(st.booleans()):
        return draw(typed("until the enquiry is closed")), (0, "day", "enquiry_closed")
    amount = draw(st.integers(0, 999))
    number = draw(st.sampled_from([str(amount), f"{amount:03d}"]))
    unit = draw(st.sampled_from(["day", "week", "month", "year"]))
    phrase = draw(st.sampled_from(sorted(ANCHOR_PHRASES)))
    link = draw(st.sampled_from(["from", "after"]))
    return draw(typed(f"{number} {unit}{draw(st.sampled_from(['', 's']))} {link} {phrase}")), (
        amount, unit, ANCHOR_PHRASES[phrase])


# Hypothesis's 200 ms deadline is off: the first example pays for warming caches (the regular
# expressions, dateutil), and on a busy 2-core machine that alone can pass it.
@settings(deadline=None)
@given(retention_rules())
def test_a_retention_rule_from_the_grammar_is_parsed_to_its_meaning_and_reads_back_the_same(written):
    text, meaning = written
    rule = RetentionRule.parse(text)
    assert (rule.amount, rule.unit, rule.anchor) == meaning
    assert RetentionRule.parse(rule.text) == rule


@settings(deadline=None)
@given(st.one_of(st.text(max_size=80), retention_rules().map(lambda written: written[0])))
def test_a_retention_rule_is_parsed_or_refused_cleanly(text):
    try:
        rule = RetentionRule.parse(text)
    except InvalidInput as exc:
        assert "retention rule" in str(exc) or "a retention rule must be text" in str(exc)
    else:
        assert RetentionRule.parse(rule.text) == rule  # what it parsed to reads back the same


@settings(deadline=None)
@given(st.dates(date(2001, 1, 1), date(2001, 12, 31)))  # a year without 29 February: that is no year end
def test_a_financial_year_end_of_any_day_of_the_year_is_parsed_and_reads_back_the_same(day):
    end = FinancialYearEnd.parse(f"{day:%m-%d}")
    assert (end.month, end.day) == (day.month, day.day)
    assert str(end) == f"{day:%m-%d}" and FinancialYearEnd.parse(str(end)) == end


@settings(deadline=None)
@given(st.one_of(st.text(max_size=12), st.dates().map(lambda day: f"{day:%m-%d}"),
                 st.from_regex(r"\A[0-9]{2}-[0-9]{2}\Z")))
def test_a_financial_year_end_is_parsed_or_refused_cleanly(text):
    try:
        end = FinancialYearEnd.parse(text)
    except InvalidInput as exc:
        assert "financial_year_end" in str(exc)
    else:
        assert FinancialYearEnd.parse(str(end)) == end


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                 st.lists(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12),
                                   min_size=6, max_size=8), max_size=5).map(
                     lambda rows: ("controller,recipient,email,categories,legal_basis,disclosed_on,reference\n"
                                   + "".join(",".join(r) + "\n" for r in rows)).encode())))
def test_a_disclosure_batch_file_is_read_or_refused_cleanly(data):
    try:
        digest, rows = read_batch(data, "batch.csv")
    except InvalidInput as exc:
        assert str(exc).startswith("batch.csv")
    else:
        assert len(digest) == 64
        for row in rows:
            assert not isinstance(row, InvalidInput) or str(row).startswith("batch.csv:")


def test_the_shipped_configuration_loads(tmp_path):
    from include.common.paths import DEFAULT_DATAMAPS_DIR, DEFAULT_INSTRUCTIONS_DIR, DEFAULT_RECIPIENTS_FILE

    assert load_register(DEFAULT_RECIPIENTS_FILE).content.recipients
    assert all(load_data_map(p).content for p in Path(DEFAULT_DATAMAPS_DIR).glob("*.yaml"))
    assert all(load_instruction_file(p).content for p in Path(DEFAULT_INSTRUCTIONS_DIR).glob("*.yaml"))
    from bench.dsar import MAPS  # the benchmark's own maps follow the same rules

    for name, text in MAPS.items():
        (tmp_path / name).write_text(text)
        assert load_data_map(tmp_path / name).content.store == name.removesuffix(".yaml")
