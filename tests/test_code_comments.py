"""Comments and docstrings say what the code promises and why, not what it measured once on one machine.

A figure measured on one machine goes stale the day the code, a library or the machine changes, and in a comment
it reads as a promise it never was. Measurements live in bench/RESULTS.md, dated, with the command that
reproduces them and the machine they ran on; the code says why it does what it does, in general terms, and may
name the bench script that measures it.

Every comment (read with ``tokenize``) and every string statement, docstrings included (read with ``ast``), of
the .py files under core/, api/, worker/ and restyle/ is split into sentences (at ``.``, ``!``, ``?`` or ``;``
followed by a space; consecutive comment lines form one text). A sentence fails, named by file:line, when it:

1. names a device or a machine: a GPU or CPU model (H100, H200, A100, V100, EPYC, Xeon, …), or the machine at
   hand ("this CPU", "our GPU", "this machine", "2-core", "two cores");
2. quotes a timing as observed: a number with a time unit (ns, µs, us, ms, s, sec, seconds, min, minutes, h,
   hours) together with a measurement cue, which is a report of what happened ("took", "went from", "added",
   "saved", "sped up", "measured"), a benchmark ("speed-up", "benchmark", "bench/…"), or the figure itself
   compared ("3 ms faster", "2 s slower");
3. quotes a speed-up ratio (``1.34×``, ``2x``) together with a measurement cue.

A setting or a promise carries no such cue, so it passes: "the lease lapses after 30 s", "a connection attempt
gives up after 10 s", "retries wait at most 25.6 s in all", "a 50 MiB upload takes 3.6 h at that rate" (the
present tense of a rule, not the past tense of a run). ``ALLOWED`` lists the few sentences the rules catch
although they are no measurement, each with its reason.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("core", "api", "worker", "restyle")

_UNIT = r"(?:ns|µs|μs|us|ms|s|secs?|seconds?|mins?|minutes?|h|hours?)"
_NUMBER = r"(?<![\w.])\d+(?:[.,]\d+)*"
# Rule 1: a device, or the machine the words were written on.
DEVICE = re.compile(
    r"\b(?:H100|H200|A100|A10G|V100|L40S?|RTX ?\d+|GTX ?\d+|EPYC|Xeon|Ryzen|Threadripper)\b"
    r"|(?i:\b(?:this|our|my)\s+(?:[\w-]+-core\s+)?(?:cpu|gpu|machine|laptop)s?\b)"
    r"|(?i:\b\d+-core\b|\b(?:\d+|one|two|four|eight|sixteen)\s+cores\b)"
)
# Rule 2: a timing.
TIMING = re.compile(rf"{_NUMBER}\s?{_UNIT}\b")
# Rule 3: a speed-up ratio (and not a size such as 3×3 or a product such as 10 × 2 s).
RATIO = re.compile(rf"{_NUMBER}\s?[×x](?![\w×])(?!\s*\d)")
# What makes a timing or a ratio a measurement rather than a setting.
CUE = re.compile(
    r"(?i:\b(?:measur\w*|took|went from|added|saved|sped up|speed-?ups?|benchmark\w*)\b|\bbench/)"
    rf"|{_NUMBER}\s?{_UNIT}\s+(?:faster|slower)\b"
)
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")

# (path, a fragment of the sentence) -> why the rules' catch is not a measurement. Keep it short.
ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str
    sentence: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.sentence}"


def texts(source: str) -> Iterator[list[tuple[int, str]]]:
    """The comments (consecutive comment lines as one text) and string statements of ``source``, each as its
    (line number, line) pairs."""
    block: list[tuple[int, str]] = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        line = token.start[0]
        if block and block[-1][0] != line - 1:
            yield block
            block = []
        block.append((line, token.string.lstrip("#").strip()))
    if block:
        yield block
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            yield [(node.value.lineno + i, line.strip()) for i, line in enumerate(node.value.value.splitlines())]


def sentences(text: list[tuple[int, str]]) -> Iterator[tuple[str, list[tuple[int, int]]]]:
    """The sentences of one text, each with where its lines start in it: (offset, line number) pairs."""
    joined, starts = "", []
    for number, line in text:
        starts.append((len(joined), number))
        joined += line + " "
    position = 0
    for part in _SENTENCE_END.split(joined):
        offset = joined.index(part, position)
        position = offset + len(part)
        yield part.strip(), [(start - offset, number) for start, number in starts]


def findings_in(sentence: str) -> Iterator[tuple[str, int]]:
    """(rule, offset in ``sentence``) for each thing that makes ``sentence`` quote a measurement."""
    for match in DEVICE.finditer(sentence):
        yield f"names a device or machine ({match.group(0)!r})", match.start()
    if CUE.search(sentence):
        for match in TIMING.finditer(sentence):
            yield f"quotes a measured timing ({match.group(0)!r})", match.start()
        for match in RATIO.finditer(sentence):
            yield f"quotes a measured ratio ({match.group(0)!r})", match.start()


def scan(path: Path, root: Path = ROOT) -> list[Finding]:
    """What ``path`` quotes that the rules catch, each named by ``path`` relative to ``root``."""
    relative = path.relative_to(root).as_posix()
    found = []
    for text in texts(path.read_text(encoding="utf-8")):
        for sentence, starts in sentences(text):
            if any(path_ == relative and fragment in sentence for path_, fragment in ALLOWED):
                continue
            for rule, offset in findings_in(sentence):
                line = max((number for start, number in starts if start <= offset), default=starts[0][1])
                found.append(Finding(relative, line, rule, sentence))
    return found


def _scanned_files() -> list[Path]:
    return sorted(path for folder in SCANNED for path in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _scanned_files(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_comments_quote_no_measurements(path: Path) -> None:
    found = scan(path)
    assert not found, "comments should state the promise or the reason, not a measurement:\n" + "\n".join(
        map(str, found)
    )


MEASUREMENTS = [
    "On an H200 the CPU took about 7 ms to launch them.",
    "512 px iterations went from 7.2 to 3.9 ms.",
    "which on this GPU added 2.7 ms to an iteration",
    "measured here: 1.34×",
    "at 512 px on our 2-core machine that took an iteration from 1.58 s to 1.44 s",
    "took the p99 of job polling from 93 ms to 21 ms on two cores",
    "The compact form is 3 ms faster per step.",
    "Tiling cost a 1.34x speed-up at 2048 px (bench/highres.py).",
]
PROMISES = [
    "A running job whose worker has not renewed its lease for 10 s is queued again.",
    "per-attempt timeouts of 2 s to connect and 10 s for each read",
    "random(0, 1) × 50 ms × 2^i after the i-th failure, at most 25.6 s in all and typically about 13 s",
    "a 50 MiB upload takes 3.6 h at it; a byte every 2 s (the slowloris pace) is 8000 times slower",
    "Hanging connections add their timeouts to that (up to 10 × 2 s to connect).",
    "Each 3×3 convolution widens that by one stride on both sides.",
    "Noise is drawn on the CPU from a private generator, so the same seed gives the same start anywhere.",
    "exit 0 while a worker of this host beats in Redis",
    "bench/highres.py measures both (bench/RESULTS.md keeps the figures).",
]


@pytest.mark.parametrize("sentence", MEASUREMENTS)
def test_a_measurement_is_caught(sentence: str) -> None:
    assert list(findings_in(sentence))


@pytest.mark.parametrize("sentence", PROMISES)
def test_a_setting_or_a_promise_passes(sentence: str) -> None:
    assert not list(findings_in(sentence))


def test_findings_name_the_line_of_the_figure(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text(
        '"""A module.\n\nIts first sentence is fine. The second\nmeasured 3 ms on\nthis CPU.\n"""\n\n'
        "# A comment that\n# took 5 s.\n"
    )
    found = {(finding.line, finding.rule.split(" (")[0]) for finding in scan(module, tmp_path)}
    assert found == {
        (4, "quotes a measured timing"),
        (5, "names a device or machine"),
        (9, "quotes a measured timing"),
    }
