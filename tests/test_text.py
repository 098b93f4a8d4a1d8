from asrfair import text


def test_cv_french_keeps_the_notebook_charset() -> None:
    assert text.cv_french("L’École, c'est « génial » ! 42") == "l'école c'est génial"


def test_cv_french_drops_hyphens_without_spacing() -> None:
    # The notebook deletes characters outside its set rather than spacing them.
    assert text.cv_french("Peut-être   demain…") == "peutêtre demain"


def test_cv_french_recomposes_accents_before_filtering() -> None:
    decomposed = "e\u0301te\u0301"  # "été" written with combining accents
    assert text.cv_french(decomposed) == "été"


def test_basic_spaces_punctuation_and_keeps_accents() -> None:
    assert text.basic("Ça va? Oui—très bien: l'été!") == "ça va oui très bien l été"


def test_identity_changes_nothing() -> None:
    assert text.identity("  Mixed CASE, punct. ") == "  Mixed CASE, punct. "
