"""A corpus of bad input for every configuration file the project reads (instructions, data maps, the
register of recipients), and property-based checks of the parsers: each bad input gets a clear
error that names the place, and nothing else escapes. (Each kind of error within a data map or an
instruction file: test_datamap.py and test_retention.py; normalisers: test_identities.py; server-log
lines: test_serverlogs.py; a wrong keyring: test_cli.py and test_vault.py.)"""

from __future__ import annotations

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
    ("nested too deep", b"controller: " + b"[" * 5000 + b"]" * 5000 + b"\n",
     r"\.yaml:1: refused YAML: nested more than 64 levels deep"),
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


@given(st.text(max_size=80))
def test_a_retention_rule_is_parsed_or_refused_cleanly(text):
    try:
        rule = RetentionRule.parse(text)
    except InvalidInput as exc:
        assert "retention rule" in str(exc) or "a retention rule must be text" in str(exc)
    else:
        assert RetentionRule.parse(rule.text) == rule  # what it parsed to reads back the same


@given(st.text(max_size=12))
def test_a_financial_year_end_is_parsed_or_refused_cleanly(text):
    try:
        end = FinancialYearEnd.parse(text)
    except InvalidInput as exc:
        assert "financial_year_end" in str(exc)
    else:
        assert FinancialYearEnd.parse(str(end)) == end


@settings(max_examples=300)
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
