"""Numbers in README.md come from committed outputs: the claims section from figures/*_claims.csv, the hazelnut
table from benchmarks/detect/hazelnut_toy/metrics.csv."""
from pathlib import Path

import pandas as pd
import pytest

from scoreviz import claims

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_claims_section_is_generated_from_the_committed_claims():
    if not list((ROOT / "figures").glob("*_claims.csv")):
        pytest.skip("no figures/*_claims.csv committed")
    assert claims.readme_block(ROOT / "figures") in README, \
        "README.md's claims section is stale: run `python -m scoreviz.claims`"


def test_readme_hazelnut_table_matches_the_committed_detect_output():
    metrics = pd.read_csv(ROOT / "benchmarks" / "detect" / "hazelnut_toy" / "metrics.csv").set_index("detector")
    names = {"SPR": "spr", "Score-DD (VE, flow ODE)": "scoredd_ve_flow", "DDAD": "ddad",
             "zscore (baseline)": "zscore", "patch_nn (baseline)": "patch_nn"}
    section = README[README.index("Measured on the hazelnut toy set"):]
    section = section[:section.index("\n## ")]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in names and len(cells) == 6:
            rows[names[cells[0]]] = [float(c) for c in cells[1:]]
    assert set(rows) == set(metrics.index), rows
    for det, values in rows.items():
        m = metrics.loc[det]
        expected = [m.image_auroc, m.pixel_auroc, m.aupro, m.fit_s, m.ms_per_image]
        assert values == pytest.approx(expected, abs=0.0006), (det, values, expected)
