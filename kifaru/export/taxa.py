"""Class names as Camtrap DP writes them: ``observationType`` and ``scientificName``.

A model's classes are common names (``european_roe_deer``, ``antelope_duiker``); Camtrap DP wants
the scientific name of the taxon and its rank. The official video models' classes are mapped
here, each to the narrowest taxon that holds everything the class holds (``antelope_duiker`` is
the family Bovidae, not a genus). A user's CSV (``class,scientificName[,taxonRank]``) adds to or
replaces these; a class with no name stays without one, and the export says which.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from kifaru.exceptions import ConfigError
from kifaru.images.sequences import EMPTY_CLASSES

HUMAN_CLASSES = frozenset({"human", "person", "people"})
VEHICLE_CLASSES = frozenset({"vehicle"})
TAXON_RANKS = ("kingdom", "phylum", "class", "order", "family", "genus", "species", "subspecies")


@dataclass(frozen=True)
class Taxon:
    scientific_name: str
    rank: Optional[str] = None


def _t(name: str, rank: str) -> Taxon:
    return Taxon(name, rank)


# zamba's time_distributed / slowfast (central Africa) and european classes.
OFFICIAL_TAXA: Mapping[str, Taxon] = {
    "aardvark": _t("Orycteropus afer", "species"),
    "antelope_duiker": _t("Bovidae", "family"),
    "badger": _t("Mustelidae", "family"),
    "bat": _t("Chiroptera", "order"),
    "bird": _t("Aves", "class"),
    "cattle": _t("Bos taurus", "species"),
    "cheetah": _t("Acinonyx jubatus", "species"),
    "chimpanzee_bonobo": _t("Pan", "genus"),
    "civet_genet": _t("Viverridae", "family"),
    "elephant": _t("Loxodonta", "genus"),
    "equid": _t("Equidae", "family"),
    "forest_buffalo": _t("Syncerus caffer", "species"),
    "fox": _t("Canidae", "family"),  # Vulpes and the bat-eared fox (Otocyon)
    "giraffe": _t("Giraffa", "genus"),
    "gorilla": _t("Gorilla", "genus"),
    "hare_rabbit": _t("Leporidae", "family"),
    "hippopotamus": _t("Hippopotamidae", "family"),
    "hog": _t("Suidae", "family"),
    "human": _t("Homo sapiens", "species"),
    "hyena": _t("Hyaenidae", "family"),
    "large_flightless_bird": _t("Struthioniformes", "order"),
    "leopard": _t("Panthera pardus", "species"),
    "lion": _t("Panthera leo", "species"),
    "mongoose": _t("Herpestidae", "family"),
    "monkey_prosimian": _t("Primates", "order"),
    "pangolin": _t("Manidae", "family"),
    "porcupine": _t("Hystricidae", "family"),
    "reptile": _t("Reptilia", "class"),
    "rodent": _t("Rodentia", "order"),
    "small_cat": _t("Felidae", "family"),
    "wild_dog_jackal": _t("Canidae", "family"),
    "domestic_cat": _t("Felis catus", "species"),
    "european_badger": _t("Meles meles", "species"),
    "european_beaver": _t("Castor fiber", "species"),
    "european_hare": _t("Lepus europaeus", "species"),
    "european_roe_deer": _t("Capreolus capreolus", "species"),
    "north_american_raccoon": _t("Procyon lotor", "species"),
    "red_fox": _t("Vulpes vulpes", "species"),
    "weasel": _t("Mustela", "genus"),
    "wild_boar": _t("Sus scrofa", "species"),
}


def observation_type(name: Optional[str]) -> str:
    """Camtrap DP's observationType of a class (None: nothing classified it)."""
    if name is None:
        return "unclassified"
    lower = name.lower()
    if lower in EMPTY_CLASSES:
        return "blank"
    if lower in HUMAN_CLASSES:
        return "human"
    if lower in VEHICLE_CLASSES:
        return "vehicle"
    return "animal"


def read_taxa(path: Path) -> dict[str, Taxon]:
    """A user's mapping: columns ``class`` and ``scientificName``, optionally ``taxonRank``."""
    path = Path(path)
    taxa: dict[str, Taxon] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"class", "scientificName"} - set(reader.fieldnames or ())
        if missing:
            raise ConfigError(f"--taxa {path}: needs the columns class and scientificName (missing: {', '.join(sorted(missing))})")
        for line, row in enumerate(reader, start=2):
            rank = (row.get("taxonRank") or "").strip() or None
            if rank is not None and rank not in TAXON_RANKS:
                raise ConfigError(f"--taxa {path}, line {line}: taxonRank {rank!r} is not one of {', '.join(TAXON_RANKS)}")
            taxa[row["class"].strip()] = Taxon(row["scientificName"].strip(), rank)
    return taxa
