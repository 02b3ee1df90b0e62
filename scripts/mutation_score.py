"""Print ``make mutate``'s score from mutmut's own figures (``mutants/mutmut-cicd-stats.json``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

GOAL = 0.90  # of every mutant: one no test reaches counts as a survivor


def main() -> int:
    path = Path("mutants/mutmut-cicd-stats.json")
    if not path.exists():
        print("mutation_score: no figures: run `mutmut run` then `mutmut export-cicd-stats`", file=sys.stderr)
        return 2
    stats = json.loads(path.read_text())
    total = stats["total"] - stats["skipped"]
    killed = stats["killed"] + stats["timeout"]
    scored = total
    if "--sample" in sys.argv[1:]:  # make mutate-cluster MUTANTS=...: the others have no result
        scored = killed + stats["survived"] + stats["no_tests"] + stats["suspicious"] + stats["segfault"]
        print(f"a sample: {scored} of {total} mutants have a result; the score is of those")
    score = killed / scored if scored else 0.0
    covered = scored - stats["no_tests"]
    print(f"mutants={scored} killed={killed} survived={stats['survived']} no_tests={stats['no_tests']}")
    reached = killed / covered if covered else 0.0
    print(f"mutation_score={score:.3f} (goal {GOAL:.2f}); of the mutants a test reaches: {reached:.3f}")
    print("survivors: .venv/bin/mutmut results; one of them: .venv/bin/mutmut show <name>")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
