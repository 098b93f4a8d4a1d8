"""Speaker metadata shared by every dataset: canonical demographic values.

Common Voice has spelt gender three ways over its releases; a subset or a group
must mean the same speakers whichever release the table came from.
"""

from __future__ import annotations

import pandas as pd

_GENDER = {
    "male": "male",
    "male_masculine": "male",
    "masculine": "male",
    "m": "male",
    "female": "female",
    "female_feminine": "female",
    "feminine": "female",
    "f": "female",
    "": "",
    "nan": "",
    "none": "",
    "do_not_wish_to_say": "",
}


def canonical_gender(raw: object) -> str:
    """``male``, ``female``, ``other``, or ``""`` when the speaker did not say."""
    if raw is None or (isinstance(raw, float) and pd.isna(raw)):
        return ""
    return _GENDER.get(str(raw).strip().lower(), "other")


def canonical_genders(values: pd.Series) -> pd.Series:
    return values.map(canonical_gender)


def is_empty(values: pd.Series) -> pd.Series:
    """Missing metadata: NaN or blank text. Such rows cannot be put in any group."""
    return values.isna() | (values.astype(str).str.strip() == "")
