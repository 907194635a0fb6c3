"""The body regions a study shows, in words a family reads on the phone ("Head, Chest,
Abdomen"): from Body Part Examined (0018,0015), or, for a series without it, from words in the
series description (then the study's). Pure; the phone page words each region in its language.

Body Part Examined holds the defined terms of DICOM PS3.16 Annex L (HEAD, CSPINE,
CHESTABDPELVIS...), often a local variant of them ("C-SPINE", "Abdomen"). A term this table
does not know is kept as found (capitalised), so nothing the scanner recorded is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from transfer_codes.phone import BODY_REGIONS

REGIONS = BODY_REGIONS  # what the page words in its language, head to toe
MAX_REGIONS = 8  # a pan-scan names five or six; more is noise on a phone
MAX_FOUND_CHARS = 32

# Body Part Examined terms (PS3.16 Annex L, and common variants) by the regions they show.
_TERMS: dict[tuple[str, ...], str] = {
    ("head",): "HEAD BRAIN SKULL IAC SELLA CEREBELLUM CIRCLEOFWILLIS SCALP EAR",
    ("face",): "FACE ORBIT EYE NOSE JAW MAXILLA MANDIBLE TMJ ZYGOMA SINUS MOUTH CHEEK TONGUE",
    ("neck",): "NECK LARYNX PHARYNX THYROID CAROTID PAROTID SUBMANDIBULAR",
    ("cervical_spine",): "CSPINE",
    ("cervical_spine", "spine"): "CTSPINE",
    ("chest",): "CHEST THORAX LUNG MEDIASTINUM RIB STERNUM CLAVICLE BREAST ESOPHAGUS THYMUS "
    "BRONCHUS TRACHEA AORTA",
    ("heart",): "HEART CORONARYARTERY",
    ("abdomen",): "ABDOMEN LIVER KIDNEY SPLEEN PANCREAS STOMACH ADRENAL GALLBLADDER COLON "
    "DUODENUM JEJUNUM ILEUM",
    ("pelvis",): "PELVIS BLADDER PROSTATE UTERUS OVARY RECTUM HIP ILIUM",
    ("spine",): "SPINE TSPINE LSPINE SSPINE LSSPINE TLSPINE SACRUM COCCYX",
    ("arm",): "SHOULDER SCAPULA ARM HUMERUS ELBOW FOREARM WRIST HAND FINGER THUMB UPPEREXTREMITY",
    ("leg",): "THIGH FEMUR KNEE PATELLA LEG CALF TIBIA FIBULA ANKLE FOOT TOE CALCANEUS "
    "LOWEREXTREMITY",
    ("whole_body",): "WHOLEBODY",
    ("head", "neck"): "HEADNECK",
    ("neck", "chest"): "NECKCHEST",
    ("chest", "abdomen"): "CHESTABDOMEN",
    ("abdomen", "pelvis"): "ABDOMENPELVIS ABDPELVIS",
    ("chest", "abdomen", "pelvis"): "CHESTABDPELVIS CHESTABDOMENPELVIS",
    ("neck", "chest", "abdomen"): "NECKCHESTABDOMEN",
    ("neck", "chest", "abdomen", "pelvis"): "NECKCHESTABDPELV NECKCHESTABDPELVIS",
}
_PARTS = {term: regions for regions, terms in _TERMS.items() for term in terms.split()}

# Words in descriptions, tried in this order; each match is blanked out before the next rule,
# so "C-SPINE" is not also read as a whole spine, nor "THORACIC SPINE" as the chest.
_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"WHOLE ?BODY|PAN ?SCAN", ("whole_body",)),
    (r"CAP", ("chest", "abdomen", "pelvis")),
    (r"C ?SPINE|CERVICAL SPINE|CERVICAL", ("cervical_spine",)),
    (r"(?:T|L|TL|LS) ?SPINE|(?:THORACIC|LUMBAR|SACRAL) SPINE|LUMBAR|SPINE", ("spine",)),
    (r"HEAD|BRAIN|SKULL|CRANIAL|CRANIUM", ("head",)),
    (r"FACE|FACIAL|MAXILLOFACIAL|ORBITS?|SINUS(?:ES)?|MANDIBLE", ("face",)),
    (r"NECK", ("neck",)),
    (r"CHEST|THORAX|THORACIC|LUNGS?", ("chest",)),
    (r"HEART|CARDIAC|CORONARY", ("heart",)),
    (r"ABD|ABDOMEN|ABDOMINAL", ("abdomen",)),
    (r"PELVIS|PELVIC|HIPS?", ("pelvis",)),
    (r"SHOULDERS?|HUMERUS|ELBOWS?|FOREARMS?|WRISTS?|HANDS?|FINGERS?|THUMBS?|ARMS?", ("arm",)),
    (r"THIGHS?|FEMUR|KNEES?|TIBIA|FIBULA|ANKLES?|FOOT|FEET|TOES?|LEGS?", ("leg",)),
)
_WORD_RULES = tuple((re.compile(rf"\b(?:{pattern})\b"), found) for pattern, found in _WORDS)


def from_body_part(value: str) -> tuple[str, ...]:
    """The regions of one Body Part Examined value; a term not known here is kept as found
    (capitalised, at most `MAX_FOUND_CHARS`); nothing for an empty value."""
    term = re.sub(r"[^A-Z]", "", value.upper())
    if not term:
        return ()
    if term in _PARTS:
        return _PARTS[term]
    return (value.strip()[:MAX_FOUND_CHARS].capitalize(),)


def from_description(text: str) -> tuple[str, ...]:
    """The regions named in a study or series description ("CT C-SPINE W/O", "CAP"), or
    nothing."""
    words = " ".join(re.sub(r"[^A-Z0-9]+", " ", text.upper()).split())
    found: list[str] = []
    for rule, regions in _WORD_RULES:
        if rule.search(words):
            found.extend(regions)
            words = rule.sub(" ", words)
    return tuple(found)


def ordered(regions: Iterable[str]) -> tuple[str, ...]:
    """Each region once: the known ones head to toe, then the others as found, at most
    `MAX_REGIONS`."""
    unique = list(dict.fromkeys(regions))
    known = [r for r in REGIONS if r in unique]
    return tuple(known + [r for r in unique if r not in REGIONS])[:MAX_REGIONS]


def of_series(
    body_parts: Iterable[str], series_description: str, study_description: str
) -> tuple[str, ...]:
    """The regions of one series: its Body Part Examined values when any is recorded, else its
    description's words, else the study description's."""
    parts = [region for value in body_parts for region in from_body_part(value)]
    if parts:
        return tuple(parts)
    return from_description(series_description) or from_description(study_description)
