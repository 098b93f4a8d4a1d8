"""Make the bundled demo corpus (and, with --pretrain, the separate pre-training set).

Run by hand, not in CI; needs the Debian package espeak-ng:

    .venv/bin/python scripts/make_demo_corpus.py            # src/asrfair/demo/cv-fr-demo
    .venv/bin/python scripts/make_demo_corpus.py --pretrain build/pretrain

The demo is laid out exactly like a Common Voice 17 release (train/dev/test/validated TSVs with
CV 17's columns, clip_durations.tsv, clips/*.mp3), so the `commonvoice` loader reads it as it
reads a real release. Voices are espeak-ng's French (fr, fr-be, fr-ch) with male and female
variants, each voice with its own base speed and pitch and a per-clip jitter. The train, dev and
test splits are disjoint in voices; sentences repeat across them on purpose (see the card).

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

# espeak-ng variants by the gender of their voice. The demo takes the first twelve of each;
# the pre-training set takes the rest, plus demo variants at other accent/speed/pitch settings.
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
    name: str
    variant: str
    gender: str  # CV 17 spelling
    accent: str
    speed: int  # words per minute
    pitch: int  # 0-99
    age: str

    @property
    def client_id(self) -> str:
        return hashlib.sha256(f"asrfair-demo/{self.name}".encode()).hexdigest()


def demo_voices(rng: np.random.Generator) -> list[Voice]:
    voices = []
    for i in range(12):
        for gender, variants in (("male_masculine", MALE), ("female_feminine", FEMALE)):
            voices.append(
                Voice(
                    name=f"demo-{gender[0]}{i:02d}",
                    variant=variants[i],
                    gender=gender,
                    # Offset by gender so that the test voices (ranks 10, 11) cover all accents.
                    accent=ACCENTS[(i + (gender[0] == "f")) % 3],
                    speed=int(rng.integers(145, 186)),
                    pitch=int(rng.integers(35, 66)),
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
        # Variants unused by the demo first; then demo variants at settings the demo never uses
        # (the demo's speeds are 145-185 wpm and pitches 35-65).
        variant = pool[(12 + j) % len(pool)] if 12 + j < len(pool) else pool[j % 12]
        slow = rng.random() < 0.5
        voices.append(
            Voice(
                name=f"pre-{'m' if male else 'f'}{j:02d}",
                variant=variant,
                gender="male_masculine" if male else "female_feminine",
                accent=ACCENTS[(i + 1) % 3],
                speed=int(rng.integers(120, 145) if slow else rng.integers(186, 211)),
                pitch=int(rng.integers(15, 35) if rng.random() < 0.5 else rng.integers(66, 86)),
                age=str(rng.choice(AGES)),
            )
        )
    return voices


def synthesise(args: tuple[Voice, str, int]) -> np.ndarray:
    """One sentence in one voice, with a small per-clip jitter of speed and pitch, at 16 kHz."""
    voice, text, seed = args
    rng = np.random.default_rng(seed)
    speed = voice.speed + int(rng.integers(-8, 9))
    pitch = int(np.clip(voice.pitch + rng.integers(-5, 6), 0, 99))
    wav = subprocess.run(
        [
            "espeak-ng",
            "-v",
            f"{voice.accent}+{voice.variant}",
            "-s",
            str(speed),
            "-p",
            str(pitch),
            "--stdout",
            text,
        ],
        check=True,
        capture_output=True,
    ).stdout
    data, rate = sf.read(io.BytesIO(wav), dtype="float32")
    audio = soxr.resample(data, rate, RATE)
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
    # Voices, not sentences, decide the split: 8 male + 8 female train, 2 + 2 dev, 2 + 2 test.
    order = {v.name: i for i, v in enumerate(voices)}
    split_of = {}
    for v in voices:
        rank = int(v.name[-2:])
        split_of[v.name] = "train" if rank < 8 else ("dev" if rank < 10 else "test")
    clips = DEMO_OUT / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    for old in clips.glob("*.mp3"):
        old.unlink()
    jobs, rows = [], []
    for voice in voices:
        chosen = rng.choice(len(sentences), size=per_voice, replace=False)
        for k in chosen:
            name = f"common_voice_fr_demo_{order[voice.name]:02d}{int(k):03d}.mp3"
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
    demo_settings = {
        (v.accent, v.variant, v.speed, v.pitch) for v in demo_voices(np.random.default_rng(seed))
    }
    assert not demo_settings & {(v.accent, v.variant, v.speed, v.pitch) for v in voices}
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
    parser.add_argument("--per-voice", type=int, default=40)
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
