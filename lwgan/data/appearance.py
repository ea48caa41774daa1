"""Procedural clothing for synthetic subjects: body regions from skinning weights, and per-region patterns.

A surface point's colour is a function of its region (skin, hair, shirt, sleeve,
trousers, shoes) and its rest-pose position, so a pattern sticks to the body whatever
the pose: shirt stripes, checked or pin-striped trousers, a chest print on the front
(tells front from back in the turn video), skin on the head and hands.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SKIN, HAIR, SHIRT, SLEEVE, TROUSERS, SHOES, EYES = range(7)
REGION_NAMES = ("skin", "hair", "shirt", "sleeve", "trousers", "shoes", "eyes")

# SMPL joint -> region (long sleeves / long trousers; short ones turn forearms / shins to skin).
_JOINT_REGION = {
    0: TROUSERS, 1: TROUSERS, 2: TROUSERS, 4: TROUSERS, 5: TROUSERS,  # pelvis, thighs, shins
    3: SHIRT, 6: SHIRT, 9: SHIRT, 13: SHIRT, 14: SHIRT,  # belly, chest, collars
    16: SLEEVE, 17: SLEEVE, 18: SLEEVE, 19: SLEEVE,  # upper arms, forearms
    7: SHOES, 8: SHOES, 10: SHOES, 11: SHOES,  # ankles, feet
    12: SKIN, 15: SKIN, 20: SKIN, 21: SKIN, 22: SKIN, 23: SKIN,  # neck, head, hands
}
FOREARM_JOINTS = (18, 19)
SHIN_JOINTS = (4, 5)
HEAD_JOINT = 15

SKIN_TONES = np.array(
    [[255, 219, 172], [241, 194, 125], [224, 172, 105], [198, 134, 66], [141, 85, 36], [92, 58, 30]], dtype=np.float64
)
HAIR_COLOURS = np.array([[25, 20, 18], [70, 45, 25], [140, 95, 50], [200, 170, 100], [120, 30, 20]], dtype=np.float64)
SHIRT_PATTERNS = ("h_stripes", "v_stripes", "checks", "dots", "diagonal")
TROUSER_PATTERNS = ("plain", "checks", "pinstripes", "two_tone")


@dataclass(frozen=True)
class Outfit:
    skin: np.ndarray
    hair: np.ndarray
    shirt_a: np.ndarray
    shirt_b: np.ndarray
    shirt_pattern: str
    shirt_period: float  # metres
    print_colour: np.ndarray
    long_sleeves: bool
    trousers_a: np.ndarray
    trousers_b: np.ndarray
    trousers_pattern: str
    trousers_period: float
    long_trousers: bool
    shoes: np.ndarray


def _saturated(rng: np.random.Generator) -> np.ndarray:
    """A clearly coloured RGB (random hue, high saturation, mid-high value)."""
    hue = rng.uniform(0, 6)
    sat, val = rng.uniform(0.55, 0.95), rng.uniform(150, 245)
    x = 1 - abs(hue % 2 - 1)
    rgb = [(1, x, 0), (x, 1, 0), (0, 1, x), (0, x, 1), (x, 0, 1), (1, 0, x)][int(hue) % 6]
    return val * (1 - sat + sat * np.array(rgb, dtype=np.float64))


def random_outfit(rng: np.random.Generator) -> Outfit:
    shirt_a = _saturated(rng)
    light = rng.random() < 0.5
    shirt_b = np.array([240.0, 240.0, 235.0]) if light else shirt_a * rng.uniform(0.25, 0.45)
    trousers_a = _saturated(rng) * rng.uniform(0.35, 0.7)
    return Outfit(
        skin=SKIN_TONES[rng.integers(len(SKIN_TONES))],
        hair=HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))],
        shirt_a=shirt_a,
        shirt_b=shirt_b,
        shirt_pattern=str(rng.choice(SHIRT_PATTERNS)),
        shirt_period=float(rng.uniform(0.05, 0.09)),
        print_colour=_saturated(rng),
        long_sleeves=bool(rng.random() < 0.5),
        trousers_a=trousers_a,
        trousers_b=np.clip(trousers_a * 1.8 + 40.0, 0, 255),
        trousers_pattern=str(rng.choice(TROUSER_PATTERNS)),
        trousers_period=float(rng.uniform(0.06, 0.1)),
        long_trousers=bool(rng.random() < 0.75),
        shoes=rng.uniform(10, 90, 3) if rng.random() < 0.7 else np.array([235.0, 235.0, 235.0]),
    )


@dataclass(frozen=True)
class BodyLayout:
    """Where things are on a subject's rest-pose body (metres, SMPL frame: +y up, +z front)."""

    vertex_joint: np.ndarray  # (V,) argmax of the skinning weights
    head_min: np.ndarray  # (3,) bounding box of the head vertices
    head_max: np.ndarray
    chest_centre: np.ndarray  # (3,) front of the chest
    torso_axis: np.ndarray  # (2,) x, z of the vertical axis through the torso
    torso_height: float


def body_layout(rest_vertices: np.ndarray, lbs_weights: np.ndarray) -> BodyLayout:
    vertex_joint = np.asarray(lbs_weights).argmax(axis=1)
    head = rest_vertices[vertex_joint == HEAD_JOINT]
    torso = rest_vertices[np.isin(vertex_joint, (3, 6, 9))]
    if len(head) == 0 or len(torso) == 0:
        raise ValueError("body model has no head or torso vertices by skinning weight (joints 15; 3, 6, 9)")
    chest = rest_vertices[vertex_joint == 9] if np.any(vertex_joint == 9) else torso
    chest_centre = np.array([np.median(torso[:, 0]), np.median(chest[:, 1]), torso[:, 2].max()])
    return BodyLayout(
        vertex_joint=vertex_joint,
        head_min=head.min(0),
        head_max=head.max(0),
        chest_centre=chest_centre,
        torso_axis=np.array([np.median(torso[:, 0]), torso[:, 2].mean()]),
        torso_height=float(np.ptp(torso[:, 1])),
    )


def vertex_regions(layout: BodyLayout, outfit: Outfit) -> np.ndarray:
    """(V,) region id per vertex (hair and eyes are decided per surface point, see ``surface_regions``)."""
    regions = np.array([_JOINT_REGION.get(int(j), SHIRT) for j in layout.vertex_joint], dtype=np.int64)
    if not outfit.long_sleeves:
        regions[np.isin(layout.vertex_joint, FOREARM_JOINTS)] = SKIN
    if not outfit.long_trousers:
        regions[np.isin(layout.vertex_joint, SHIN_JOINTS)] = SKIN
    return regions


def surface_regions(layout: BodyLayout, regions: np.ndarray, joints: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Refine per-point regions on the head: hair on the top and back, two eyes on the front."""
    regions = regions.copy()
    on_head = joints == HEAD_JOINT
    lo, hi = layout.head_min, layout.head_max
    size = np.maximum(hi - lo, 1e-6)
    rel = (pos - lo) / size  # 0..1 within the head box
    hair = on_head & ((rel[:, 1] > 0.68) | ((rel[:, 2] < 0.45) & (rel[:, 1] > 0.3)))
    regions[hair] = HAIR
    eye_y, eye_dx, eye_r = 0.55, 0.17, 0.07
    for side in (-1.0, 1.0):
        d = np.hypot((rel[:, 0] - (0.5 + side * eye_dx)) * size[0] / size[1], rel[:, 1] - eye_y)
        regions[on_head & (rel[:, 2] > 0.8) & (d < eye_r)] = EYES
    return regions


def _stripes(t: np.ndarray, period: float, duty: float = 0.5) -> np.ndarray:
    return ((t / period) % 1.0) < duty


def surface_colour(outfit: Outfit, layout: BodyLayout, region: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """(M, 3) float RGB 0..255 of surface points with ``region`` (M,) and rest position ``pos`` (M, 3)."""
    out = np.zeros((len(region), 3))
    x, y, z = pos[:, 0], pos[:, 1], pos[:, 2]

    out[region == SKIN] = outfit.skin
    out[region == HAIR] = outfit.hair
    out[region == EYES] = (30.0, 30.0, 40.0)
    out[region == SHOES] = outfit.shoes

    # Arc length around the body's vertical axis: vertical stripes wrap around the torso.
    around = np.arctan2(x - layout.torso_axis[0], z - layout.torso_axis[1]) * 0.15 + 10
    p = outfit.shirt_period
    pattern = {
        "h_stripes": _stripes(y, p),
        "v_stripes": _stripes(around, p * 0.6),
        "checks": _stripes(x + 10, p) ^ _stripes(y, p) ^ _stripes(z + 10, p),
        "dots": (np.hypot(((x + 10) % p) - p / 2, ((y + 10) % p) - p / 2) < p * 0.28),
        "diagonal": _stripes(x + y + 10, p),
    }[outfit.shirt_pattern]
    for reg in (SHIRT, SLEEVE):
        m = region == reg
        out[m] = np.where(pattern[m, None], outfit.shirt_b, outfit.shirt_a)
    # Sleeves of a different pattern than the body read better as "arms": use stripes across the arm.
    m = region == SLEEVE
    out[m] = np.where(_stripes(x[m] + 10, p * 0.8)[:, None], outfit.shirt_b, outfit.shirt_a)

    # Chest print: a disc with a ring on the front only.
    c = layout.chest_centre
    radius = 0.28 * layout.torso_height
    d = np.hypot(x - c[0], y - c[1])
    front = (region == SHIRT) & (z > c[2] - 0.12)
    out[front & (d < radius)] = outfit.print_colour
    out[front & (d < 0.55 * radius)] = outfit.shirt_b if outfit.shirt_pattern != "dots" else outfit.shirt_a

    m = region == TROUSERS
    q = outfit.trousers_period
    tp = {
        "plain": np.zeros(len(x), dtype=bool),
        "checks": _stripes(x + 10, q) ^ _stripes(y + 10, q) ^ _stripes(z + 10, q),
        "pinstripes": _stripes(around, q * 0.5, duty=0.2),
        "two_tone": z < np.median(z[m]) if m.any() else np.zeros(len(x), dtype=bool),
    }[outfit.trousers_pattern]
    out[m] = np.where(tp[m, None], outfit.trousers_b, outfit.trousers_a)
    return out
