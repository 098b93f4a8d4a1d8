"""Datasets, the audio stage and splits."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from asrfair import audio, store
from asrfair.audio import AudioSettings, prepare_audio
from asrfair.cli import app
from asrfair.corpus import drop_empty_groups, load_corpus, normalise_sentences, parse_columns
from asrfair.errors import AsrfairError
from asrfair.plugins import installed
from asrfair.split import make_split
from asrfair.subsets import select_subset
from asrfair.text import cv_french
from conftest import make_cv_release, tone

runner = CliRunner()


@pytest.fixture
def cv17(tmp_path: Path) -> Path:
    return make_cv_release(tmp_path / "cv17")


# --- loaders -------------------------------------------------------------------------------------
def test_commonvoice_reads_a_cv17_release(cv17: Path) -> None:
    corpus = load_corpus(f"commonvoice:{cv17}", installed().datasets())
    frame = corpus.frame
    assert len(frame) == 30
    assert set(frame["split"]) == {"train", "test"}
    assert (frame.loc[frame["speaker"] == "client00", "split"] == "test").all()
    first = frame.set_index("id").loc["common_voice_fr_0000"]
    assert first["sentence"] == 'Il a dit "bonjour" 0 fois, n° 0.'  # quotes kept
    assert set(frame["gender"]) == {"male", "female", "", "other"}
    assert set(frame["gender_raw"]) == {"male_masculine", "female_feminine", "", "other"}
    assert Path(frame["audio"].iloc[0]).is_file()


def test_commonvoice_reads_an_older_release(tmp_path: Path) -> None:
    root = make_cv_release(tmp_path / "cv9", old=True)
    frame = load_corpus(f"commonvoice:{root}", installed().datasets()).frame
    assert "accents" in frame.columns and "accent" not in frame.columns
    assert set(frame["gender"]) == {"male", "female", "", "other"}


def test_not_a_cv_release_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(AsrfairError, match=r"not a Common Voice release folder; missing: "
                       r"train.tsv, test.tsv, clips/"):  # fmt: skip
        load_corpus(f"commonvoice:{tmp_path / 'x'}", installed().datasets())


def test_tsv_row_with_too_many_fields_is_skipped_and_counted(cv17: Path) -> None:
    tsv = cv17 / "validated.tsv"
    lines = tsv.read_text(encoding="utf-8").splitlines()
    lines[3] += "\textra"
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = load_corpus(f"commonvoice:{cv17}", installed().datasets())
    assert any(
        n.startswith("validated.tsv: skipped 1 malformed row(s); first: line 4 has 14 fields")
        for n in corpus.notes
    )


def test_manifest_paths_are_relative_to_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "wavs").mkdir()
    sf.write(tmp_path / "wavs" / "a.wav", tone(1.0, 16_000), 16_000)
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"path": ["wavs/a.wav"], "text": ["Bonjour"], "speaker": ["s"]}).to_csv(
        manifest, index=False
    )
    frame = load_corpus(f"manifest:{manifest}", installed().datasets()).frame
    assert frame["audio"].iloc[0] == str((tmp_path / "wavs" / "a.wav").resolve())
    assert frame[["id", "sentence", "speaker"]].iloc[0].tolist() == ["a", "Bonjour", "s"]


def test_hf_dataset_from_disk_is_read_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASRFAIR_CACHE", str(tmp_path / "cache"))
    sf.write(tmp_path / "a.wav", tone(0.5, 16_000), 16_000)
    ds = datasets.Dataset.from_dict(
        {"audio": [str(tmp_path / "a.wav")] * 2, "text": ["un", "deux"], "client_id": ["s1", "s2"]}
    ).cast_column("audio", datasets.Audio(decode=False))
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "hf"))
    frame = load_corpus(f"hf:{tmp_path / 'hf'}@test", installed().datasets()).frame
    assert frame["sentence"].tolist() == ["un", "deux"]
    assert frame["speaker"].tolist() == ["s1", "s2"]
    assert set(frame["split"]) == {"test"}
    # the audio came back as embedded bytes, written once to a file our audio stage can read
    assert audio.decode(frame["audio"].iloc[0]).shape == (8000,)
    with pytest.raises(AsrfairError, match="no split 'dev'; splits are: train, test"):
        load_corpus(f"hf:{tmp_path / 'hf'}@dev", installed().datasets())


def test_columns_are_mapped_before_the_manifest_aliases(tmp_path: Path) -> None:
    (tmp_path / "wavs").mkdir()
    sf.write(tmp_path / "wavs" / "a.wav", tone(1.0, 16_000), 16_000)
    manifest = tmp_path / "m.csv"
    # "path" is an audio alias, but the user says the audio is in "wav".
    pd.DataFrame(
        {"wav": ["wavs/a.wav"], "words": ["Bonjour"], "who": ["s"], "path": ["nowhere.wav"]}
    ).to_csv(manifest, index=False)
    columns = parse_columns("audio=wav,sentence=words,speaker=who")
    frame = load_corpus(f"manifest:{manifest}", installed().datasets(), columns).frame
    assert frame["audio"].iloc[0] == str((tmp_path / "wavs" / "a.wav").resolve())
    assert frame[["id", "sentence", "speaker"]].iloc[0].tolist() == ["a", "Bonjour", "s"]
    pd.read_csv(manifest).drop(columns=["path"]).to_csv(manifest, index=False)
    with pytest.raises(AsrfairError, match=r"no audio column .*--columns audio=COLUMN"):
        load_corpus(f"manifest:{manifest}", installed().datasets())


def test_audio_paths_outside_the_dataset_folder_are_counted(cv17: Path, tmp_path: Path) -> None:
    outside = tmp_path / "far.mp3"
    rows = (cv17 / "validated.tsv").read_text(encoding="utf-8").splitlines()
    clips = [rows[1].split("\t")[1], rows[2].split("\t")[1]]
    for tsv in cv17.glob("*.tsv"):  # the same clip may be listed in several TSVs
        text = tsv.read_text(encoding="utf-8")
        text = text.replace(f"\t{clips[0]}\t", "\t../../near.mp3\t")
        tsv.write_text(text.replace(f"\t{clips[1]}\t", f"\t{outside}\t"), encoding="utf-8")
    corpus = load_corpus(f"commonvoice:{cv17}", installed().datasets())
    notes = [n for n in corpus.notes if "lead outside" in n]
    assert notes == [
        f"2 audio path(s) of dataset 'commonvoice:{cv17}' lead outside {cv17.resolve()} "
        f"(first: {tmp_path / 'near.mp3'}); they are read as given"
    ]


def test_hf_embedded_audio_goes_to_the_chosen_cache(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", tone(0.5, 16_000), 16_000)
    data = (tmp_path / "a.wav").read_bytes()
    ds = datasets.Dataset.from_dict(
        {"audio": [{"bytes": data, "path": "a.wav"}] * 2, "text": ["un", "deux"]}
    ).cast_column("audio", datasets.Audio(decode=False))
    ds.save_to_disk(str(tmp_path / "hf"))
    cache = tmp_path / "chosen"
    result = runner.invoke(
        app, ["data", "prepare", f"hf:{tmp_path / 'hf'}", "--cache-dir", str(cache)]
    )
    assert result.exit_code == 0, result.output
    assert [p.name for p in (cache / "hf-audio").iterdir()] == [
        f"{hashlib.sha1(data).hexdigest()}.wav"
    ]


def test_hf_hub_id_without_network_says_how_to_pass_a_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Couldn't reach 'someone/no-such-dataset' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(AsrfairError) as err:
        load_corpus("hf:someone/no-such-dataset", installed().datasets())
    assert str(err.value) == (
        "hf:someone/no-such-dataset: cannot load (ConnectionError: Couldn't reach "
        "'someone/no-such-dataset' on the Hub); without network, pass a folder saved with "
        "Dataset.save_to_disk"
    )


def test_demo_is_a_cv_release() -> None:
    corpus = load_corpus("demo", installed().datasets())
    frame = corpus.frame
    assert len(frame) == 1000
    assert frame["speaker"].nunique() == 100
    assert set(frame["gender"]) == {"male", "female"}
    assert set(frame["accents"]) == {"fr", "fr-be", "fr-ch"}
    by_split = frame.groupby("split")["speaker"].agg(set)
    assert not (by_split["train"] & by_split["test"]) and not (by_split["dev"] & by_split["test"])
    assert (frame.groupby("speaker").size() == 10).all()
    assert frame["sentence"].nunique() >= 250


# --- demographics and text ---------------------------------------------------------------------
def test_empty_group_values_are_dropped_and_counted(cv17: Path) -> None:
    corpus = drop_empty_groups(
        load_corpus(f"commonvoice:{cv17}", installed().datasets()), ["gender"]
    )
    assert "dropped 9 of 30 rows with empty gender" in corpus.notes
    assert (corpus.frame["gender"] != "").all()


def test_absent_group_column_lists_the_columns(cv17: Path) -> None:
    with pytest.raises(AsrfairError, match=r"has no column 'ethnicity'; columns are: .*gender"):
        drop_empty_groups(
            load_corpus(f"commonvoice:{cv17}", installed().datasets()), ["gender*ethnicity"]
        )


def test_sentences_empty_after_normalising_are_dropped(cv17: Path) -> None:
    corpus = load_corpus(f"commonvoice:{cv17}", installed().datasets())
    corpus.frame.loc[0, "sentence"] = "« 42 ! »"
    out = normalise_sentences(corpus, cv_french)
    assert len(out.frame) == 29
    assert "dropped 1 rows whose sentence is empty after normalising" in out.notes
    assert out.frame["sentence"].iloc[0] == "il a dit bonjour fois n"


# --- audio ---------------------------------------------------------------------------------------
def test_decode_downmixes_and_resamples(tmp_path: Path) -> None:
    sf.write(tmp_path / "stereo.flac", tone(2.0, 44_100, channels=2), 44_100)
    sf.write(tmp_path / "narrow.wav", tone(1.0, 8_000), 8_000)
    stereo = audio.decode(tmp_path / "stereo.flac")
    narrow = audio.decode(tmp_path / "narrow.wav")
    assert stereo.dtype == np.float32 and stereo.ndim == 1 and stereo.shape[0] == 32_000
    assert narrow.shape[0] == 16_000
    assert 0.25 < float(np.abs(stereo).max()) < 0.35  # same level as one channel


def test_prepare_skips_missing_and_corrupt_clips(cv17: Path, tmp_path: Path) -> None:
    corpus = load_corpus(f"commonvoice:{cv17}", installed().datasets()).frame
    (cv17 / "clips" / corpus["audio"].iloc[0].split("/")[-1]).unlink()
    Path(corpus["audio"].iloc[1]).write_bytes(b"ID3 this is not an mp3 at all" * 10)
    prepared = prepare_audio(corpus, AudioSettings(workers=1), tmp_path / "cache", progress=False)
    assert len(prepared.table) == 28
    assert len(prepared.failed) == 2
    assert prepared.failed[0].startswith("missing file ")
    assert prepared.failed[1].startswith("cannot decode ")
    assert prepared.notes[0].startswith("skipped 2 clip(s) that could not be read")


def test_prepare_stops_when_every_clip_fails(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": ["a", "b"], "audio": [str(tmp_path / "x.mp3"), "y.mp3"]})
    with pytest.raises(AsrfairError, match="every one of 2 clips failed to load; first: missing"):
        prepare_audio(frame, AudioSettings(workers=1), tmp_path / "cache", progress=False)


def test_second_preparation_decodes_nothing(
    cv17: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = load_corpus(f"commonvoice:{cv17}", installed().datasets()).frame
    settings = AudioSettings(workers=2)
    first = prepare_audio(corpus, settings, tmp_path / "cache", progress=False)
    assert first.decoded == 30

    def no_decoding(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("decoded again")

    monkeypatch.setattr(audio, "decode", no_decoding)
    second = prepare_audio(corpus, AudioSettings(workers=1), tmp_path / "cache", progress=False)
    assert second.decoded == 0 and not second.failed
    pd.testing.assert_frame_equal(first.table, second.table)
    wave = second.waveform(corpus["id"].iloc[1])
    assert wave.dtype == np.float32 and wave.shape == (24_000,)


def test_changed_file_is_decoded_again(cv17: Path, tmp_path: Path) -> None:
    corpus = load_corpus(f"commonvoice:{cv17}", installed().datasets()).frame.iloc[:2]
    prepare_audio(corpus, AudioSettings(workers=1), tmp_path / "cache", progress=False)
    sf.write(corpus["audio"].iloc[0], tone(3.0, 48_000), 48_000, format="MP3")
    again = prepare_audio(corpus, AudioSettings(workers=1), tmp_path / "cache", progress=False)
    assert again.decoded == 1 and not again.notes  # a changed source is no damaged entry
    assert again.table["seconds"].iloc[0] == pytest.approx(3.0, abs=0.1)


def test_a_touched_file_is_decoded_again(cv17: Path, tmp_path: Path) -> None:
    """Same bytes, new mtime: (size, mtime) is the staleness test, as the old cache key was."""
    corpus = load_corpus(f"commonvoice:{cv17}", installed().datasets()).frame.iloc[:3]
    prepare_audio(corpus, AudioSettings(workers=1), tmp_path / "cache", progress=False)
    touched = Path(corpus["audio"].iloc[2])
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    again = prepare_audio(corpus, AudioSettings(workers=1), tmp_path / "cache", progress=False)
    assert again.decoded == 1


def test_int16_round_trip_is_within_half_a_step(tmp_path: Path) -> None:
    wave = np.random.default_rng(0).uniform(-1, 1, 50_000).astype(np.float32)
    wave[:2] = [1.7, -3.0]  # resampling overshoot is clipped to full scale
    back = audio.load_clip(audio.write_clip(tmp_path / "one.i16", wave))
    assert back.dtype == np.float32 and back.shape == wave.shape
    np.testing.assert_array_equal(back[:2], [1.0, -1.0])
    assert float(np.abs(back[2:] - wave[2:]).max()) <= 0.5 / 32767 + 1e-7
    assert (tmp_path / "one.i16").stat().st_size == 2 * len(wave)  # int16, no header


def _shard_of(prepared: audio.PreparedAudio, row: int) -> tuple[Path, int, int]:
    where = store.parse(prepared.table["cache"].iloc[row])
    return where.shard, where.offset, where.n_samples


def test_damaged_shard_bytes_are_decoded_again_on_load_with_a_note(
    cv17: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    corpus = load_corpus(f"commonvoice:{cv17}", installed().datasets()).frame.iloc[:3]
    first = prepare_audio(corpus, AudioSettings(workers=1), tmp_path / "cache", progress=False)
    clean = first.waveform(corpus["id"].iloc[1])
    shard, offset, n_samples = _shard_of(first, 1)
    data = bytearray(shard.read_bytes())
    data[offset + n_samples : offset + n_samples + 64] = b"\x7f" * 64  # same size, overwritten
    shard.write_bytes(bytes(data))
    capfd.readouterr()
    np.testing.assert_array_equal(first.waveform(corpus["id"].iloc[1]), clean)
    assert "checksum mismatch" in capfd.readouterr().err  # decoded again, with a note
    again = prepare_audio(corpus, AudioSettings(workers=1), tmp_path / "cache", progress=False)
    assert again.decoded == 1 and not again.failed  # not blamed on the MP3
    assert len(again.notes) == 1 and "checksum mismatch when it was loaded" in again.notes[0]
    assert again.notes[0].startswith("1 cached clip(s) were damaged and were decoded again")
    np.testing.assert_array_equal(again.waveform(corpus["id"].iloc[1]), clean)
    third = prepare_audio(corpus, AudioSettings(workers=1), tmp_path / "cache", progress=False)
    assert third.decoded == 0 and not third.notes  # the repaired entry is trusted again


@pytest.mark.parametrize(("how", "reason"), [("truncated", "(truncated)"), ("deleted", "missing")])
def test_a_truncated_or_deleted_shard_is_found_by_the_warm_check(
    cv17: Path, tmp_path: Path, how: str, reason: str
) -> None:
    corpus = load_corpus(f"commonvoice:{cv17}", installed().datasets()).frame.iloc[:3]
    first = prepare_audio(corpus, AudioSettings(workers=1), tmp_path / "cache", progress=False)
    shard, _, _ = _shard_of(first, 0)
    if how == "truncated":
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 3])
    else:
        shard.unlink()
    again = prepare_audio(corpus, AudioSettings(workers=1), tmp_path / "cache", progress=False)
    assert again.decoded >= 1 and not again.failed
    assert "cached clip(s) were damaged and were decoded again" in again.notes[0]
    assert reason in again.notes[0]
    pd.testing.assert_frame_equal(
        again.table.drop(columns="cache"), first.table.drop(columns="cache")
    )


def test_a_warm_check_reads_no_clip(
    cv17: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = load_corpus(f"commonvoice:{cv17}", installed().datasets()).frame
    prepare_audio(corpus, AudioSettings(workers=1), tmp_path / "cache", progress=False)

    def no_reading(*args: object) -> None:
        raise AssertionError("a warm check read a clip")

    monkeypatch.setattr(store, "read", no_reading)
    monkeypatch.setattr(store, "write_shard", no_reading)
    again = prepare_audio(corpus, AudioSettings(workers=1), tmp_path / "cache", progress=False)
    assert again.decoded == 0 and len(again.table) == 30


def test_the_store_is_shared_whatever_the_duration_filter(cv17: Path, tmp_path: Path) -> None:
    corpus = load_corpus(f"commonvoice:{cv17}", installed().datasets()).frame
    prepare_audio(corpus, AudioSettings(workers=1), tmp_path / "cache", progress=False)
    narrow = AudioSettings(min_seconds=1.2, max_seconds=1.8, workers=1)
    again = prepare_audio(corpus, narrow, tmp_path / "cache", progress=False)
    assert again.decoded == 0 and len(again.table) == 10
    assert len(list((tmp_path / "cache" / "store").iterdir())) == 1


_PREPARE = """
import sys
from pathlib import Path
from asrfair.audio import AudioSettings, prepare_audio
from asrfair.corpus import load_corpus
from asrfair.plugins import installed
corpus = load_corpus(f"commonvoice:{sys.argv[1]}", installed().datasets()).frame
print(prepare_audio(corpus, AudioSettings(workers=1), Path(sys.argv[2]), progress=False).decoded)
"""


def test_two_processes_preparing_one_corpus_make_one_consistent_store(
    cv17: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PREPARE, str(cv17), str(cache)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    decoded = [int(p.communicate(timeout=120)[0].split()[-1]) for p in procs]
    assert sorted(decoded) == [0, 30]  # the lock: each clip decoded once, by one of them
    corpus = load_corpus(f"commonvoice:{cv17}", installed().datasets()).frame
    final = prepare_audio(corpus, AudioSettings(workers=1), cache, progress=False)
    assert final.decoded == 0 and not final.notes
    [folder] = (cache / "store").iterdir()
    assert len(store.read_manifest(folder)) == 30
    assert len(list(folder.glob("*.i16"))) == 1 and not list(folder.glob("*.tmp*"))
    for cache_entry in final.table["cache"]:
        assert store.read(store.parse(cache_entry))[1] == ""


def test_an_old_per_clip_cache_is_converted_not_decoded(
    cv17: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = load_corpus(f"commonvoice:{cv17}", installed().datasets()).frame.iloc[:3]
    cache = tmp_path / "cache"
    waves = [audio.decode(a) for a in corpus["audio"]]
    for source, wave in zip(corpus["audio"], waves, strict=True):
        audio.write_legacy_clip(audio.legacy_path(cache, Path(source), audio.TARGET_RATE), wave)
    (next(cache.glob("??/*.f32"))).write_bytes(b"")  # a damaged old entry is decoded instead
    prepared = prepare_audio(corpus, AudioSettings(workers=1), cache, progress=False)
    assert prepared.decoded == 1
    assert prepared.notes[-1].startswith("converted 2 clip(s) from the old one-file-per-clip")
    for utt_id, wave in zip(corpus["id"], waves, strict=True):
        assert np.abs(prepared.waveform(utt_id) - wave).max() <= 0.5 / 32767 + 1e-7
    again = prepare_audio(corpus, AudioSettings(workers=1), cache, progress=False)
    assert again.decoded == 0 and not again.notes


def test_every_skipped_clip_is_listed_with_its_reason(cv17: Path, tmp_path: Path) -> None:
    corpus = load_corpus(f"commonvoice:{cv17}", installed().datasets()).frame
    for row in (0, 5, 9):
        Path(corpus["audio"].iloc[row]).write_bytes(b"not audio")
    listing = tmp_path / "skipped.tsv"
    prepared = prepare_audio(
        corpus, AudioSettings(workers=1), tmp_path / "cache", progress=False, skipped_file=listing
    )
    rows = pd.read_csv(listing, sep="\t")
    assert list(rows["id"]) == [corpus["id"].iloc[r] for r in (0, 5, 9)]
    assert rows["reason"].str.startswith("cannot decode ").all()
    assert f"each listed with its reason in {listing}" in prepared.notes[0]


def test_duration_filter(cv17: Path, tmp_path: Path) -> None:
    corpus = load_corpus(f"commonvoice:{cv17}", installed().datasets()).frame
    settings = AudioSettings(min_seconds=1.2, max_seconds=1.8, workers=1)
    prepared = prepare_audio(corpus, settings, tmp_path / "cache", progress=False)
    assert prepared.table["seconds"].between(1.2, 1.8).all()
    assert len(prepared.table) == 10 and prepared.filtered == 20


# --- splits --------------------------------------------------------------------------------------
def _speakers(frame: pd.DataFrame, ids: list[str]) -> set[str]:
    return set(frame.loc[frame["id"].isin(ids), "speaker"])


def test_speaker_split_is_disjoint_deterministic_and_stratified() -> None:
    frame = load_corpus("demo", installed().datasets()).frame.sample(
        frac=1.0, random_state=3
    )  # order must not matter
    split = make_split(frame, stratify=["gender"], seed=5)
    again = make_split(
        load_corpus("demo", installed().datasets()).frame, stratify=["gender"], seed=5
    )
    other = make_split(frame, stratify=["gender"], seed=6)
    train, test = split.ids("train"), split.ids("test")
    assert not _speakers(frame, train) & _speakers(frame, test)
    assert len(train) + len(test) == len(frame)
    assert test == again.ids("test")
    assert test != other.ids("test")
    assert 0.15 <= len(test) / len(frame) <= 0.3
    assert set(frame.loc[frame["id"].isin(test), "gender"]) == {"male", "female"}


def test_test_set_does_not_depend_on_the_training_subset() -> None:
    frame = load_corpus("demo", installed().datasets()).frame
    split = make_split(frame, stratify=["gender"], seed=0)
    test = split.ids("test")
    train_side = frame[frame["id"].isin(split.ids("train"))]
    for subset in ("all", "half", "male", "female", "accents=fr-ch"):
        chosen = select_subset(train_side, installed().selector(subset), subset, seed=0)
        assert not set(chosen["id"]) & set(test)
        assert make_split(frame, stratify=["gender"], seed=0).ids("test") == test


def test_split_warns_when_a_group_has_no_test_speakers(cv17: Path) -> None:
    frame = load_corpus(f"commonvoice:{cv17}", installed().datasets()).frame
    split = make_split(frame, stratify=["gender"], seed=0)
    assert "other: only 1 speaker, so no test speakers for it" in split.notes
    assert "gender=other has no test speakers" in split.notes


def test_official_split(cv17: Path) -> None:
    frame = load_corpus(f"commonvoice:{cv17}", installed().datasets()).frame
    split = make_split(frame, "official")
    assert _speakers(frame, split.ids("test")) == {"client00"}
    with pytest.raises(AsrfairError, match="--split 'random'"):
        make_split(frame, "random")


# --- CLI -----------------------------------------------------------------------------------------
def test_data_inspect_demo() -> None:
    result = runner.invoke(app, ["data", "inspect", "demo", "--groups", "gender,accents"])
    assert result.exit_code == 0, result.output
    assert "By gender" in result.stdout and "By accents" in result.stdout
    assert "speaker-disjoint, test fraction 0.2, seed 0" in result.stdout


def test_data_inspect_cv_folder_json_and_latex(cv17: Path) -> None:
    args = ["data", "inspect", f"commonvoice:{cv17}", "--groups", "gender", "--split", "official"]
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["warnings"][0] == "dropped 9 of 30 rows with empty gender"
    rows = {(r["group"], r["split"]): r for r in data["groups"]["gender"]}
    assert rows[("male", "test")]["n_speakers"] == 1
    assert rows[("male", "test")]["hours"] == pytest.approx(4.5 / 3600, abs=2e-4)
    latex = runner.invoke(app, [*args, "--format", "latex"]).stdout
    assert "\\toprule" in latex and "Split: official." in latex


def test_data_inspect_bad_dataset_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "inspect", "cv:/nowhere"])
    assert result.exit_code == 2
    assert (
        "--dataset: unknown dataset 'cv'; known: commonvoice, demo, hf, manifest" in result.stderr
    )


def test_data_prepare_reports_counts(cv17: Path, tmp_path: Path) -> None:
    args = ["data", "prepare", f"commonvoice:{cv17}", "--cache-dir", str(tmp_path / "c")]
    first = runner.invoke(app, [*args, "--workers", "1"])
    second = runner.invoke(app, [*args, "--max-seconds", "1.8"])
    assert first.exit_code == 0, first.output
    assert "30 clips kept" in first.stdout and "30 decoded, 0 from cache" in first.stdout
    assert "20 clips kept" in second.stdout and "0 decoded, 30 from cache" in second.stdout
    assert "10 outside the duration filter" in second.stdout


def test_hf_columns_are_mapped_by_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASRFAIR_CACHE", str(tmp_path / "cache"))
    sf.write(tmp_path / "a.wav", tone(0.5, 16_000), 16_000)
    ds = datasets.Dataset.from_dict(
        {
            "audio": [str(tmp_path / "a.wav")] * 4,
            "words": ["un", "deux", "trois", "quatre"],
            "who": ["s1", "s2", "s3", "s4"],
            "sex": ["male", "female", "male", "female"],
        }
    ).cast_column("audio", datasets.Audio(decode=False))
    ds.save_to_disk(str(tmp_path / "hf"))
    args = ["data", "inspect", f"hf:{tmp_path / 'hf'}", "--groups", "gender", "--format", "json"]
    result = runner.invoke(app, [*args, "--columns", "sentence=words,speaker=who,gender=sex"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["groups"]["gender"]
    assert {r["group"] for r in rows} == {"male", "female"}
    assert sum(r["n_speakers"] for r in rows) == 4
    bad = runner.invoke(app, [*args, "--columns", "sentence=text"])
    assert bad.exit_code == 2
    assert "--columns: dataset 'hf:" in bad.stderr and "has no column 'text'" in bad.stderr
    odd = runner.invoke(app, [*args, "--columns", "sentence"])
    assert "is not CANONICAL=SOURCE" in odd.stderr


def save_hf_speakers(tmp_path: Path, **columns: list[object]) -> Path:
    """A saved HF dataset of 6 clips by 3 speakers (2 female, 1 male), with the given columns
    beside its audio and a FLEURS-style ClassLabel gender."""
    sf.write(tmp_path / "a.wav", tone(0.5, 16_000), 16_000)
    genders = datasets.ClassLabel(names=["male", "female", "other"])
    ds = datasets.Dataset.from_dict(
        {"audio": [str(tmp_path / "a.wav")] * 6, "gender": [1, 1, 0, 0, 1, 1], **columns}
    )
    ds = ds.cast_column("audio", datasets.Audio(decode=False)).cast_column("gender", genders)
    ds.save_to_disk(str(tmp_path / "hf"))
    return tmp_path / "hf"


def test_hf_speaker_id_and_normalized_text_are_asrfairs_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASRFAIR_CACHE", str(tmp_path / "cache"))
    folder = save_hf_speakers(
        tmp_path,
        speaker_id=[7, 7, 8, 8, 9, 9],
        client_id=["c1", "c2", "c3", "c4", "c5", "c6"],
        normalized_text=["un", "deux", "trois", "quatre", "cinq", "six"],
    )
    args = ["data", "inspect", f"hf:{folder}", "--groups", "gender", "--format", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    speakers: dict[str, int] = {}
    for row in report["groups"]["gender"]:  # one row per (group, side): speakers on each side
        speakers[row["group"]] = speakers.get(row["group"], 0) + row["n_speakers"]
    assert sum(r["n_speakers"] for r in report["splits"]) == 3
    assert speakers == {"female": 2, "male": 1}  # the ClassLabel read as its names
    # numeric speaker ids are labels: one of the two female speakers goes to the test side
    assert {(r["group"], r["split"]) for r in report["groups"]["gender"]} >= {("female", "test")}
    assert f"dataset 'hf:{folder}': speaker is column 'speaker_id', not 'client_id'" in "".join(
        report["warnings"]
    )
    assert not any("every utterance is its own speaker" in w for w in report["warnings"])
    corpus = load_corpus(f"hf:{folder}", installed().datasets())
    assert corpus.frame["sentence"].tolist()[:2] == ["un", "deux"]
    # --columns comes before the aliases: client_id is still there to be chosen
    chosen = load_corpus(f"hf:{folder}", installed().datasets(), {"speaker": "client_id"})
    assert chosen.frame["speaker"].nunique() == 6
    assert not any("speaker is column" in n for n in chosen.notes)


def test_hf_dataset_without_speakers_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASRFAIR_CACHE", str(tmp_path / "cache"))
    folder = save_hf_speakers(tmp_path, transcription=["un", "deux", "trois", "a", "b", "c"])
    corpus = load_corpus(f"hf:{folder}", installed().datasets())
    assert corpus.frame["speaker"].nunique() == 6
    assert "no speaker column: every utterance is its own speaker" in corpus.notes
    with pytest.raises(AsrfairError, match=r"no sentence column .*--columns sentence=COLUMN"):
        load_corpus(f"hf:{folder}", installed().datasets(), {"words": "transcription"})


def test_the_mp3_decoders_own_warnings_stay_off_the_terminal(cv17: Path, tmp_path: Path) -> None:
    corpus = load_corpus(f"commonvoice:{cv17}", installed().datasets()).frame
    # An ID3 tag mpg123 cannot parse: libmpg123 writes a warning to file descriptor 2 itself.
    Path(corpus["audio"].iloc[0]).write_bytes(b"ID3 this is not an mp3 at all" * 10)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "asrfair",
            "data",
            "prepare",
            f"commonvoice:{cv17}",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "mpg123" not in run.stderr and "ID3v2" not in run.stderr, run.stderr
    assert "skipped 1 clip(s) that could not be read" in " ".join(run.stderr.split())


def test_an_audit_corpus_without_speakers_is_flagged_at_the_top_of_inspect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASRFAIR_CACHE", str(tmp_path / "cache"))
    who = ["a", "a", "b", "b", "c", "c"]  # not a name asrfair knows for speakers
    folder = save_hf_speakers(tmp_path, text=["un", "deux", "trois", "a", "b", "c"], who=who)
    args = ["data", "inspect", f"hf:{folder}", "--groups", "gender"]
    report = json.loads(runner.invoke(app, [*args, "--format", "json"]).stdout)
    assert report["method"]["speakers"] == "unknown"
    rich = runner.invoke(app, args)
    assert rich.exit_code == 0, rich.output
    assert rich.stdout.splitlines()[1].startswith("Speakers unknown: the data has no speaker")
    named = runner.invoke(app, [*args, "--format", "json", "--columns", "speaker=who"])
    assert "speakers" not in json.loads(named.stdout)["method"]


def test_numeric_speaker_ids_still_split_by_speaker() -> None:
    """Integer speaker ids (an HF speaker_id column) once matched no test speaker, so every
    utterance went to training without a word; they are labels like any other."""
    frame = pd.DataFrame(
        {
            "id": [f"u{i}" for i in range(12)],
            "speaker": [i // 2 for i in range(12)],
            "gender": ["female"] * 6 + ["male"] * 6,
        }
    )
    split = make_split(frame, stratify=["gender"], seed=0)
    test = frame[frame["id"].isin(split.ids("test"))]
    assert set(test["gender"]) == {"female", "male"}
    assert not set(test["speaker"]) & set(frame[~frame["id"].isin(split.ids("test"))]["speaker"])
