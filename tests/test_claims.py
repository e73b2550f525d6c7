"""scoreviz.claims: verdicts from measured numbers, the regression assertion, the CSV and the README block."""

import pandas as pd
import pytest

from scoreviz import claims


def _claims():
    c = claims.Claims("05", "cpu", "seed 0")
    c.verdict("order", "A beats B", "Paper Table 4", "98 > 85", "0.80 > 0.70", holds=0.80 > 0.70)
    c.verdict("gap", "C beats B", "Paper Table 4", "91 > 85", "0.64 < 0.70", holds=False, partly=True,
              reason="image 0.64 < 0.70")
    c.compare("mvtec", "MVTec AD mean", "Paper Table 4", 0.977, None, not_run="needs MVTec AD")
    return c


def test_statuses_come_from_the_condition():
    c = _claims()
    assert [r.status for r in c.rows.values()] == ["reproduced", "partly", "not run on this profile"]
    assert c.rows["order"].reason == "" and c.rows["mvtec"].paper == "97.7" and c.rows["mvtec"].measured == "-"


@pytest.mark.parametrize("measured, status", [(0.970, "reproduced"), (0.990, "reproduced"),
                                              (0.950, "partly"), (0.900, "not reproduced")])
def test_compare_against_the_paper(measured, status):
    c = claims.Claims("05", "paper")
    row = c.compare("m", "MVTec AD mean", "Table 4", 0.977, measured)
    assert row.status == status and row.measured == f"{100 * measured:.1f}"
    assert (row.reason == "") == (status == "reproduced")
    if status != "reproduced":
        assert f"{100 * (measured - 0.977):+.1f} points" in row.reason


def test_short_of_reproduced_needs_a_reason_and_keys_are_unique():
    c = claims.Claims("05", "cpu")
    with pytest.raises(ValueError, match="measured reason"):
        c.verdict("x", "claim", "src", "p", "m", holds=False)
    with pytest.raises(ValueError, match="say why"):
        c.not_run("y", "claim", "src", "p", "")
    c.verdict("x", "claim", "src", "p", "m", holds=True)
    with pytest.raises(ValueError, match="twice"):
        c.verdict("x", "claim", "src", "p", "m", holds=True)


def test_require_fails_on_a_regression_and_on_an_unasserted_reproduction():
    c = _claims()
    c.require("order")
    with pytest.raises(AssertionError, match="expected reproduced, got partly: gap"):
        c.require("order", "gap")
    with pytest.raises(AssertionError, match="reproduced but not asserted: order"):
        c.require()
    with pytest.raises(KeyError, match="nope"):
        c.require("nope")


def test_markdown_table_and_csv(tmp_path):
    c = _claims()
    assert "Filled in by the last section" in claims.Claims("01", "cpu").markdown()
    md = c.markdown()
    assert "| A beats B (Paper Table 4) | 98 > 85 | 0.80 > 0.70 | **reproduced** |  |" in md
    assert md.rstrip().endswith("1 reproduced, 1 partly, 1 not run on this profile")
    table = c.finish(tmp_path)
    saved = pd.read_csv(tmp_path / "05_claims.csv", keep_default_na=False)
    assert saved.equals(table.astype(str)) and list(saved.key) == ["order", "gap", "mvtec"]
    assert not list(tmp_path.glob(".*tmp*"))


def test_readme_block_and_update(tmp_path):
    _claims().finish(tmp_path / "figs")
    c = claims.Claims("01", "cpu")
    c.verdict("a", "paths | differ", "Fig. 3", "picture", "7.1 vs 0.9", holds=True)
    c.finish(tmp_path / "figs")
    block = claims.readme_block(tmp_path / "figs")
    lines = [l for l in block.splitlines() if l.startswith("- ")]
    assert lines[0].startswith("- **01** paths | differ (Fig. 3): **reproduced**; paper picture, measured 7.1 vs 0.9")
    assert "- **05** C beats B (Paper Table 4): **partly**; paper 91 > 85, measured 0.64 < 0.70; image 0.64 < 0.70" in lines
    assert "2 reproduced, 1 partly, 0 not reproduced, 1 not run on this profile" in block
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{claims.README_START}\nold\n{claims.README_END}\n\nrest\n")
    assert claims.update_readme(readme, tmp_path / "figs")
    assert readme.read_text() == f"# x\n\n{block}\n\nrest\n"
    assert not claims.update_readme(readme, tmp_path / "figs")
    (tmp_path / "bad.md").write_text("no section")
    with pytest.raises(ValueError, match="no '<!-- claims:start -->'"):
        claims.update_readme(tmp_path / "bad.md", tmp_path / "figs")


def test_against_paper_uses_the_papers_numbers_for_the_categories_run():
    from scoreviz import paper
    c = claims.Claims("05", "paper")
    ref = paper.reported("spr", "mpdd", "pixel_auroc")
    row = c.against_paper("mpdd", "mean pixel AUROC", "spr", "mpdd", "pixel_auroc",
                          {"metal_plate": ref["metal_plate"] - 0.03, "tubes": ref["tubes"] - 0.03})
    assert row.claim == "MPDD: mean pixel AUROC (2 of 6 categories)" and row.status == "partly"
    assert row.paper == f"{100 * (ref['metal_plate'] + ref['tubes']) / 2:.1f}" and "-3.0 points" in row.reason
    assert row.source == paper.source("spr", "mpdd", "pixel_auroc")
    row = c.against_paper("none", "MPDD", "spr", "mpdd", "pixel_auroc", None, not_run="cpu profile: textures")
    assert row.status == "not run on this profile" and row.paper == "96.8" and row.reason == "cpu profile: textures"


def test_a_smoke_run_reproduces_nothing():
    c = claims.Claims("05", "paper", "mvtec", smoke=True)
    c.verdict("a", "maps localise", "Fig. 4", "maps", "0.995", holds=True)
    row = c.compare("b", "MVTec AD mean", "Table 1", 0.974, 0.995)
    assert {r.status for r in c.rows.values()} == {"not run on this profile"} and row.measured == "99.5"
    assert "smoke run" in row.reason and "(profile `paper`, mvtec, smoke run)" in c.markdown()
    c.require()


def test_require_asserts_only_the_profile_and_data_it_was_written_for(capsys):
    c = _claims()                                  # 'gap' is partly: requiring it fails on the cpu profile
    with pytest.raises(AssertionError):
        c.require("order", "gap")
    c.require("order", "gap", other_data=True)
    claims.Claims("05", "paper").require("anything")
    assert capsys.readouterr().out.splitlines() == ["claims not asserted: other data",
                                                   "claims not asserted: no committed paper-profile run"]
