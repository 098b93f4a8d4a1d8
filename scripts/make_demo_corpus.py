"""Make the bundled demo corpus (and, with --pretrain, the separate pre-training set).

Run by hand, not in CI; needs the Debian package espeak-ng:

    .venv/bin/python scripts/make_demo_corpus.py            # src/asrfair/demo/cv-fr-demo
    .venv/bin/python scripts/make_demo_corpus.py --pretrain build/pretrain

The demo is laid out exactly like a Common Voice 17 release (train/dev/test/validated TSVs with
CV 17's columns, clip_durations.tsv, clips/*.mp3), so the `commonvoice` loader reads it as it
reads a real release. Its 100 voices (50 male, 50 female) are espeak-ng's French (fr, fr-be,
fr-ch) with male and female variants, each voice a combination of variant, base pitch,
intonation range and speed, with a small per-clip jitter; voices.tsv records each one, and a
test proves that no two sound alike. The train, dev and test splits are disjoint in voices;
sentences repeat across them on purpose (see the card).

The pre-training set uses the same sentence pool with voice settings the demo does not use, and
is skewed towards male voices (--male-share, default 0.8), like the broadcast corpora where
women are under-represented. It is written as FLAC plus a manifest.csv and is not shipped.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import subprocess
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf
import soxr

from asrfair.default_plugins.datasets import CV17_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ROOT / "scripts" / "demo_sentences.txt"
DEMO_OUT = ROOT / "src" / "asrfair" / "demo" / "cv-fr-demo"
RATE = 16_000
ACCENTS = ("fr", "fr-be", "fr-ch")
AGES = ("teens", "twenties", "thirties", "forties", "fifties", "sixties")

# espeak-ng variants by the gender of their voice. Demo voices and pre-training voices both cycle
# through them; they never share a voice, because their pitches and speeds lie in disjoint ranges.
MALE = [
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "gustave",
    "Hugo",
    "max",
    "michel",
    "paul",
    "Alex",
    "Andy",
    "antonio",
    "caleb",
    "Denis",
    "Diogo",
    "ed",
    "edward",
    "Gene",
    "Henrique",
    "iven",
    "Jacky",
    "john",
    "Lee",
    "marcelo",
    "Marco",
    "Mario",
    "Michael",
    "norbert",
    "pablo",
    "pedro",
    "robert",
    "sandro",
    "victor",
]
FEMALE = [
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "Alicia",
    "Andrea",
    "Annie",
    "belinda",
    "linda",
    "steph",
    "anika",
    "aunty",
    "steph2",
    "steph3",
    "grandma",
]


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: everything that shapes its sound, so that it can be re-spoken."""

    name: str
    variant: str
    gender: str  # CV 17 spelling
    accent: str
    speed: int  # words per minute
    pitch: int  # base pitch, 0-99
    pitch_range: int  # intonation range, percent of espeak-ng's default
    age: str

    @property
    def client_id(self) -> str:
        return hashlib.sha256(f"asrfair-demo/{self.name}".encode()).hexdigest()

    def row(self) -> dict[str, str]:
        return {
            "client_id": self.client_id,
            "name": self.name,
            "gender": self.gender,
            "variant": self.variant,
            "accent": self.accent,
            "pitch": str(self.pitch),
            "pitch_range": str(self.pitch_range),
            "speed": str(self.speed),
        }


# The demo's settings. A variant that voices k speakers gives them base pitches spread evenly over
# DEMO_PITCH (at least 13 apart for k <= 4), each with its own intonation range and speed; the
# pre-training set uses only pitches and speeds outside these ranges.
DEMO_PITCH = (30, 70)
DEMO_SPEED = (140, 190)
RANGES = (40, 170)
VOICES_PER_GENDER = 50


def _spread(k: int) -> list[int]:
    low, high = DEMO_PITCH
    if k == 1:
        return [(low + high) // 2]
    return [round(low + (high - low) * j / (k - 1)) for j in range(k)]


def demo_voices(rng: np.random.Generator) -> list[Voice]:
    voices = []
    for gender, variants in (("male_masculine", MALE), ("female_feminine", FEMALE)):
        uses = [
            sum(1 for i in range(VOICES_PER_GENDER) if i % len(variants) == v)
            for v in range(len(variants))
        ]
        for i in range(VOICES_PER_GENDER):
            v, slot = i % len(variants), i // len(variants)
            voices.append(
                Voice(
                    name=f"demo-{gender[0]}{i:02d}",
                    variant=variants[v],
                    gender=gender,
                    accent=ACCENTS[i % 3],
                    speed=int(rng.integers(DEMO_SPEED[0], DEMO_SPEED[1] + 1)),
                    pitch=_spread(uses[v])[slot] + int(rng.integers(-2, 3)),
                    pitch_range=int(rng.integers(RANGES[0], RANGES[1] + 1)),
                    age=str(rng.choice(AGES)),
                )
            )
    return voices


def pretrain_voices(rng: np.random.Generator, n: int, male_share: float) -> list[Voice]:
    n_male = round(n * male_share)
    voices = []
    for i in range(n):
        male = i < n_male
        pool = MALE if male else FEMALE
        j = i if male else i - n_male
        low_pitch, slow = rng.random() < 0.5, rng.random() < 0.5
        voices.append(
            Voice(
                name=f"pre-{'m' if male else 'f'}{j:02d}",
                variant=pool[j % len(pool)],
                gender="male_masculine" if male else "female_feminine",
                accent=ACCENTS[(i + 1) % 3],
                # Outside the demo's pitch (30-70) and speed (140-190) ranges, so that no
                # pre-training voice is a demo voice.
                speed=int(rng.integers(115, 136) if slow else rng.integers(195, 216)),
                pitch=int(rng.integers(8, 24) if low_pitch else rng.integers(77, 93)),
                pitch_range=int(rng.integers(RANGES[0], RANGES[1] + 1)),
                age=str(rng.choice(AGES)),
            )
        )
    return voices


def speak(voice: Voice, text: str, speed: int, pitch: int) -> np.ndarray:
    """espeak-ng's 22.05 kHz output for ``text``, the intonation range set through SSML."""
    markup = f'<speak><prosody range="{voice.pitch_range}%">{escape(text)}</prosody></speak>'
    wav = subprocess.run(
        [
            "espeak-ng",
            "-m",
            "-v",
            f"{voice.accent}+{voice.variant}",
            "-s",
            str(speed),
            "-p",
            str(pitch),
            "--stdout",
            markup,
        ],
        check=True,
        capture_output=True,
    ).stdout
    data, rate = sf.read(io.BytesIO(wav), dtype="float32")
    return np.asarray(soxr.resample(data, rate, RATE), dtype=np.float32)


def synthesise(args: tuple[Voice, str, int]) -> np.ndarray:
    """One sentence in one voice, with a small per-clip jitter of speed and pitch, at 16 kHz."""
    voice, text, seed = args
    rng = np.random.default_rng(seed)
    speed = voice.speed + int(rng.integers(-6, 7))
    pitch = int(np.clip(voice.pitch + rng.integers(-3, 4), 0, 99))
    audio = speak(voice, text, speed, pitch)
    # Trim espeak's long leading/trailing silence to 0.15 s, as a recording app would.
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    if loud.size:
        pad = int(0.15 * RATE)
        audio = audio[max(loud[0] - pad, 0) : loud[-1] + pad]
    return np.asarray(0.8 * audio / max(float(np.abs(audio).max()), 1e-6), dtype=np.float32)


def _demo_clip(args: tuple[Voice, str, int, str]) -> float:
    voice, text, seed, target = args
    audio = synthesise((voice, text, seed))
    sf.write(target, audio, RATE, format="MP3", compression_level=0.9)
    return len(audio) / RATE


def write_tsv(path: Path, rows: list[dict[str, str]], columns: list[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(
            handle,
            fieldnames=columns,
            delimiter="\t",
            quoting=csv.QUOTE_NONE,
            escapechar=None,
            lineterminator="\n",
        )
        writer.writeheader()
        writer.writerows(rows)


def make_demo(sentences: list[str], per_voice: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    voices = demo_voices(rng)
    # Voices, not sentences, decide the split: per gender 35 train, 5 dev and 10 test voices.
    order = {v.name: i for i, v in enumerate(voices)}
    split_of = {}
    for v in voices:
        rank = int(v.name[-2:])
        split_of[v.name] = "train" if rank < 35 else ("dev" if rank < 40 else "test")
    clips = DEMO_OUT / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    for old in clips.glob("*.mp3"):
        old.unlink()
    jobs, rows = [], []
    for voice in voices:
        chosen = rng.choice(len(sentences), size=per_voice, replace=False)
        for k in chosen:
            name = f"common_voice_fr_demo_{order[voice.name]:03d}{int(k):03d}.mp3"
            seed_k = int(rng.integers(2**31))
            jobs.append((voice, sentences[k], seed_k, str(clips / name)))
            rows.append(
                {
                    "client_id": voice.client_id,
                    "path": name,
                    "sentence_id": hashlib.sha256(sentences[k].encode()).hexdigest()[:64],
                    "sentence": sentences[k],
                    "sentence_domain": "",
                    "up_votes": "2",
                    "down_votes": "0",
                    "age": voice.age,
                    "gender": voice.gender,
                    "accents": voice.accent,
                    "variant": "",
                    "locale": "fr",
                    "segment": "",
                    "_split": split_of[voice.name],
                }
            )
    with ProcessPoolExecutor() as pool:
        seconds = list(pool.map(_demo_clip, jobs, chunksize=8))
    for split in ("train", "dev", "test"):
        part = [{c: r[c] for c in CV17_COLUMNS} for r in rows if r["_split"] == split]
        write_tsv(DEMO_OUT / f"{split}.tsv", part, list(CV17_COLUMNS))
    write_tsv(
        DEMO_OUT / "validated.tsv",
        [{c: r[c] for c in CV17_COLUMNS} for r in rows],
        list(CV17_COLUMNS),
    )
    durations = [
        {"clip": r["path"], "duration[ms]": str(round(1000 * s))}
        for r, s in zip(rows, seconds, strict=True)
    ]
    write_tsv(DEMO_OUT / "clip_durations.tsv", durations, ["clip", "duration[ms]"])
    # Not part of a Common Voice release: how each voice was made, so that a test can make every
    # voice speak one sentence and check that no two sound alike.
    write_tsv(DEMO_OUT / "voices.tsv", [v.row() for v in voices], list(voices[0].row()))
    size = sum(p.stat().st_size for p in DEMO_OUT.rglob("*") if p.is_file())
    print(
        f"demo: {len(rows)} clips, {len(voices)} voices, {sum(seconds) / 60:.1f} min, "
        f"{size / 1e6:.1f} MB in {DEMO_OUT}"
    )


def _pretrain_clip(args: tuple[Voice, str, int, str]) -> float:
    voice, text, seed, target = args
    audio = synthesise((voice, text, seed))
    sf.write(target, audio, RATE, format="FLAC")
    return len(audio) / RATE


def make_pretrain(
    sentences: list[str], out: Path, voices_n: int, per_voice: int, male_share: float, seed: int
) -> None:
    rng = np.random.default_rng(seed + 1)
    voices = pretrain_voices(rng, voices_n, male_share)
    for voice in voices:  # no pre-training voice is a demo voice: both settings lie outside
        assert not DEMO_PITCH[0] <= voice.pitch <= DEMO_PITCH[1]
        assert not DEMO_SPEED[0] <= voice.speed <= DEMO_SPEED[1]
    (out / "clips").mkdir(parents=True, exist_ok=True)
    jobs, rows = [], []
    for voice in voices:
        for k in rng.choice(len(sentences), size=min(per_voice, len(sentences)), replace=False):
            name = f"{voice.name}-{int(k):03d}.flac"
            jobs.append((voice, sentences[k], int(rng.integers(2**31)), str(out / "clips" / name)))
            rows.append(
                {
                    "audio": f"clips/{name}",
                    "sentence": sentences[k],
                    "speaker": voice.name,
                    "gender": voice.gender,
                    "accents": voice.accent,
                }
            )
    with ProcessPoolExecutor() as pool:
        seconds = list(pool.map(_pretrain_clip, jobs, chunksize=16))
    with (out / "manifest.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    n_male = sum(v.gender.startswith("male") for v in voices)
    print(
        f"pretrain: {len(rows)} clips, {len(voices)} voices ({n_male} male), "
        f"{sum(seconds) / 3600:.2f} h in {out}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-voice", type=int, default=10)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--pretrain", type=Path, help="also write the pre-training set here")
    parser.add_argument("--pretrain-voices", type=int, default=40)
    parser.add_argument("--pretrain-per-voice", type=int, default=150)
    parser.add_argument("--male-share", type=float, default=0.8)
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    sentences = [s.strip() for s in SENTENCES.read_text(encoding="utf-8").splitlines() if s.strip()]
    assert len(set(sentences)) >= 300, "the pool must hold at least 300 distinct sentences"
    if not args.skip_demo:
        make_demo(sentences, args.per_voice, args.seed)
    if args.pretrain:
        make_pretrain(
            sentences,
            args.pretrain,
            args.pretrain_voices,
            args.pretrain_per_voice,
            args.male_share,
            args.seed,
        )


if __name__ == "__main__":
    main()
