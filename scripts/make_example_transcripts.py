"""Make the bundled example transcripts (src/asrfair/examples/transcripts.csv). Run by hand.

Simulated ASR output on French read speech: 24 speakers, half female, three accents. Each
speaker has an error propensity drawn around a gender mean (women worse served, as in the
broadcast-speech studies that motivated asrfair), so `asrfair score` has a real gap to find
and a real speaker-to-speaker spread for the cluster bootstrap to reflect.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SENTENCES = [
    "le train de huit heures est parti en retard ce matin",
    "nous avons acheté du pain et du fromage au marché",
    "il fait très beau aujourd'hui sur toute la côte",
    "ma sœur travaille dans une petite librairie du centre",
    "pouvez-vous m'indiquer le chemin de la gare",
    "les enfants jouent dans le jardin après l'école",
    "je voudrais réserver une table pour quatre personnes",
    "la réunion commence à quatorze heures précises",
    "il a oublié ses clés sur la table de la cuisine",
    "nous partirons en vacances à la montagne cet été",
    "le médecin m'a conseillé de marcher tous les jours",
    "elle lit un roman policier chaque soir avant de dormir",
    "la bibliothèque ferme plus tôt le samedi",
    "mon voisin répare sa voiture dans la rue",
    "les prix des légumes ont beaucoup augmenté cette année",
    "on entend les oiseaux chanter dès le lever du soleil",
    "le musée propose une nouvelle exposition de peinture",
    "j'ai rendez-vous chez le dentiste jeudi prochain",
    "la neige est tombée toute la nuit sur la ville",
    "il faut arroser les fleurs quand il fait chaud",
    "le boulanger ouvre sa boutique à six heures",
    "nous avons regardé un film français hier soir",
    "les étudiants préparent leurs examens de fin d'année",
    "le chat dort sur le canapé près de la fenêtre",
    "elle apprend à jouer du piano depuis trois ans",
    "la rivière déborde après les fortes pluies",
    "mon grand-père raconte toujours la même histoire",
    "le facteur passe vers onze heures le matin",
    "on a mangé une excellente soupe à l'oignon",
    "les magasins sont fermés le dimanche après-midi",
]
CONFUSIONS = {
    "est": "et",
    "et": "est",
    "à": "a",
    "a": "à",
    "ses": "ces",
    "la": "là",
    "du": "de",
    "sur": "sûr",
    "ou": "où",
    "heures": "heure",
    "leurs": "leur",
    "les": "des",
    "mon": "mont",
}
FILLERS = ["euh", "le", "de", "et"]


def corrupt(words: list[str], p_error: float, rng: np.random.Generator) -> list[str]:
    out: list[str] = []
    for word in words:
        if rng.random() >= p_error:
            out.append(word)
            continue
        kind = rng.choice(["sub", "sub", "del", "ins"])
        if kind == "sub":
            out.append(CONFUSIONS.get(word, word[:-1] if len(word) > 3 else word + "s"))
        elif kind == "ins":
            out += [word, str(rng.choice(FILLERS))]
    return out


def main() -> None:
    rng = np.random.default_rng(2026)
    accents = ["fr", "fr-be", "fr-ch"]
    rows = []
    for s in range(24):
        gender = "female_feminine" if s % 2 else "male_masculine"
        mean = 0.16 if gender.startswith("female") else 0.09
        p_speaker = float(np.clip(rng.normal(mean, 0.04), 0.01, 0.5))
        for u, k in enumerate(rng.choice(len(SENTENCES), size=10, replace=False)):
            ref = SENTENCES[k]
            hyp = " ".join(corrupt(ref.split(), p_speaker, rng))
            rows.append(
                {
                    "id": f"spk{s:02d}-{u:02d}",
                    "speaker": f"spk{s:02d}",
                    "gender": gender,
                    "accents": accents[s % 3],
                    "ref": ref[0].upper() + ref[1:] + ".",
                    "hyp": hyp,
                }
            )
    out = Path(__file__).resolve().parents[1] / "src" / "asrfair" / "examples" / "transcripts.csv"
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main()
