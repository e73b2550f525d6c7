"""Claims with computed verdicts: what a paper claims, what this run measured, and a status derived from the
measured numbers (DESIGN: "Claims with verdicts").

A notebook creates one :class:`Claims`, shows it at the top (a placeholder that the last section fills in, through
Jupyter's display updates), adds each claim with the numbers it computed, writes ``NN_claims.csv`` and asserts that
exactly the expected claims are reproduced (:meth:`Claims.require`), so a regression turns the notebook red.
``python -m scoreviz.claims`` rewrites the README's claims section from the committed ``figures/*_claims.csv``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from .machine import atomic_csv

__all__ = ["STATUSES", "Claim", "Claims", "collect", "markdown_table", "readme_block", "update_readme"]

STATUSES = ("reproduced", "partly", "not reproduced", "not run on this profile")
README_START, README_END = "<!-- claims:start -->", "<!-- claims:end -->"
DATASET_NAMES = {"mvtec": "MVTec AD", "btad": "BTAD", "mpdd": "MPDD", "visa": "VisA", "mnist": "MNIST"}


@dataclasses.dataclass(frozen=True)
class Claim:
    """One row: the claim in a few words, where the paper makes it, the paper's figure, ours, the verdict."""
    key: str
    claim: str
    source: str
    paper: str
    measured: str
    status: str
    reason: str = ""


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


class Claims:
    """One notebook's claims, in the order they are added (keys unique)."""

    def __init__(self, notebook: str, profile: str, context: str = "", smoke: bool = False):
        """smoke: a smoke run (one epoch, the shortest loops): every claim is 'not run on this profile', with the
        smoke run's numbers kept in the measured column (they check the code path, not the claim)."""
        self.notebook, self.profile, self.smoke = notebook, profile, bool(smoke)
        self.context = ", ".join(filter(None, [context, "smoke run" if smoke else ""]))
        self.rows: dict[str, Claim] = {}
        self._handle = None

    # -- adding claims -------------------------------------------------------------------------------------------
    def _add(self, claim: Claim) -> Claim:
        if claim.key in self.rows:
            raise ValueError(f"claim {claim.key!r} added twice in notebook {self.notebook}")
        if claim.status not in STATUSES:
            raise ValueError(f"status {claim.status!r}: expected one of {STATUSES}")
        if self.smoke and claim.status != STATUSES[-1]:
            claim = dataclasses.replace(claim, status=STATUSES[-1], reason="a smoke run: its numbers check the code "
                                                                           "path, not the claim")
        self.rows[claim.key] = claim
        return claim

    def verdict(self, key: str, claim: str, source: str, paper: str, measured: str, *, holds: bool,
                partly: bool = False, reason: str = "") -> Claim:
        """A claim checked by a computed condition: reproduced if ``holds``, else partly / not reproduced, with the
        measured reason (required: a verdict short of reproduced must say what was measured)."""
        holds, partly = bool(holds), bool(partly)
        status = "reproduced" if holds else "partly" if partly else "not reproduced"
        if not holds and not reason:
            raise ValueError(f"claim {key!r} is {status}: give the measured reason")
        return self._add(Claim(key, claim, source, paper, measured, status, "" if holds else reason))

    def compare(self, key: str, claim: str, source: str, paper_value: float, measured_value: float | None, *,
                tolerance: float = 0.01, partly_within: float = 0.05, not_run: str = "", note: str = "") -> Claim:
        """A number against the paper's (fractions, printed in percent): reproduced if at most ``tolerance`` below
        it (or above), partly if at most ``partly_within`` below; ``measured_value=None``: not run, for the
        reason ``not_run``. ``note`` is added to the reason (what else was measured)."""
        if measured_value is None:
            return self.not_run(key, claim, source, _pct(paper_value), not_run)
        diff = measured_value - paper_value
        return self.verdict(key, claim, source, _pct(paper_value), _pct(measured_value),
                            holds=diff >= -tolerance, partly=diff >= -partly_within,
                            reason=f"{_pct(measured_value)} vs the paper's {_pct(paper_value)} "
                                   f"({100 * diff:+.1f} points)" + (f"; {note}" if note else ""))

    def against_paper(self, key: str, claim: str, paper_name: str, dataset: str, metric: str,
                      measured: dict | None, *, variant: str | None = None, not_run: str = "", **kw) -> Claim:
        """The mean of ``measured`` ({category: fraction}; None: not run, because ``not_run``) against the paper's
        numbers for the same categories (``paper.compare``); the claim is prefixed with the dataset's name and says
        how many of the paper's categories ran."""
        from . import paper as papers
        claim = f"{DATASET_NAMES.get(dataset, dataset)}: {claim}"
        ref = papers.compare(measured or {}, paper_name, dataset, metric, variant=variant)
        source = ref.attrs["source"]
        if measured is None:
            return self.not_run(key, claim, source, _pct(ref.at["mean", "paper"]), not_run)
        both = ref.drop(index="mean").dropna()
        if both.empty:
            return self.not_run(key, claim, source, _pct(ref.at["mean", "paper"]),
                                f"none of the categories run is in the paper's table ({sorted(measured)})")
        return self.compare(key, f"{claim} ({len(both)} of {len(ref) - 1} categories)", source,
                            float(both.paper.mean()), float(both.measured.mean()), **kw)

    def not_run(self, key: str, claim: str, source: str, paper: str, reason: str) -> Claim:
        """A claim this profile does not test (e.g. MVTec AD numbers on the cpu profile), and why."""
        if not reason:
            raise ValueError(f"claim {key!r} not run: say why")
        return self._add(Claim(key, claim, source, paper, "-", "not run on this profile", reason))

    # -- showing and saving --------------------------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        return pd.DataFrame([dataclasses.asdict(c) for c in self.rows.values()],
                            columns=[f.name for f in dataclasses.fields(Claim)])

    def markdown(self) -> str:
        head = f"**Claims of notebook {self.notebook}** (profile `{self.profile}`{', ' if self.context else ''}" \
               f"{self.context})\n\n"
        if not self.rows:
            return head + "_Filled in by the last section of this notebook, from the numbers it computes._\n"
        return head + markdown_table(self.table())

    def _bundle(self) -> dict:
        return {"text/markdown": self.markdown(), "text/plain": self.markdown()}

    def show(self):
        """Display the table (at the top of the notebook); :meth:`finish` later updates this very output."""
        from IPython.display import display
        self._handle = display(self._bundle(), raw=True, display_id=True)

    def finish(self, out_dir: str | Path | None = None) -> pd.DataFrame:
        """Fill in the table shown at the top, show it here too, and write ``<notebook>_claims.csv`` atomically."""
        from IPython.display import display
        if self._handle is not None:
            self._handle.update(self._bundle(), raw=True)
        display(self._bundle(), raw=True)
        table = self.table()
        if out_dir is not None:
            atomic_csv(table, Path(out_dir) / f"{self.notebook}_claims.csv")
        return table

    def require(self, *keys: str, profile: str = "cpu", other_data: bool = False) -> None:
        """Assert that exactly ``keys`` are reproduced: a listed claim that is not (a regression) fails, and so does
        a reproduced claim that is not listed (so every "reproduced" in the table is asserted). ``keys`` are what the
        committed run of ``profile`` reproduces, so nothing is asserted (and the notebook says why) in a smoke run,
        under another profile, or on other data (``other_data``: the notebook's DATASET was given)."""
        skip = "a smoke run" if self.smoke else "other data" if other_data else \
            f"no committed {self.profile}-profile run" if self.profile != profile else ""
        if skip:
            print(f"claims not asserted: {skip}")
            return
        unknown = [k for k in keys if k not in self.rows]
        if unknown:
            raise KeyError(f"no claim {unknown} in notebook {self.notebook}; claims: {list(self.rows)}")
        failed = [self.rows[k] for k in keys if self.rows[k].status != "reproduced"]
        unlisted = [c for c in self.rows.values() if c.status == "reproduced" and c.key not in keys]
        problems = [f"expected reproduced, got {c.status}: {c.key} ({c.claim}): measured {c.measured}; {c.reason}"
                    for c in failed]
        problems += [f"reproduced but not asserted: {c.key} ({c.claim}); add it to require()" for c in unlisted]
        assert not problems, "\n".join(problems)


def markdown_table(table: pd.DataFrame) -> str:
    """Claims as a markdown table (a ``notebook`` column first if present), then the count of each status."""
    first = ["notebook"] if "notebook" in table.columns else []
    lines = ["| " + " | ".join(first + ["claim", "paper", "measured", "status", "reason"]) + " |",
             "|" + "---|" * (len(first) + 5)]
    for row in table.to_dict("records"):
        cells = [row[c] for c in first] + [f"{row['claim']} ({row['source']})", row["paper"], row["measured"],
                                           f"**{row['status']}**", row["reason"]]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    counts = table.status.value_counts()
    return "\n".join(lines) + "\n\n" + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES if counts.get(s, 0)) + "\n"


def collect(folder: str | Path) -> pd.DataFrame:
    """Every ``*_claims.csv`` under ``folder`` (recursively), one table with a ``notebook`` column."""
    parts = [pd.read_csv(p, keep_default_na=False).assign(notebook=p.name.removesuffix("_claims.csv"))
             for p in sorted(Path(folder).rglob("*_claims.csv"))]
    if not parts:
        return pd.DataFrame(columns=["notebook", *[f.name for f in dataclasses.fields(Claim)]])
    table = pd.concat(parts, ignore_index=True)
    return table[["notebook", *[c for c in table.columns if c != "notebook"]]]


def readme_block(folder: str | Path) -> str:
    """The README's claims section: one line per claim (notebook, claim, status, paper vs measured, reason)."""
    table = collect(folder)
    lines = [README_START, ""]
    counts = table.status.value_counts()
    lines.append("Generated by `python -m scoreviz.claims` from `figures/*_claims.csv` (the committed cpu-profile run): "
                 + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES) + ".")
    lines.append("")
    for row in table.itertuples(index=False):
        text = f"- **{row.notebook}** {row.claim} ({row.source}): **{row.status}**; paper {row.paper}, " \
               f"measured {row.measured}"
        lines.append(text + (f"; {row.reason}" if row.reason else ""))
    return "\n".join(lines + ["", README_END])


def update_readme(readme: str | Path = "README.md", folder: str | Path = "figures") -> bool:
    """Replace the README's claims section by :func:`readme_block`; True if the README changed."""
    path = Path(readme)
    text = path.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{path}: no '{README_START}' ... '{README_END}' section to fill in")
    new = text[:start] + readme_block(folder) + text[end + len(README_END):]
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    changed = update_readme()
    print("README.md: claims section " + ("updated" if changed else "already up to date"))
