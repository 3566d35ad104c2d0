"""Mid-sagittal head model: the tissue at any point for a given articulator state.

Coordinates are millimetres in a reference head (x towards the back of the head, y downwards,
face on the left, field of view 0-240 mm); a subject's head is this reference scaled by its
vocal-tract length, rotated and shifted in the image (see :func:`image_to_reference`).

The head is layered, back to front:

1. static tissue (skull, brain, nasal cavity, spine, pharyngeal wall, neck) with the airway empty;
2. the jaw group (mandible, lower teeth, lower lip, floor of mouth), rigid rotation about the
   temporomandibular joint;
3. the tongue, a deformable body: jaw rotation (weighted) plus Gaussian displacement fields at
   the dorsum, tip and root driven by the articulators;
4. the upper lip and velum (rigid);
5. hard structures that the tongue cannot pass (hard palate, upper teeth).

Every moving layer is rendered by *backward* mapping: for a point x we find the reference point
X with phi(X) = x (exactly for rigid layers, by fixed-point iteration for the tongue), so the
tissue's own coordinates (SPAMM tags, speckle, texture) travel with it. The larynx, the hyoid and the
soft tissue in front of the spine below the tongue root move up and down together (state ``larynx``, mm):
the static tissue there is deformed the same way (:func:`neck_forward`, :func:`neck_inverse`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from articulate.phantom.anatomy import Subject

CENTER = np.array([120.0, 120.0])  # scaling / rotation centre of the head in the image
TMJ = np.array([125.0, 95.0])  # jaw rotation centre
VELUM_HINGE = np.array([100.0, 103.0])
REST = {"jaw": 0.15, "tb_height": 0.45, "tb_back": 0.5, "tt_height": 0.1, "lip_round": 0.2, "lip_close": 0.7,
        "velum": 0.0}
JAW_DEG = 14.0  # jaw rotation for a fully open jaw

# intensities (proton density x relaxation, T1-weighted cine look)
MUSCLE, FAT, MARROW, CORTEX, BRAIN, CSF, MUCOSA, TOOTH = 0.55, 0.9, 0.5, 0.06, 0.42, 0.15, 0.6, 0.04

Shade = Callable[[str, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _ell(p: np.ndarray, c: tuple[float, float], a: float, b: float, ang: float = 0.0) -> np.ndarray:
    """Approximate signed distance (mm, negative inside) to an ellipse."""
    dx, dy = p[..., 0] - c[0], p[..., 1] - c[1]
    if ang:
        ca, sa = np.cos(np.deg2rad(ang)), np.sin(np.deg2rad(ang))
        dx, dy = ca * dx + sa * dy, -sa * dx + ca * dy
    return (np.sqrt((dx / a) ** 2 + (dy / b) ** 2) - 1.0) * min(a, b)


def _box(p: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    dx = np.maximum(x0 - p[..., 0], p[..., 0] - x1)
    dy = np.maximum(y0 - p[..., 1], p[..., 1] - y1)
    return np.maximum(dx, dy)


def _smin(*ds: np.ndarray, k: float = 3.0) -> np.ndarray:
    """Smooth union of signed distances (no creases where tongue parts meet)."""
    m = np.minimum.reduce(ds)
    return m - k * np.log(sum(np.exp(-(d - m) / k) for d in ds))


def _alpha(d: np.ndarray, w: float = 0.7) -> np.ndarray:
    return 0.5 * (1.0 - np.tanh(d / w))


def _rot(p: np.ndarray, c: np.ndarray, deg: float) -> np.ndarray:
    ca, sa = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    q = p - c
    return np.stack([ca * q[..., 0] - sa * q[..., 1], sa * q[..., 0] + ca * q[..., 1]], -1) + c


def image_to_reference(p_img: np.ndarray, subject: Subject) -> np.ndarray:
    """Image millimetres -> reference-head millimetres (undo the subject's pose and size)."""
    q = _rot(p_img - np.array(subject.head_shift_mm), CENTER, -subject.head_rot_deg)
    return CENTER + (q - CENTER) / subject.scale


def reference_to_image(p_ref: np.ndarray, subject: Subject) -> np.ndarray:
    q = CENTER + (p_ref - CENTER) * subject.scale
    return _rot(q, CENTER, subject.head_rot_deg) + np.array(subject.head_shift_mm)


def palate_y(x: np.ndarray, subject: Subject) -> np.ndarray:
    """Height of the oral surface of the hard palate (mm, y downwards)."""
    vault = 100.0 - subject.palate_mm
    return np.where(x < 72.0, vault + 9.0 * ((x - 72.0) / 22.0) ** 2, vault + 3.0 * ((x - 72.0) / 28.0) ** 2)


# ---------------------------------------------------------------------------------------------
# moving layers: forward maps (reference -> current) and their inverses


def _jaw_deg(state: dict[str, float]) -> float:
    # negative angle in this (y-down) frame opens the mouth: the chin swings down and back
    return -(state["jaw"] - REST["jaw"]) * JAW_DEG


def _tongue_fields(state: dict[str, float], subject: Subject) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """(centre, sigma, displacement) of the Gaussian displacement fields that shape the tongue."""
    h, b, tt = state["tb_height"] - REST["tb_height"], state["tb_back"] - REST["tb_back"], state["tt_height"]
    size = subject.tongue_size
    return [
        (np.array([84.0, 122.0]), 16.0 * size, np.array([24.0 * b, -25.0 * h])),  # dorsum
        (np.array([57.0, 121.0]), 7.0 * size, np.array([-3.0 * (tt - 0.1), -14.0 * (tt - 0.1)])),  # tip / blade
        (np.array([105.0, 150.0]), 14.0 * size, np.array([14.0 * b - 8.0 * h, 0.0])),  # root (pharynx width)
    ]


def _tongue_forward(X: np.ndarray, state: dict[str, float], subject: Subject) -> np.ndarray:
    jaw = _rot(X, TMJ, _jaw_deg(state)) - X
    w_jaw = 0.9 / (1.0 + np.exp((X[..., 0] - 108.0) / 8.0))  # the root follows the jaw less than the blade
    u = w_jaw[..., None] * jaw
    for c, s, d in _tongue_fields(state, subject):
        g = np.exp(-0.5 * np.sum((X - c) ** 2, axis=-1) / s**2)
        u = u + g[..., None] * d
    return X + u


def tongue_inverse(x: np.ndarray, state: dict[str, float], subject: Subject, iters: int = 6) -> np.ndarray:
    """Reference point X with forward(X) = x, by fixed-point iteration (the field is smooth)."""
    X = x.copy()
    for _ in range(iters):
        X = x - (_tongue_forward(X, state, subject) - X)
    return X


def _lower_lip_shift(state: dict[str, float]) -> np.ndarray:
    return np.array([-5.0 * state["lip_round"], -4.0 * state["lip_close"] + 2.5])


def _upper_lip_shift(state: dict[str, float]) -> np.ndarray:
    return np.array([-5.0 * state["lip_round"], 3.0 * (state["lip_close"] - REST["lip_close"])])


def _velum_deg(state: dict[str, float]) -> float:
    return 22.0 * state["velum"]


def layer_positions(x: np.ndarray, state: dict[str, float], subject: Subject) -> dict[str, np.ndarray]:
    """For every moving layer, the reference point that sits at x in ``state``."""
    jaw_ref = _rot(x, TMJ, -_jaw_deg(state))
    return {
        "jaw": jaw_ref,
        "lower_lip": jaw_ref - _lower_lip_shift(state),
        "tongue": tongue_inverse(x, state, subject),
        "upper_lip": x - _upper_lip_shift(state),
        "velum": _rot(x, VELUM_HINGE, -_velum_deg(state)),
    }


def layer_forward(X: np.ndarray, layer: str, state: dict[str, float], subject: Subject) -> np.ndarray:
    """Where reference point X of ``layer`` is in ``state`` (used for the tagging frame)."""
    if layer == "jaw":
        return _rot(X, TMJ, _jaw_deg(state))
    if layer == "lower_lip":
        return _rot(X + _lower_lip_shift(state), TMJ, _jaw_deg(state))
    if layer == "tongue":
        return _tongue_forward(X, state, subject)
    if layer == "upper_lip":
        return X + _upper_lip_shift(state)
    if layer == "velum":
        return _rot(X, VELUM_HINGE, _velum_deg(state))
    return X


# ---------------------------------------------------------------------------------------------
# the larynx-hyoid complex: a smooth vertical deformation of the static tissue

# The complex (hyoid, epiglottis, larynx, the tissue in front of them down to the trachea) follows the larynx
# fully below NECK_Y[1] and not above NECK_Y[0] (tongue root and oral floor); the pre-vertebral tissue and the
# spine (behind NECK_X) stay. Hyoid and larynx move as one: their linkage is tight (Honda et al., MRI of
# sustained /a/ and /i/ at three F0s: the hyoid-larynx complex moves up and forward with F0).
NECK_Y = (150.0, 172.0)
NECK_X = (131.0, 139.0)
LARYNX_ZONE_X = 92.0  # the region a moving larynx adds to the ground-truth motion region starts here (x)


def _smoothstep(z: np.ndarray) -> np.ndarray:
    z = np.clip(z, 0.0, 1.0)
    return z * z * (3.0 - 2.0 * z)


def larynx_weight(X: np.ndarray) -> np.ndarray:
    """How much of the larynx's displacement the static tissue at reference point X takes (0-1)."""
    wy = _smoothstep((X[..., 1] - NECK_Y[0]) / (NECK_Y[1] - NECK_Y[0]))
    wx = 1.0 - _smoothstep((X[..., 0] - NECK_X[0]) / (NECK_X[1] - NECK_X[0]))
    return wy * wx


def neck_forward(X: np.ndarray, larynx_mm: float, subject: Subject) -> np.ndarray:
    """Where static tissue at rest point X is when the larynx is ``larynx_mm`` (subject mm) above rest."""
    if not larynx_mm:
        return X
    out = X.copy()
    out[..., 1] = X[..., 1] - larynx_mm / subject.scale * larynx_weight(X)
    return out


def neck_inverse(x: np.ndarray, larynx_mm: float, subject: Subject, iters: int = 6) -> np.ndarray:
    """The rest point X with neck_forward(X) = x, by fixed-point iteration (the field is smooth)."""
    if not larynx_mm:
        return x
    lift = larynx_mm / subject.scale
    X = x.copy()
    for _ in range(iters):
        X[..., 1] = x[..., 1] + lift * larynx_weight(X)
    return X


# ---------------------------------------------------------------------------------------------
# tissue of each layer in its own reference coordinates: (alpha, proton density)


def tongue_sdf(X: np.ndarray) -> np.ndarray:
    return _smin(_ell(X, (84.0, 128.0), 30.0, 16.0), _ell(X, (63.0, 124.0), 12.0, 5.0, -5.0),
                 _ell(X, (106.0, 150.0), 10.0, 26.0, -15.0), _ell(X, (76.0, 145.0), 28.0, 14.0))


def _tongue(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = tongue_sdf(X)
    # muscle with a thin, slightly brighter mucosal surface
    rho = MUSCLE + 0.05 * np.exp(-((d + 1.0) / 1.2) ** 2)
    return _alpha(d), rho


def _jaw(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mand = _ell(X, (46.0, 152.0), 9.0, 18.0, 12.0)
    teeth = _ell(X, (47.5, 127.5), 3.0, 6.5, 8.0)
    floor = _smin(_ell(X, (72.0, 163.0), 28.0, 10.0, 5.0), _ell(X, (54.0, 172.0), 16.0, 10.0), k=4.0)
    chin = _ell(X, (40.0, 156.0), 13.0, 22.0, 12.0)  # soft tissue of the chin around the symphysis
    a_soft = np.maximum(_alpha(floor), _alpha(chin))
    a_mand, a_teeth = _alpha(mand), _alpha(teeth)
    rho = MUSCLE * a_soft
    marrow = MARROW * _alpha(mand + 2.5)
    rho = rho * (1 - a_mand) + a_mand * (CORTEX + marrow)
    rho = rho * (1 - a_teeth) + a_teeth * TOOTH
    fat_rim = FAT * _alpha(np.abs(chin + 2.0) - 1.5, 0.8) * (X[..., 0] < 48)
    rho = np.maximum(rho, fat_rim * (1 - a_mand))
    return np.maximum.reduce([a_soft, a_mand, a_teeth]), rho


def _lip(X: np.ndarray, c: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    d = _ell(X, c, 9.0, 6.5)
    return _alpha(d), MUSCLE + 0.1 * np.exp(-((d + 1.5) / 1.5) ** 2)


def _velum(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = _smin(_ell(X, (111.0, 107.0), 12.5, 4.5, 32.0), _ell(X, (102.0, 104.5), 5.0, 3.5), k=2.0)
    return _alpha(d), np.full(X.shape[:-1], MUCOSA)


def _static(p: np.ndarray, subject: Subject) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Background tissue (alpha, rho) and the bone/tooth alpha (ultrasound shadows)."""
    x, y = p[..., 0], p[..., 1]
    head = _smin(_ell(p, (142.0, 62.0), 104.0, 82.0), _ell(p, (75.0, 100.0), 44.0, 40.0),
                 _ell(p, (28.0, 86.0), 10.0, 17.0, -10.0), _ell(p, (106.0, 182.0), 28.0, 18.0),
                 _box(p, 94.0, 250.0, 130.0, 250.0), k=4.0)
    a_head = _alpha(head)
    rho = MUSCLE * a_head
    rho = np.where(-head < 5.0, FAT * a_head, rho)  # subcutaneous fat under the skin
    # skull, scalp and brain
    brain = _ell(p, (150.0, 50.0), 86.0, 54.0)
    skull = _ell(p, (150.0, 50.0), 92.0, 60.0)
    rho = rho * (1 - _alpha(skull)) + _alpha(skull) * (0.5 * MARROW + CORTEX)
    rho = rho * (1 - _alpha(skull + 2.0)) + _alpha(skull + 2.0) * CSF
    rho = rho * (1 - _alpha(brain)) + _alpha(brain) * BRAIN
    # skull base (clivus) running from the sella down to the foramen magnum
    clivus = _ell(p, (120.0, 85.0), 20.0, 5.0, -55.0)
    rho = rho * (1 - _alpha(clivus)) + _alpha(clivus) * (CORTEX + 0.3 * _alpha(clivus + 2.0))
    # cervical spine: vertebral bodies and discs, cord and canal
    bone = np.zeros_like(x)
    xs = x - 0.12 * (y - 110.0)
    for k in range(7):
        y0 = 108.0 + 19.0 * k
        body = _box(np.stack([xs, y], -1), 132.0, 153.0, y0, y0 + 15.0) - 1.0
        a_b = _alpha(body)
        rho = rho * (1 - a_b) + a_b * (0.25 + 0.3 * _alpha(body + 1.0))
        bone = np.maximum(bone, a_b)
    canal = _box(np.stack([xs, y], -1), 157.0, 170.0, 95.0, 260.0) - 1.0
    rho = rho * (1 - _alpha(canal)) + _alpha(canal) * (CSF + 0.3 * _alpha(canal + 3.5))
    # airway: nasal cavity, nasopharynx, oral cavity under the palate, oro/laryngopharynx
    pw = 123.0 + 0.05 * (y - 100.0)  # posterior pharyngeal wall
    nasal = _smin(_ell(p, (66.0, 88.0), 34.0, 8.5), _ell(p, (112.0, 96.0), 12.0, 7.0), k=3.0)
    oral = np.maximum.reduce([palate_y(x, subject) - y, y - 140.0, 45.0 - x, x - pw])
    front = np.where(y < 172.0, 109.0, 108.0 + 0.1 * (y - 172.0))
    # the larynx (reference mm; lower in a longer pharynx): below the arytenoids the airway runs
    # through the larynx only, whose antero-posterior size at the glottis is the vocal folds' length
    yg, fold = 207.0 + subject.larynx_drop_mm, subject.larynx_mm
    xa = 109.5
    pharynx = np.maximum.reduce([x - pw, front - x, 96.0 - y, y - (yg - 12.0)])
    back = xa + 0.8 * fold + 1.0  # the arytenoids and the cricoid lamina close the airway behind
    larynx = np.maximum.reduce([x - back, xa - x, (yg - 24.0) - y, y - 250.0])
    ventricle = _ell(p, (xa + 1.0 + 0.15 * fold, yg - 3.0), 0.25 * fold, 1.4)
    airway = _smin(nasal, oral, pharynx, larynx, ventricle, k=1.5)
    sinus = _ell(p, (118.0, 70.0), 11.0, 8.0)
    a_air = np.maximum(_alpha(airway), _alpha(sinus))
    turbinates = np.maximum(_alpha(_ell(p, (70.0, 86.0), 22.0, 2.2, -4.0)), _alpha(_ell(p, (62.0, 93.0), 18.0, 2.0)))
    rho = rho * (1 - a_air) + a_air * MUCOSA * turbinates
    hyoid = _ell(p, (100.0, 180.0), 5.5, 3.0, -20.0)
    epiglottis = _ell(p, (113.0, 172.0), 2.0, 10.0, 15.0)
    rho = rho * (1 - _alpha(hyoid)) + _alpha(hyoid) * (CORTEX + MARROW * _alpha(hyoid + 1.2))
    rho = np.maximum(rho, MUCOSA * _alpha(epiglottis))
    # thyroid cartilage in front of the glottis and the cricoid ring below it (partly ossified:
    # marrow inside a dark rim), sized with the folds
    thyroid = _box(p, xa - 6.5, xa - 2.5, yg - 0.9 * fold, yg + 5.0) - 0.5
    cricoid = np.minimum(_box(p, back + 1.0, back + 6.0, yg + 1.0, yg + 1.0 + 0.9 * fold),
                         _box(p, xa - 5.5, xa - 1.5, yg + 8.0, yg + 12.0)) - 0.5
    for d in (thyroid, cricoid):
        rho = rho * (1 - _alpha(d)) + _alpha(d) * (CORTEX + FAT * _alpha(d + 1.0))
    bone = np.maximum.reduce([bone, _alpha(hyoid), _alpha(skull) * (1 - _alpha(skull + 2.0))])
    return a_head * (1.0 - a_air), rho, bone


def _hard(p: np.ndarray, subject: Subject) -> tuple[np.ndarray, np.ndarray]:
    """Hard palate (cortex + marrow) and upper incisors, drawn over everything that moves."""
    x, y = p[..., 0], p[..., 1]
    yp = palate_y(x, subject)
    band = np.maximum(np.abs(y - (yp - 3.0)) - 3.0, np.maximum(48.0 - x, x - 101.0))
    a_pal = _alpha(band, 0.6)
    teeth = _ell(p, (46.5, 112.0), 3.0, 7.5, -8.0)
    alpha = np.maximum(a_pal, _alpha(teeth))
    rho = np.where(_alpha(teeth) > a_pal, TOOTH, CORTEX + 0.35 * _alpha(band + 1.5, 0.6))
    return alpha, rho


LAYERS = ("jaw", "tongue", "lower_lip", "upper_lip", "velum")
# where moving tissue can ever be (reference mm): everything else is static and rendered once
MOVING_BOX = (10.0, 135.0, 92.0, 215.0)


def static_maps(points_img: np.ndarray, subject: Subject, larynx_mm: float = 0.0,
                base: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The parts of :func:`render` that do not depend on the tongue, lips, jaw and velum: computed once per
    subject, and again per larynx height (``larynx_mm`` above rest; ``base``: the maps at rest, of which only
    the part the larynx moves is recomputed). ``q`` holds the static tissue's own rest coordinates."""
    if base is not None:
        if not larynx_mm:
            return base
        out = dict(base)
        p = base["p"]
        near = (p[..., 1] > NECK_Y[0] - abs(larynx_mm) / subject.scale - 1.0) & (p[..., 0] < NECK_X[1])
        q = p.copy()
        q[near] = neck_inverse(p[near], larynx_mm, subject)
        a_bg, rho_bg, bone = base["a_bg"].copy(), base["rho_bg"].copy(), base["bone"].copy()
        a_bg[near], rho_bg[near], bone[near] = _static(q[near], subject)
        out.update(q=q, a_bg=a_bg, rho_bg=rho_bg, bone=bone)
        return out
    p = image_to_reference(points_img, subject)
    q = neck_inverse(p, larynx_mm, subject)
    a_bg, rho_bg, bone = _static(q, subject)
    a_h, rho_h = _hard(p, subject)
    x0, x1, y0, y1 = MOVING_BOX
    roi = (p[..., 0] > x0) & (p[..., 0] < x1) & (p[..., 1] > y0) & (p[..., 1] < y1)
    return {"p": p, "q": q, "a_bg": a_bg, "rho_bg": rho_bg, "bone": bone, "a_h": a_h, "rho_h": rho_h, "roi": roi}


def render(points_img: np.ndarray, state: dict[str, float], subject: Subject, shade: Shade | None = None,
           static: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Composite the head at image points (mm) for one articulator state (``larynx``, mm above rest, optional).

    ``shade(layer, ref_xy, rho, alpha)`` may modulate each layer's intensity using the tissue's own
    reference coordinates (tags, speckle). Returns ``value`` (composited), ``tissue`` (alpha of any
    tissue), ``tongue`` and ``bone`` alphas, ``tongue_ref`` (tongue reference coordinates, NaN
    outside the moving region), ``layer`` (the frontmost opaque layer: 0 static, else 1 + its index
    in :data:`LAYERS`), ``layer_ref`` (that layer's own reference coordinates, so speckle and tags
    can travel with any tissue) and ``moving`` (alpha of any moving layer not under the hard palate
    or teeth). Pass ``static=static_maps(points_img, subject, larynx_mm)`` (the state's larynx height) to
    reuse the static part.
    """
    st = static if static is not None else static_maps(points_img, subject, state.get("larynx", 0.0))
    shade = shade or (lambda layer, ref, rho, alpha: rho)
    roi = st["roi"]
    p = st["p"][roi]
    value = shade("static", st["q"], st["rho_bg"], st["a_bg"]).copy()
    tissue = st["a_bg"].copy()
    bone = st["bone"].copy()
    tongue = np.zeros(roi.shape)
    tongue_ref = np.full(roi.shape + (2,), np.nan)
    layer_id = np.zeros(roi.shape, np.int8)
    layer_ref = st["q"].copy()
    moving = np.zeros(roi.shape)
    v, ti, bo = value[roi], tissue[roi], bone[roi]
    lid, lref, mv = layer_id[roi], layer_ref[roi], moving[roi]
    pos = layer_positions(p, state, subject)
    for i, layer in enumerate(LAYERS):
        X = pos[layer]
        if layer == "jaw":
            a, rho = _jaw(X)
            bo = np.maximum(bo, _alpha(_ell(X, (46.0, 152.0), 9.0, 18.0, 12.0)))
            bo = np.maximum(bo, _alpha(_ell(X, (47.5, 127.5), 3.0, 6.5, 8.0)))
        elif layer == "tongue":
            a, rho = _tongue(X)
            tongue[roi] = a
            tongue_ref[roi] = X
        elif layer == "lower_lip":
            a, rho = _lip(X, (37.0, 127.0))
        elif layer == "upper_lip":
            a, rho = _lip(X, (36.0, 112.0))
        else:
            a, rho = _velum(X)
        v = v * (1 - a) + a * shade(layer, X, rho, a)
        ti = np.maximum(ti, a)
        mv = np.maximum(mv, a)
        front = a > 0.5
        lid[front] = i + 1
        lref[front] = X[front]
    value[roi], tissue[roi], bone[roi] = v, ti, bo
    layer_id[roi], layer_ref[roi], moving[roi] = lid, lref, mv
    a_h = st["a_h"]
    value = value * (1 - a_h) + a_h * shade("hard", st["p"], st["rho_h"], a_h)
    bone = np.maximum(bone, a_h)
    hard = a_h > 0.5
    layer_id[hard] = 0
    layer_ref[hard] = st["p"][hard]
    return {"value": value, "tissue": tissue, "tongue": tongue, "bone": bone, "tongue_ref": tongue_ref,
            "ref": st["p"], "layer": layer_id, "layer_ref": layer_ref, "moving": moving * (1 - a_h)}


VALLECULA_Y = 168.0  # reference mm: where the tongue root's surface meets the vallecula


@functools.lru_cache(maxsize=4)
def tongue_outline(n: int = 400) -> np.ndarray:
    """The rest tongue's air-facing surface (reference mm, [m, 2]) from the vallecula to the tip.

    Rays from inside the tongue find its outer boundary (the shape is star-shaped about that
    centre); the surface runs from the root's back at :data:`VALLECULA_Y` over the dorsum to the
    tip (the most anterior point), the part a midsagittal ultrasound or MRI shows against air.
    """
    centre = np.array([86.0, 138.0])
    phi = np.linspace(np.pi, 2.0 * np.pi + 1.3, n)  # front, up over the top, back, down the root
    r = np.linspace(0.0, 70.0, 2801)
    d = np.stack([np.cos(phi), np.sin(phi)], -1)
    pts = centre + r[None, :, None] * d[:, None, :]
    inside = tongue_sdf(pts) < 0
    last = inside.shape[1] - 1 - np.argmax(inside[:, ::-1], axis=1)
    outline = pts[np.arange(n), last]
    tip = int(np.argmin(outline[:, 0]))
    root = next(k for k in range(tip, n) if outline[k, 1] >= VALLECULA_Y and outline[k, 0] > centre[0])
    return outline[tip: root + 1][::-1].copy()


def tongue_surface(state: dict[str, float], subject: Subject) -> np.ndarray:
    """The tongue's air-facing surface in ``state`` (image mm, [m, 2]) from the vallecula to the tip."""
    return reference_to_image(_tongue_forward(tongue_outline(), state, subject), subject)
