"""datatrove's Gopher / C4 filters on the benchmark's evaluation sets (run inside datatrove's venv).

Called by `benchmarks/scorers.py` (and `benchmarks/heuristic_speed.py`, with the names of the
filters to run as arguments) as a subprocess with the datatrove venv's python; prints one
JSON object: per evaluation set, how many of the chained filters (Gopher quality -> Gopher
repetition -> C4 quality) each document passes, and the time each filter took. Never imported
by currimix itself: datatrove is not a project dependency.

The venv is the ``datatrove`` side-car of `benchmarks/harness.py`: installed on first use under
the benchmark cache from the pins in ``benchmarks/sidecars/datatrove.txt`` (``datatrove[processing]
0.10.1`` and spaCy, frozen), then reused; ``python benchmarks/harness.py --setup datatrove``
installs it ahead.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scorers_data  # noqa: E402  (stdlib-only reader shared with the main benchmark)


def main() -> None:
    from datatrove.data import Document
    from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter

    filters = {
        "gopher_quality": GopherQualityFilter(),
        "gopher_repetition": GopherRepetitionFilter(),
        "c4_quality": C4QualityFilter(),
    }
    if len(sys.argv) > 1:  # only the filters named (`benchmarks/heuristic_speed.py` times one)
        filters = {k: filters[k] for k in sys.argv[1:]}
    # Warm up: spaCy's tokenizer loads lazily on the first document.
    for f in filters.values():
        f.filter(Document(text="Warm up the word tokenizer with a sentence.", id="warmup"))
    sets = {
        "dclm": scorers_data.dclm()[0],
        "spam": scorers_data.spamassassin()[0],
        "stackexchange": scorers_data.stackexchange()[0],
    }
    out: dict[str, dict] = {}
    for name, texts in sets.items():
        passed = {}
        seconds = {}
        for key, f in filters.items():
            start = time.perf_counter()
            # A fresh Document per filter: C4QualityFilter edits the text it keeps.
            results = [f.filter(Document(text=t, id=str(i))) for i, t in enumerate(texts)]
            seconds[key] = time.perf_counter() - start
            passed[key] = [bool(r if isinstance(r, bool) else r[0]) for r in results]
        out[name] = {"n": len(texts), "passed": passed, "seconds": seconds}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        sys.exit(0)
    main()
