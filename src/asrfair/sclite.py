"""NIST sclite's input formats: ``trn`` transcripts, ``stm`` reference segments, ``ctm`` words.

Evaluations that grew up around SCTK (Hub-4/5, RT, Babel, OpenASR) keep their references and
system outputs in these files, so asrfair reads them as written instead of asking for a
conversion that could pair the wrong words. Two sclite conventions shape the scores:

- References may hold alternations, ``{ um / uh / @ }`` (``@``: nothing), and optionally
  deletable words, ``(uh)``. sclite aligns the hypothesis through every choice at once; here
  each segment takes the combination of choices nearest its hypothesis by sclite's own
  weights, then scores it as any transcript. That gives sclite's word and error counts on
  SCTK's own test data (tests/data/sctk/README.md).
- A ctm word belongs to the stm segment that holds its midpoint; words in no segment are
  insertions of a pseudo-speaker ``inter_segment_gap``, and words in an
  ``IGNORE_TIME_SEGMENT_IN_SCORING`` segment are not scored, as sclite does.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rapidfuzz.distance import Levenshtein

from asrfair.errors import AsrfairError
from asrfair.transcripts import read_text, source_name

# sclite's utterance-id conventions (its -i option): the speaker is a prefix of the id.
SPEAKER_CONVENTIONS = {
    "spu_id": r"^(.+?)[-_]",  # speaker-utterance: text before the first "-" or "_"
    "wsj": r"^(.{3})",  # WSJ/CSR ids: 4t0c0201 is speaker 4t0
}
IGNORE = "IGNORE_TIME_SEGMENT_IN_SCORING"
GAP_SPEAKER = "inter_segment_gap"
# sclite aligns with insertions and deletions costing 3, substitutions 4: where options tie
# on edits, these weights pick the option sclite picks.
SCLITE_WEIGHTS = (3, 3, 4)
MAX_CHOICES = 4096  # combinations of alternations tried per segment
_TRN_LINE = re.compile(r"^(?P<text>.*?)\s*\((?P<id>[^()\s]+)\)\s*$")
_OPTIONAL = re.compile(r"^\((?P<word>[^()\s]+)\)$")
_BRACES = re.compile(r"([{}])")
_SLASH = re.compile(r"(/)")


@dataclass(frozen=True)
class Line:
    """A line of an input file, kept with its number so that every message can point at it."""

    source: str
    number: int
    fields: list[str]

    def where(self) -> str:
        return f"{self.source}, line {self.number}"


def _lines(path: Path, expected: str) -> Iterator[Line]:
    """Non-blank lines outside ``;;`` comments, split on white space."""
    text = read_text(path, expected)
    for number, raw in enumerate(text.split("\n"), start=1):
        if raw.strip() and not raw.lstrip().startswith(";;"):
            yield Line(source_name(path), number, raw.split())


# --- references with alternations -----------------------------------------------------------


Choice = list[list[str]]  # the options of one alternation; [] is "@", nothing


def parse_reference(text: str, where: str) -> list[str | Choice]:
    """Words and alternations: ``a { b c / @ } (d)`` is ``a``, ``[[b, c], []]``, ``[[d], []]``."""
    parts: list[str | Choice] = []
    tokens = iter(t for t in _BRACES.sub(r" \1 ", text).split())
    for token in tokens:
        if token == "}":
            raise AsrfairError(f"{where}: '}}' without an opening '{{'; close each alternation")
        if token == "{":
            parts.append(_alternation(tokens, where))
        elif (optional := _OPTIONAL.match(token)) is not None:
            parts.append([[optional["word"]], []])
        else:
            parts.append(token)
    return parts


def _alternation(tokens: Iterator[str], where: str) -> Choice:
    options: Choice = [[]]
    for token in tokens:
        if token == "}":
            return [[w for w in option if w != "@"] for option in options]
        if token == "{":
            raise AsrfairError(
                f"{where}: nested alternation; write the choices out flat, e.g. {{ a b / a c }}"
            )
        for piece in filter(None, _SLASH.split(token)):  # "{fi-/fig-}" has no spaces
            if piece == "/":
                options.append([])
            else:
                options[-1].append(piece)
    raise AsrfairError(f"{where}: alternation '{{' is never closed with '}}'")


def resolve_reference(text: str, hyp: list[str], where: str) -> str:
    """The reference words, each alternation taking the option nearest the hypothesis."""
    parts = parse_reference(text, where)
    choices = [p for p in parts if not isinstance(p, str)]
    if not choices:
        return " ".join(p for p in parts if isinstance(p, str))
    count = 1
    for choice in choices:
        count *= len(choice)
    if count > MAX_CHOICES:
        raise AsrfairError(
            f"{where}: {count:,} combinations of alternations (at most {MAX_CHOICES:,}); split "
            "the segment or resolve some alternations"
        )
    best = min(
        (_expand(parts, picked) for picked in itertools.product(*choices)),
        key=lambda words: (
            Levenshtein.distance(words, hyp, weights=SCLITE_WEIGHTS),
            Levenshtein.distance(words, hyp),
        ),
    )
    return " ".join(best)


def _expand(parts: list[str | Choice], picked: tuple[list[str], ...]) -> list[str]:
    words: list[str] = []
    chosen = iter(picked)
    for part in parts:
        words.extend([part] if isinstance(part, str) else next(chosen))
    return words


def _plain_hypothesis(words: list[str], where: str) -> list[str]:
    """sclite allows alternations in hypotheses too; asrfair scores one hypothesis per system."""
    marked = next((w for w in words if w in ("{", "}") or "{" in w), None)
    if marked is not None:
        raise AsrfairError(
            f"{where}: the hypothesis holds an alternation ({marked!r}); give one hypothesis "
            "per utterance"
        )
    return words


# --- trn ------------------------------------------------------------------------------------


def speaker_pattern(convention: str) -> re.Pattern[str]:
    """``spu_id``, ``wsj`` or a regular expression whose first group is the speaker."""
    pattern = SPEAKER_CONVENTIONS.get(convention, convention)
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise AsrfairError(
            f"--speaker-from-id {convention!r}: not spu_id, wsj or a valid regular expression "
            f"({exc})"
        ) from None
    if compiled.groups < 1:
        raise AsrfairError(
            f"--speaker-from-id {convention!r}: the expression needs a group, e.g. ^(.+?)_"
        )
    return compiled


def read_trn(path: Path) -> dict[str, tuple[str, Line]]:
    """Utterance id -> (transcript, its line) for a ``words (utt_id)`` file."""
    utterances: dict[str, tuple[str, Line]] = {}
    for line in _lines(path, "one 'words (utterance_id)' line per utterance"):
        match = _TRN_LINE.match(" ".join(line.fields))
        if match is None:
            raise AsrfairError(
                f"{line.where()}: no utterance id; end each line with its id in parentheses, "
                "e.g. 'the cat sat (spk1-utt1)'"
            )
        if match["id"] in utterances:
            first = utterances[match["id"]][1].number
            raise AsrfairError(
                f"{line.where()}: utterance id {match['id']!r} is also on line {first}; ids must "
                "be unique"
            )
        utterances[match["id"]] = (match["text"], line)
    return utterances


def load_trn(ref_path: Path, hyp_path: Path, convention: str = "spu_id") -> pd.DataFrame:
    """One row per utterance of the reference trn, with the speaker taken from its id."""
    pattern = speaker_pattern(convention)
    refs, hyps = read_trn(ref_path), read_trn(hyp_path)
    _same_ids(refs, hyps, ref_path, hyp_path)
    rows = []
    for utt, (ref_text, line) in refs.items():
        found = pattern.search(utt)
        if found is None:
            raise AsrfairError(
                f"{line.where()}: no speaker in utterance id {utt!r} by --speaker-from-id "
                f"{convention} (spu_id: speaker-utterance); pass another convention or a "
                "regular expression"
            )
        hyp_text, hyp_line = hyps[utt]
        hyp = _plain_hypothesis(hyp_text.split(), hyp_line.where())
        ref = resolve_reference(ref_text, hyp, line.where())
        rows.append({"id": utt, "speaker": found.group(1), "ref": ref, "hyp": " ".join(hyp)})
    return pd.DataFrame(rows, columns=["id", "speaker", "ref", "hyp"])


def _same_ids(
    refs: dict[str, tuple[str, Line]], hyps: dict[str, tuple[str, Line]], ref: Path, hyp: Path
) -> None:
    """A hypothesis missing would score as all deletions, an extra one not at all: both are
    refused, naming the line, since either means the files are not of one test set."""
    missing = next((u for u in refs if u not in hyps), None)
    if missing is not None:
        raise AsrfairError(
            f"{hyp}: no hypothesis for utterance {missing!r} ({refs[missing][1].where()}); add "
            f"a line '({missing})' for an empty hypothesis"
        )
    extra = next((u for u in hyps if u not in refs), None)
    if extra is not None:
        raise AsrfairError(
            f"{hyps[extra][1].where()}: utterance {extra!r} is not in the reference {ref}; "
            "score the hypotheses of one test set"
        )


# --- stm and ctm ----------------------------------------------------------------------------


@dataclass
class Segment:
    """One stm line: a speaker's stretch of a recording, its labels and reference text."""

    file: str
    channel: str
    speaker: str
    start: float
    end: float
    labels: list[str]
    text: str
    line: Line
    words: list[tuple[float, str]] = field(default_factory=list)

    @property
    def ignored(self) -> bool:
        return self.text.strip().lower() == IGNORE.lower()  # TED-LIUM writes it in lower case


def _time(line: Line, index: int, name: str) -> float:
    try:
        seconds = float(line.fields[index])
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise AsrfairError(
            f"{line.where()}: {name} {line.fields[index]!r} is not a number of seconds"
        )
    return seconds


def read_stm(path: Path) -> list[Segment]:
    """``file channel speaker start end [<labels>] transcript`` per line."""
    segments = []
    for line in _lines(path, "one 'file channel speaker start end text' line per segment"):
        if len(line.fields) < 5:
            raise AsrfairError(
                f"{line.where()}: {len(line.fields)} fields; an stm line is 'file channel "
                "speaker start end [<labels>] transcript'"
            )
        rest = line.fields[5:]
        labels: list[str] = []
        if rest and rest[0].startswith("<"):
            if not rest[0].endswith(">"):
                raise AsrfairError(f"{line.where()}: labels {rest[0]!r} do not end with '>'")
            labels, rest = rest[0][1:-1].split(","), rest[1:]
        start, end = _time(line, 3, "start"), _time(line, 4, "end")
        if end < start:
            raise AsrfairError(f"{line.where()}: the segment ends ({end}) before it starts")
        file, channel, speaker = line.fields[:3]
        segments.append(
            Segment(file, channel.upper(), speaker, start, end, labels, " ".join(rest), line)
        )
    return segments


def read_ctm(path: Path) -> Iterator[tuple[Line, float, str]]:
    """``file channel start duration word [confidence]``: each word with its midpoint."""
    for line in _lines(path, "one 'file channel start duration word' line per word"):
        if len(line.fields) < 5:
            raise AsrfairError(
                f"{line.where()}: {len(line.fields)} fields; a ctm line is 'file channel start "
                "duration word [confidence]'"
            )
        if line.fields[4].startswith("<ALT"):
            raise AsrfairError(
                f"{line.where()}: ctm alternations are not supported; give one word sequence"
            )
        midpoint = _time(line, 2, "start") + _time(line, 3, "duration") / 2
        yield line, midpoint, line.fields[4]


def _assign(segments: list[Segment], ctm: Path) -> dict[tuple[str, str], list[str]]:
    """Put each ctm word into the segment holding its midpoint; return the words in none."""
    by_recording: dict[tuple[str, str], list[Segment]] = {}
    for segment in segments:
        by_recording.setdefault((segment.file, segment.channel), []).append(segment)
    outside: dict[tuple[str, str], list[tuple[float, str]]] = {}
    for line, midpoint, word in read_ctm(ctm):
        key = (line.fields[0], line.fields[1].upper())
        if key not in by_recording:
            raise AsrfairError(
                f"{line.where()}: recording {key[0]!r} channel {key[1]!r} has no segment in the "
                "reference stm; score the hypotheses of one test set"
            )
        home = next((s for s in by_recording[key] if s.start <= midpoint <= s.end), None)
        if home is None:
            outside.setdefault(key, []).append((midpoint, word))
        else:
            home.words.append((midpoint, word))
    return {key: _in_time_order(words) for key, words in outside.items()}


def _in_time_order(words: list[tuple[float, str]]) -> list[str]:
    """By midpoint, and in file order where two share one (zero or made-up times): the sort is
    stable on the time alone, never on the words' spelling."""
    return [word for _, word in sorted(words, key=lambda item: item[0])]


def load_stm_ctm(ref_path: Path, hyp_path: Path, label_names: list[str]) -> pd.DataFrame:
    """One row per scored stm segment, plus one per recording for words outside them.

    A segment's ``<labels>`` become columns named by ``label_names`` (``label1``... beyond
    them), so that an stm's gender or focus condition can be a group.
    """
    segments = read_stm(ref_path)
    outside = _assign(segments, hyp_path)
    rows: list[dict[str, str]] = []
    counts: dict[str, int] = {}
    for segment in segments:
        if segment.ignored:
            continue
        counts[segment.speaker] = counts.get(segment.speaker, 0) + 1
        hyp = _in_time_order(segment.words)
        row = {
            "id": f"{segment.speaker}-{counts[segment.speaker]:03d}",
            "speaker": segment.speaker,
            "ref": resolve_reference(segment.text, hyp, segment.line.where()),
            "hyp": " ".join(hyp),
        }
        rows.append(row | _labels(segment, label_names))
    for (file, channel), words in outside.items():
        rows.append(
            {"id": f"{file}-{channel}-{GAP_SPEAKER}", "speaker": GAP_SPEAKER, "ref": ""}
            | {"hyp": " ".join(words)}
        )
    return pd.DataFrame(rows).fillna("")


def _labels(segment: Segment, names: list[str]) -> dict[str, str]:
    return {
        names[i] if i < len(names) else f"label{i + 1}": value
        for i, value in enumerate(segment.labels)
    }
