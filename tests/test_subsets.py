import pandas as pd
import pytest

from asrfair.corpus import canonical_gender
from asrfair.errors import AsrfairError
from asrfair.plugins import installed
from asrfair.subsets import select_subset


def choose(table: pd.DataFrame, spec: str, seed: int = 0) -> pd.DataFrame:
    """The audit's path: resolve the spec through the installed plugins, then select."""
    return select_subset(table, installed().selector(spec), spec, seed=seed)


@pytest.fixture
def meta() -> pd.DataFrame:
    genders = ["male_masculine", "female_feminine", "male", "female", "", "other", "intersex"]
    return pd.DataFrame(
        {
            "id": [f"u{i}" for i in range(len(genders) * 4)],
            "gender": genders * 4,
            "accents": ["fr", "fr-be"] * (len(genders) * 2),
        }
    )


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("male_masculine", "male"),
        ("male", "male"),
        ("female_feminine", "female"),
        ("Female", "female"),
        ("", ""),
        (None, ""),
        (float("nan"), ""),
        ("intersex", "other"),
        ("other", "other"),
    ],
)
def test_canonical_gender(raw: object, canonical: str) -> None:
    assert canonical_gender(raw) == canonical


def test_male_and_female_accept_every_cv_spelling(meta: pd.DataFrame) -> None:
    male = choose(meta, "male")
    female = choose(meta, "female")
    assert set(male["gender"]) == {"male_masculine", "male"}
    assert set(female["gender"]) == {"female_feminine", "female"}
    assert len(male) == len(female) == 8


def test_all_keeps_everything(meta: pd.DataFrame) -> None:
    assert len(choose(meta, "all")) == len(meta)


def test_half_is_seeded_and_half(meta: pd.DataFrame) -> None:
    first = choose(meta, "half", seed=1)
    again = choose(meta, "half", seed=1)
    other = choose(meta, "half", seed=2)
    assert len(first) == len(meta) // 2
    assert first["id"].tolist() == again["id"].tolist()
    assert first["id"].tolist() != other["id"].tolist()


def test_fraction(meta: pd.DataFrame) -> None:
    assert len(choose(meta, "fraction:0.25")) == 7
    with pytest.raises(AsrfairError, match=r"fraction:1.5.*\(0, 1\]"):
        choose(meta, "fraction:1.5")


def test_column_equals_value(meta: pd.DataFrame) -> None:
    chosen = choose(meta, "accents=fr-be")
    assert set(chosen["accents"]) == {"fr-be"}
    # gender compares canonically, so gender=female also takes female_feminine
    assert set(choose(meta, "gender=female")["gender"]) == {"female", "female_feminine"}


def test_subset_errors_are_clear(meta: pd.DataFrame) -> None:
    with pytest.raises(AsrfairError, match=r"--train-subset: unknown subset 'males'; known: "):
        choose(meta, "males")
    with pytest.raises(AsrfairError, match="selects no rows"):
        choose(meta, "accents=de")
    with pytest.raises(
        AsrfairError, match="needs a 'age' column; columns are: id, gender, accents"
    ):
        choose(meta, "age=twenties")


@pytest.mark.parametrize("spec", ["half:foo", "all:1", "female:x", "male:0.5"])
def test_subsets_without_an_argument_refuse_one(meta: pd.DataFrame, spec: str) -> None:
    name = spec.partition(":")[0]
    with pytest.raises(AsrfairError, match=f"'{name}' takes no argument; write {name}"):
        choose(meta, spec)
