"""Datasets and input encodings. Only data that ships, is generated, or is already on disk: no downloads.

Two kinds of data, one way in: ``Dataset.encoding`` says whether ``x`` holds static features in
[0, 1] ("rate": Bernoulli rate-coded per batch) or event frames that already are spikes ("events":
(n, T, C*H*W) 0/1, T = the number of time bins). :func:`batch_spikes` turns a batch of either into
(batch, T, features) spikes; training, evaluation and the compiler's test inputs all call it.

- ``digits``: scikit-learn's 8x8 handwritten digits (1797 images, shipped with scikit-learn).
- ``mnist``: the four standard gzipped IDX files in ``DATA_DIR/mnist/``.
- ``synthetic-events``: a generated, seeded moving-bar event stream (2x16x16 sensor, 4 directions).
- ``synthetic-speech``: generated SHD-layout recordings (700 channels), two syllables in one of 12
  orders: a task that needs memory across a silence (the recurrent networks' benchmark).
- ``nmnist``, ``dvsgesture``, ``cifar10dvs``, ``shd`` (Spiking Heidelberg Digits, 700 channels): read
  from ``DATA_DIR`` by tonic's dataset classes.

``DATA_DIR`` is ``--data-dir``, else ``$SNNC_DATA_DIR``, else ``$XDG_CACHE_HOME/snnc/datasets``
(``~/.cache/snnc/datasets``). A missing dataset raises :class:`InputFileError` naming the files;
tonic's own download is disabled. See docs/datasets.md.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from snnc.errors import InputFileError, SnncError

if TYPE_CHECKING:   # torch is imported where it is used: listing or loading datasets needs none
    import torch

DEFAULT_TIMESTEPS = 20
#: The most timesteps a file (checkpoint metadata, artifact manifest, netx tSample) may ask for: more
#: would make the engines allocate (samples, T, inputs) arrays of absurd size from a few bytes of file.
MAX_TIMESTEPS = 100_000
#: The most values one sample may have (timesteps x input lines): the engines hold (samples, T, inputs).
MAX_SAMPLE_VALUES = 2**25


def sample_size_problem(timesteps: int, input_size: int) -> str | None:
    """Why ``timesteps`` steps of ``input_size`` input lines are too many for one sample, or None."""
    if timesteps * input_size > MAX_SAMPLE_VALUES:
        return (f"{timesteps} timesteps x {input_size} input lines = {timesteps * input_size} values per sample, "
                f"more than the {MAX_SAMPLE_VALUES} snnc simulates")
    return None
#: tonic's default structured event dtype (``tonic.io.events_struct``), so events need no tonic to exist.
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])


@dataclass(frozen=True)
class Dataset:
    """Samples and labels; ``x`` is static features (encoding 'rate') or spike frames ('events')."""

    name: str
    x: np.ndarray          # rate: (n, features) float32 in [0, 1]; events: (n, T, features) bool
    y: np.ndarray          # (n,) int64
    num_classes: int
    encoding: str = "rate"
    shape: tuple[int, ...] | None = None   # (C, H, W) of one sample's features, torch flatten order

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(C, H, W) for image-like data (what convolutional architectures take), else (features,)."""
        return self.shape if self.shape is not None else (self.input_size,)

    @property
    def input_size(self) -> int:
        return int(self.x.shape[-1])

    @property
    def timesteps(self) -> int | None:
        """Time bins of an event dataset (fixed by the data); None when rate-coded (any T works)."""
        return int(self.x.shape[1]) if self.encoding == "events" else None


# ---------------------------------------------------------------- the one encoding

def rate_encode(x: torch.Tensor, timesteps: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Bernoulli rate code: (batch, features) in [0, 1] -> (batch, T, features) 0/1 spikes."""
    import torch

    p = x.clamp(0, 1).unsqueeze(1).expand(-1, timesteps, -1)
    return (torch.rand(p.shape, generator=generator) < p).to(torch.float32)


def signed_rate_encode(x: torch.Tensor, timesteps: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Signed Poisson code (Lee et al. 2020): x in [0, 1] is centred to c = 2x - 1, and each step
    carries sign(c) with probability |c|. Lee et al. centre by the dataset mean/std; centring at
    mid-grey needs no stored statistics. (batch, features) -> (batch, T, features) in {-1, 0, 1}."""
    import torch

    c = (2 * x - 1).clamp(-1, 1).unsqueeze(1).expand(-1, timesteps, -1)
    return (torch.rand(c.shape, generator=generator) < c.abs()).to(torch.float32) * torch.sign(c)


def analog_encode(x: torch.Tensor, timesteps: int) -> torch.Tensor:
    """The encoding layer's input (Wu et al. 2019): the analog image itself at every step."""
    import torch

    return x.clamp(0, 1).to(torch.float32).unsqueeze(1).expand(-1, timesteps, -1).contiguous()


#: input codes of static features; event datasets bring their own spikes ('events')
ENCODERS = {"rate": rate_encode, "signed": signed_rate_encode,
            "analog": lambda x, t, g=None: analog_encode(x, t)}


def _code_of(data: Dataset, timesteps: int, encoding: str | None) -> str:
    """The code ``data`` is fed with (``encoding``, default the dataset's): a static code of
    :data:`ENCODERS`, or 'events' (whose frames must have ``timesteps`` bins); else a clear error."""
    code = encoding or data.encoding
    if data.encoding == "rate" and code in ENCODERS:
        return code
    if data.encoding == "events" and code == "events":
        if data.timesteps != timesteps:
            raise SnncError(f"dataset '{data.name}' was framed into {data.timesteps} time bins but "
                            f"{timesteps} timesteps were asked for; load it with timesteps={timesteps}.")
        return code
    if data.encoding == "events":
        raise SnncError(f"dataset '{data.name}' is event data: it brings its own spikes and cannot be given "
                        f"the '{code}' input encoding; use a rate-coded model (e.g. --rule stbp-rect) or a "
                        f"static dataset (digits, mnist).")
    raise SnncError(f"unknown input encoding '{code}' for dataset '{data.name}' (supported: "
                    f"{', '.join(ENCODERS)}, events).")


def batch_spikes(data: Dataset, index: Any, timesteps: int, generator: torch.Generator | None = None,
                 encoding: str | None = None) -> torch.Tensor:
    """Samples ``index`` of ``data`` as float32 (batch, T, features) model input, the training path.

    ``encoding`` (default: the dataset's) codes static features as 'rate' 0/1 spikes, 'signed'
    {-1, 0, 1} spikes or the 'analog' values; random codes draw from ``generator``. Event frames are
    returned as they are (and consume no random numbers), so their T must equal ``timesteps``.
    What the engines are fed is coded by :func:`engine_spikes` (numpy, the same distributions).
    """
    import torch

    if isinstance(index, torch.Tensor):
        index = index.numpy()
    code = _code_of(data, timesteps, encoding)
    if code == "events":
        return torch.from_numpy(np.ascontiguousarray(data.x[index])).to(torch.float32)
    return ENCODERS[code](torch.from_numpy(data.x[index]), timesteps, generator)


#: the random generator of :func:`engine_spikes` (recorded in an artifact's input spec, snnc/inputs.py)
ENGINE_CODE_GENERATOR = "numpy PCG64"
_CODE_CHUNK = 256     # samples drawn at a time: memory stays at the (bool) result, not T x features floats


def engine_spikes(data: Dataset, index: Any, timesteps: int, seed: int, encoding: str | None = None) -> np.ndarray:
    """Samples ``index`` of ``data`` as the chip receives them (:func:`to_engine_input`'s formats:
    bool spikes, 'signed' as two binary channels ``[x > 0, x < 0]``, 'analog' as 8-bit graded values),
    the static codes drawn from numpy's PCG64 seeded with ``seed``: the same distributions as
    :func:`batch_spikes`, without torch (``snn-run`` of a small network never imports it; issue 22).
    Samples are drawn in order, so the first k samples are the same whatever ``index`` stops at."""
    code = _code_of(data, timesteps, encoding)
    x = np.asarray(data.x[index])
    if code == "events":
        return x > 0.5
    if code == "analog":       # analog_encode's float32 value, to_engine_input's rounding
        v = np.round(np.clip(x, 0, 1).astype(np.float32).astype(np.float64) * 255).astype(np.int64)
        return np.ascontiguousarray(np.broadcast_to(v[:, None, :], (len(v), timesteps, v.shape[1])))
    rng = np.random.Generator(np.random.PCG64(seed))
    n, f = x.shape
    out = np.empty((n, timesteps, 2 * f if code == "signed" else f), dtype=bool)
    for i in range(0, n, _CODE_CHUNK):
        xs = x[i:i + _CODE_CHUNK].astype(np.float32)
        u = rng.random((len(xs), timesteps, f), dtype=np.float32)
        if code == "rate":
            np.less(u, np.clip(xs, 0, 1)[:, None, :], out=out[i:i + _CODE_CHUNK])
        else:                   # signed_rate_encode: sign(c) with probability |c|, c = 2x - 1
            c = np.clip(2 * xs - 1, -1, 1)[:, None, :]
            spike = u < np.abs(c)
            out[i:i + _CODE_CHUNK, :, :f] = spike & (c > 0)
            out[i:i + _CODE_CHUNK, :, f:] = spike & (c < 0)
    return out


def to_engine_input(x: torch.Tensor | np.ndarray, encoding: str) -> np.ndarray:
    """Model input (batch, T, n) -> what the chip receives: 'signed' as two binary channels
    [x > 0, x < 0] (2n lines), 'analog' as 8-bit graded values round(255 x), spikes as bool."""
    x = np.asarray(x)
    if encoding == "signed":
        return np.concatenate([x > 0, x < 0], axis=-1)
    if encoding == "analog":
        return np.round(np.clip(x.astype(np.float64), 0, 1) * 255).astype(np.int64)
    return x > 0.5


def from_engine_input(x: np.ndarray, encoding: str) -> torch.Tensor:
    """Inverse of :func:`to_engine_input`: the model input that gives the chip exactly ``x``."""
    import torch

    if encoding == "signed":
        n = x.shape[-1] // 2
        return torch.from_numpy(x[..., :n].astype(np.float32) - x[..., n:].astype(np.float32))
    if encoding == "analog":
        return torch.from_numpy(x.astype(np.float64) / 255)
    return torch.from_numpy(x.astype(np.float32))


def encode_samples(x: np.ndarray, timesteps: int, seed: int) -> np.ndarray:
    """Deterministic rate code of ``x`` (n, features) -> bool (n, T, features), as every engine is fed
    (:func:`engine_spikes`)."""
    data = Dataset("samples", np.asarray(x, dtype=np.float32), np.zeros(len(x), dtype=np.int64), 0)
    return engine_spikes(data, slice(None), timesteps, seed, "rate")


# ---------------------------------------------------------------- where data lives

def default_data_dir() -> Path:
    """$SNNC_DATA_DIR, else $XDG_CACHE_HOME/snnc/datasets, else ~/.cache/snnc/datasets."""
    if os.environ.get("SNNC_DATA_DIR"):
        return Path(os.environ["SNNC_DATA_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "snnc" / "datasets"


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """An explicit directory wins over the environment (``--data-dir`` > $SNNC_DATA_DIR > XDG)."""
    return Path(data_dir).expanduser() if data_dir else default_data_dir()


def _missing(name: str, where: Path, what: str, source: str) -> InputFileError:
    """The one-paragraph 'put these files here' error: snnc never downloads."""
    return InputFileError(
        f"dataset '{name}' is not in {where}: {what} Get them from {source}. snnc never downloads; "
        f"to use another directory pass --data-dir DIR or set SNNC_DATA_DIR (see docs/datasets.md).")


# ---------------------------------------------------------------- static datasets

def _digits(split: str, seed: int, **_: Any) -> Dataset:
    x, y = digits_arrays()
    x = (x / 16.0).astype(np.float32)  # pixel intensities 0..16
    y = y.astype(np.int64)
    train, test = stratified_split(y, n_test=math.ceil(0.2 * len(y)), seed=seed)
    idx = train if split == "train" else test
    return Dataset("digits", x[idx], y[idx], 10, shape=(1, 8, 8))


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as ``load_digits()`` returns them (data float64, target int), read from
    the file it ships (``sklearn/datasets/data/digits.csv.gz``) the way it reads it, without importing
    scikit-learn (its import costs ~1 s: scipy.stats and more; docs/performance.md, "Start-up")."""
    import gzip
    from importlib.util import find_spec

    spec = find_spec("sklearn")      # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise SnncError("the 'digits' dataset ships with scikit-learn, which is not installed: pip install scikit-learn")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    with path.open("rb") as raw, gzip.open(raw, mode="rt", encoding="utf-8") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1], data[:, -1].astype(int, copy=False)


def stratified_split(y: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices exactly as scikit-learn's ``train_test_split(..., test_size=n_test,
    random_state=seed, stratify=y)`` draws them (``StratifiedShuffleSplit._iter_indices`` and
    ``utils.extmath._approximate_mode`` of scikit-learn 1.9, the same RandomState calls in the same
    order), without importing scikit-learn; tests/test_benchmarks.py checks it equal to scikit-learn's."""
    n_train = len(y) - n_test
    _, y_indices, class_counts = np.unique(y, return_inverse=True, return_counts=True)
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(seed)
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train: list[Any] = []
    test: list[Any] = []
    for i in range(len(class_counts)):
        perm = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        train.extend(perm[:n_i[i]])
        test.extend(perm[n_i[i]:n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """scikit-learn's ``utils.extmath._approximate_mode`` (ties broken by ``rng`` as it breaks them)."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            inds = rng.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
               "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
MNIST_SOURCE = ("https://ossci-datasets.s3.amazonaws.com/mnist/ (torchvision's mirror of "
                "http://yann.lecun.com/exdb/mnist/)")
#: Where the mnist loader looks under DATA_DIR, in this order: snnc's own folder (the published .gz
#: files), then torchvision's ``MNIST/raw`` (torchvision.datasets.MNIST unpacks the files there and
#: keeps the .gz beside them); in either folder a file may be gzipped (NAME.gz) or not (NAME).
MNIST_FOLDERS = ("mnist", "MNIST/raw")
GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse a big-endian IDX file of unsigned bytes (magic 0x0000080N, N = ``ndim``), gzipped or not
    (told apart by the gzip magic bytes, not the name)."""
    try:
        with open(path, "rb") as f:
            gzipped = f.read(2) == GZIP_MAGIC
        if path.suffix == ".gz" and not gzipped:
            raise InputFileError(f"{path}: not a readable gzip file (no gzip header, yet named .gz); "
                                 f"re-download it.")
        if gzipped:
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as e:
        raise InputFileError(f"{path}: not a readable {'gzip' if path.suffix == '.gz' else 'IDX'} file ({e}); "
                             f"re-download it.") from None
    if len(raw) < 4 + 4 * ndim:
        raise InputFileError(f"{path}: only {len(raw)} bytes{' after gunzip' if gzipped else ''}, too short for "
                             f"an IDX header.")
    magic = struct.unpack(">I", raw[:4])[0]
    if magic != 0x800 + ndim:
        raise InputFileError(f"{path}: IDX magic number 0x{magic:08x}, expected 0x{0x800 + ndim:08x} "
                             f"(unsigned bytes, {ndim} dimension(s)); the file is corrupt or not this file.")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(dims)):
        raise InputFileError(f"{path}: header says shape {dims} ({int(np.prod(dims))} bytes) but the file "
                             f"holds {len(body)} bytes; it is truncated or corrupt.")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def read_idx_gz(path: Path, ndim: int) -> np.ndarray:
    """Parse a gzipped IDX file (:func:`read_idx`, which also takes uncompressed ones)."""
    if path.is_file():
        with open(path, "rb") as f:
            if f.read(2) != GZIP_MAGIC:
                raise InputFileError(f"{path}: not a readable gzip file (no gzip header); re-download it.")
    return read_idx(path, ndim)


def mnist_files(data_dir: Path, split: str) -> tuple[Path, Path] | None:
    """The (images, labels) IDX files of ``split`` under ``data_dir``: the first folder of
    :data:`MNIST_FOLDERS` holding both, each as NAME.gz or uncompressed NAME; None if none does."""
    found = []
    for folder in MNIST_FOLDERS:
        pair = []
        for gz_name in MNIST_FILES[split]:
            options = [data_dir / folder / gz_name, data_dir / folder / gz_name[:-3]]
            pair.append(next((p for p in options if p.is_file()), None))
        if all(pair):
            found.append((pair[0], pair[1]))
    return found[0] if found else None


def _mnist(split: str, seed: int, *, data_dir: Path, limit: int | None = None, **_: Any) -> Dataset:
    files = mnist_files(data_dir, split)
    if files is None:
        names = ", ".join(f for pair in MNIST_FILES.values() for f in pair)
        raise _missing("mnist", data_dir / "mnist", f"expected the four gzipped IDX files {names} in "
                       f"{data_dir / 'mnist'}/, or torchvision's layout {data_dir / 'MNIST' / 'raw'}/ (the same "
                       f"names, gzipped or not, as torchvision.datasets.MNIST leaves them).", MNIST_SOURCE)
    img_path, lbl_path = files
    images, labels = read_idx(img_path, 3), read_idx(lbl_path, 1)
    if len(images) != len(labels):
        raise InputFileError(f"{img_path.parent}: {img_path.name} holds {len(images)} images but {lbl_path.name} "
                             f"holds {len(labels)} labels.")
    if labels.size and labels.max() > 9:
        raise InputFileError(f"{lbl_path}: label {int(labels.max())} is not a digit 0-9.")
    n = len(labels) if limit is None else min(limit, len(labels))
    x = (images[:n].reshape(n, -1) / 255.0).astype(np.float32)
    return Dataset("mnist", x, labels[:n].astype(np.int64), 10, shape=(1, 28, 28))


# ---------------------------------------------------------------- events -> spikes (shared by every event dataset)

def frame_shape(sensor_size: tuple[int, int, int]) -> tuple[int, int, int]:
    """tonic's sensor_size (W, H, P) -> the (P, H, W) layout of one ToFrame frame (our flatten order)."""
    w, h, p = sensor_size
    return int(p), int(h), int(w)


def frame_transform(sensor_size: tuple[int, int, int], timesteps: int) -> Callable[[np.ndarray], np.ndarray]:
    """tonic's ToFrame(n_time_bins=T): (T, P, H, W) event counts per time bin."""
    from tonic.transforms import ToFrame

    return ToFrame(sensor_size=sensor_size, n_time_bins=timesteps)


def events_to_spikes(events: np.ndarray, transform: Callable[[np.ndarray], np.ndarray],
                     sensor_size: tuple[int, int, int], timesteps: int) -> np.ndarray:
    """Events -> bool (T, P*H*W): frames binarised to 'at least one event in this bin'."""
    if len(events) == 0:  # tonic's slicer indexes t[-1]; an empty recording is T empty frames
        return np.zeros((timesteps, int(np.prod(sensor_size))), dtype=bool)
    return frames_to_spikes(transform(events), timesteps)


def frames_to_spikes(frames: np.ndarray, timesteps: int) -> np.ndarray:
    """(T, P, H, W) counts -> bool (T, P*H*W); checks the binning gave T frames."""
    frames = np.asarray(frames)
    if frames.shape[0] != timesteps:
        raise SnncError(f"framing gave {frames.shape[0]} time bins, expected {timesteps}.")
    return frames.reshape(timesteps, -1) > 0


# ---------------------------------------------------------------- synthetic-events

SYNTH_SENSOR = (16, 16, 2)          # tonic order: (W, H, P)
SYNTH_CLASSES = ("right", "left", "down", "up")
SYNTH_SIZES = {"train": 1200, "test": 300}
SYNTH_DURATION_US = 100_000


def synthetic_event_sample(label: int, rng: np.random.Generator) -> np.ndarray:
    """One recording: a bar crossing the sensor in direction ``label``, ON at its leading edge and
    OFF at its trailing edge, plus uniform background noise; sorted by t, tonic's dtype."""
    w, h, _ = SYNTH_SENSOR
    length, width = int(rng.integers(5, h + 1)), int(rng.integers(1, 3))
    row0 = int(rng.integers(0, h - length + 1))
    moves = int(rng.integers(7, 11))
    col0 = int(rng.integers(0, w - width - moves + 1))
    times = (np.arange(moves) + rng.uniform(0.1, 0.9, moves)) * (SYNTH_DURATION_US / moves)
    xs, ys, ts, ps = [], [], [], []
    for k in range(moves):  # canonical 'right' motion: column col0+k vacated, col0+k+width entered
        rows = np.arange(row0, row0 + length)
        for col, pol in ((col0 + k + width, True), (col0 + k, False)):
            fire = rows[rng.random(length) < 0.85]
            xs.append(np.full(len(fire), col))
            ys.append(fire)
            ts.append(times[k] + rng.uniform(0, 3000, len(fire)))
            ps.append(np.full(len(fire), pol))
    n_noise = int(rng.poisson(40))
    xs.append(rng.integers(0, w, n_noise))
    ys.append(rng.integers(0, h, n_noise))
    ts.append(rng.uniform(0, SYNTH_DURATION_US, n_noise))
    ps.append(rng.random(n_noise) < 0.5)
    x, y = np.concatenate(xs), np.concatenate(ys)
    x, y = _orient(x, y, label, w)
    return _structured(x, y, np.concatenate(ts), np.concatenate(ps))


def _orient(x: np.ndarray, y: np.ndarray, label: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Map the canonical rightward motion to direction ``label`` (square sensor)."""
    if label == 1:      # left: mirror x
        return w - 1 - x, y
    if label == 2:      # down: swap axes
        return y, x
    if label == 3:      # up: swap axes and mirror
        return y, w - 1 - x
    return x, y


def _structured(x: np.ndarray, y: np.ndarray, t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Events in tonic's structured dtype, sorted by time."""
    ev = np.empty(len(x), dtype=EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = x, y, np.round(t).astype(np.int64), p
    return ev[np.argsort(ev["t"], kind="stable")]


def synthetic_events(n: int, seed: int, split: str = "train") -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` recordings and balanced labels, a pure function of (seed, split)."""
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    labels = rng.permutation(np.arange(n) % len(SYNTH_CLASSES)).astype(np.int64)
    return [synthetic_event_sample(int(c), rng) for c in labels], labels


def _synthetic(split: str, seed: int, *, timesteps: int, limit: int | None = None, **_: Any) -> Dataset:
    n = SYNTH_SIZES[split] if limit is None else min(limit, SYNTH_SIZES[split])
    recordings, labels = synthetic_events(SYNTH_SIZES[split], seed, split)
    transform = frame_transform(SYNTH_SENSOR, timesteps)
    x = np.stack([events_to_spikes(ev, transform, SYNTH_SENSOR, timesteps) for ev in recordings[:n]])
    return Dataset("synthetic-events", x, labels[:n], len(SYNTH_CLASSES), "events", shape=frame_shape(SYNTH_SENSOR))


# ---------------------------------------------------------------- synthetic-speech (a task that needs memory)

SPEECH_CHANNELS = 700                # SHD's cochlea channels
SPEECH_SYLLABLES = 4
SPEECH_PAIRS = tuple((a, b) for a in range(SPEECH_SYLLABLES) for b in range(SPEECH_SYLLABLES) if a != b)
SPEECH_SIZES = {"train": 1200, "test": 360}
SPEECH_DURATION_US = 1_000_000
SPEECH_SYLLABLE_US = 200_000
SPEECH_ONSETS_US = (60_000, 560_000)   # the two syllables; the silence between is what must be remembered


def _syllable_bands(k: int) -> tuple[np.ndarray, float]:
    """Syllable ``k``'s three formant centres (channels) and sweep (channels over the syllable): fixed
    by the dataset's definition, not by the seed."""
    rng = np.random.default_rng([1234, k])
    return np.sort(rng.choice(np.arange(60, SPEECH_CHANNELS - 60, 20), 3, replace=False)), float(rng.choice([-60, 60]))


def synthetic_speech_sample(label: int, rng: np.random.Generator) -> np.ndarray:
    """One recording in SHD's layout (channel in ``x``, time in us): syllable ``a`` then, after a
    silence, syllable ``b`` of the ordered pair ``SPEECH_PAIRS[label]``; each syllable is three formant
    bands of Poisson spikes sweeping over the cochlea, with jitter in onset, pitch and rate, plus
    background noise on every channel. Both orders of a pair hold the same syllables, so a network
    that forgets the first syllable by the time the second arrives is at best 50% right."""
    xs, ts = [], []
    for onset, k in zip(SPEECH_ONSETS_US, SPEECH_PAIRS[label]):
        centres, sweep = _syllable_bands(k)
        t0 = onset + rng.uniform(-20_000, 20_000)
        shift = rng.normal(0, 8)
        for c in centres:
            rate = rng.uniform(60, 120) / 1e6                       # events per us per channel
            chans = np.arange(int(c) - 12, int(c) + 13)
            n = rng.poisson(rate * SPEECH_SYLLABLE_US, len(chans))
            t = t0 + rng.uniform(0, SPEECH_SYLLABLE_US, n.sum())
            ch = np.repeat(chans, n) + shift + sweep * (t - t0) / SPEECH_SYLLABLE_US
            xs.append(np.round(ch))
            ts.append(t)
    n_noise = int(rng.poisson(2.0 * SPEECH_CHANNELS))                # ~2 Hz per channel
    xs.append(rng.integers(0, SPEECH_CHANNELS, n_noise))
    ts.append(rng.uniform(0, SPEECH_DURATION_US, n_noise))
    xs.append(np.array([0, SPEECH_CHANNELS - 1]))                   # pin the binning to [0, 1 s]
    ts.append(np.array([0.0, SPEECH_DURATION_US - 1.0]))
    x, t = np.concatenate(xs), np.concatenate(ts)
    keep = (x >= 0) & (x < SPEECH_CHANNELS) & (t >= 0) & (t < SPEECH_DURATION_US)
    return _structured(x[keep], np.zeros(keep.sum()), t[keep], np.zeros(keep.sum(), bool))


def _speech(split: str, seed: int, *, timesteps: int, limit: int | None = None, **_: Any) -> Dataset:
    n = SPEECH_SIZES[split] if limit is None else min(limit, SPEECH_SIZES[split])
    rng = np.random.default_rng([seed, 2 if split == "train" else 3])
    labels = rng.permutation(np.arange(SPEECH_SIZES[split]) % len(SPEECH_PAIRS)).astype(np.int64)[:n]
    sensor = (SPEECH_CHANNELS, 1, 1)
    transform = frame_transform(sensor, timesteps)
    x = np.stack([events_to_spikes(synthetic_speech_sample(int(c), rng), transform, sensor, timesteps)
                  for c in labels]) if n else np.zeros((0, timesteps, SPEECH_CHANNELS), bool)
    return Dataset("synthetic-speech", x, labels, len(SPEECH_PAIRS), "events")


# ---------------------------------------------------------------- tonic datasets (files already on disk)

@dataclass(frozen=True)
class TonicSpec:
    """What a tonic dataset class expects under ``DATA_DIR/<tonic class name>/`` and where to get it."""

    cls: str                       # tonic.datasets class; also its folder name (tonic's save_to layout)
    folders: dict[str, str]        # split -> extracted folder holding the sample files
    archives: dict[str, str]       # split -> archive tonic would download and extract
    suffix: str                    # sample file extension
    layout: str                    # human description of the extracted layout
    source: str
    num_classes: int
    own_split: bool = False        # no official train/test split: snnc splits 90/10 per class


TONIC = {
    "nmnist": TonicSpec(
        "NMNIST", {"train": "Train", "test": "Test"}, {"train": "train.zip", "test": "test.zip"}, ".bin",
        "Train/<digit>/<id>.bin and Test/<digit>/<id>.bin (N-MNIST's 40-bit binary event files)",
        "https://data.mendeley.com/datasets/468j46mzdv (train.zip, test.zip)", 10),
    "dvsgesture": TonicSpec(
        "DVSGesture", {"train": "ibmGestureTrain", "test": "ibmGestureTest"},
        {"train": "ibmGestureTrain.tar.gz", "test": "ibmGestureTest.tar.gz"}, ".npy",
        "ibmGestureTrain/userNN_<lighting>/<label>.npy and ibmGestureTest/... (tonic's preprocessed "
        "DVS Gesture: one (N, 4) x,y,p,t[ms] array per gesture)",
        "tonic's preprocessed copy, https://figshare.com/ndownloader/files/38022171 (ibmGestureTrain.tar.gz) "
        "and https://figshare.com/ndownloader/files/38020584 (ibmGestureTest.tar.gz)", 11),
    "cifar10dvs": TonicSpec(
        "CIFAR10DVS", {"train": "", "test": ""}, {"train": "CIFAR10DVS.zip", "test": "CIFAR10DVS.zip"},
        ".aedat4", "airplane/*.aedat4 ... truck/*.aedat4 (one folder per class, AEDAT 4 files)",
        "https://figshare.com/ndownloader/files/38023437 (CIFAR10DVS.zip, tonic's AEDAT4 conversion)", 10,
        own_split=True),
}


def _tonic_sample_files(spec: TonicSpec, root: Path, split: str) -> bool:
    """True if the split's extracted sample files are present."""
    folder = root / spec.folders[split]
    return folder.is_dir() and next(folder.glob(f"**/*{spec.suffix}"), None) is not None


def _ensure_extracted(name: str, spec: TonicSpec, root: Path, split: str) -> None:
    """Extract the archive with tonic's own extractor if only it is there; else say what is missing."""
    if _tonic_sample_files(spec, root, split):
        return
    archive = root / spec.archives[split]
    if archive.is_file():
        from tonic.download_utils import extract_archive

        try:
            extract_archive(str(archive), str(root))
            if spec.cls == "CIFAR10DVS":  # the outer zip holds one zip per class
                for inner in sorted(root.glob("*.zip")):
                    if inner != archive:
                        extract_archive(str(inner), str(root))
        except (OSError, ValueError, RuntimeError, zipfile.BadZipFile, tarfile.TarError) as e:
            raise InputFileError(f"{archive}: could not be extracted ({e}); re-download it.") from None
        if _tonic_sample_files(spec, root, split):
            return
    raise _missing(name, root, f"expected {spec.layout} under {root}/, or the archive "
                   f"{spec.archives[split]} there to extract.", spec.source)


def _tonic_class(spec: TonicSpec) -> type:
    """tonic's dataset class with its download disabled: snnc has already checked the files."""
    try:
        import tonic.datasets
    except ImportError as e:
        raise SnncError(f"dataset '{spec.cls}' is read by tonic, which did not import ({e}); "
                        f"install it with: pip install tonic") from None
    base = getattr(tonic.datasets, spec.cls)

    def refuse(self: Any) -> None:
        raise InputFileError(f"{spec.cls}: files missing under {self.location_on_system}; snnc never downloads.")

    # same class name: tonic derives the folder (save_to/<ClassName>) from it
    return type(spec.cls, (base,), {"_check_exists": lambda self: True, "download": refuse})


def _own_split(targets: Sequence[int], split: str, seed: int) -> np.ndarray:
    """Deterministic stratified 90/10 split (per class, seeded) for datasets without an official one."""
    rng, targets = np.random.default_rng(seed), np.asarray(targets)
    chosen = []
    for c in np.unique(targets):
        idx = rng.permutation(np.flatnonzero(targets == c))
        n_test = int(round(0.1 * len(idx))) if len(idx) >= 10 else min(1, len(idx) - 1)
        chosen.append(idx[:n_test] if split == "test" else idx[n_test:])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def _tonic(name: str, split: str, seed: int, *, timesteps: int, data_dir: Path,
           limit: int | None = None, **_: Any) -> Dataset:
    spec = TONIC[name]
    root = data_dir / spec.cls
    _ensure_extracted(name, spec, root, split)
    cls = _tonic_class(spec)
    kwargs = {} if spec.own_split else {"train": split == "train"}
    if spec.cls == "CIFAR10DVS":
        _require_aedat()
    try:
        ds = cls(save_to=str(data_dir), transform=frame_transform(cls.sensor_size, timesteps), **kwargs)
    except (ValueError, KeyError) as e:  # tonic derives labels from folder/file names
        raise InputFileError(f"{root}: a file or folder name does not follow the layout {spec.layout} "
                             f"({type(e).__name__}: {e}).") from None
    index = _sample_order(ds.targets, split, seed, spec.own_split)[:limit]
    x = np.zeros((len(index), timesteps, int(np.prod(cls.sensor_size))), dtype=bool)
    for row, i in enumerate(index):
        x[row] = _tonic_spikes(ds, int(i), cls.sensor_size, timesteps)
    y = np.asarray([ds.targets[int(i)] for i in index], dtype=np.int64)
    return Dataset(name, x, y, spec.num_classes, "events", shape=frame_shape(cls.sensor_size))


def _sample_order(targets: Sequence[int], split: str, seed: int, own_split: bool) -> np.ndarray:
    """The split's sample indices in a seeded, class-mixed order, so the first n are a fair sample."""
    index = _own_split(targets, split, seed) if own_split else np.arange(len(targets))
    return np.random.default_rng(seed).permutation(index)


def _tonic_spikes(ds: Any, i: int, sensor_size: tuple[int, int, int], timesteps: int) -> np.ndarray:
    """Sample ``i`` through tonic's reader and ToFrame; a corrupt file names itself."""
    try:
        frames, _ = ds[i]
    except IndexError:  # tonic's slicer on an empty recording
        return np.zeros((timesteps, int(np.prod(sensor_size))), dtype=bool)
    except (OSError, ValueError, KeyError) as e:
        raise InputFileError(f"{ds.data[i]}: could not be read as a {ds.__class__.__name__} sample ({e}).") from None
    return frames_to_spikes(frames, timesteps)


def _require_aedat() -> None:
    """tonic reads AEDAT4 with the separate 'aedat' package."""
    try:
        import aedat  # noqa: F401
    except ImportError:
        raise SnncError("cifar10dvs: tonic reads its .aedat4 files with the 'aedat' package, which is not "
                        "installed; install it with: pip install aedat") from None


def _tonic_loader(name: str) -> Callable[..., Dataset]:
    return lambda split, seed, **kw: _tonic(name, split, seed, **kw)


# ---------------------------------------------------------------- Spiking Heidelberg Digits

#: tonic.datasets.SHD: one HDF5 file per split under DATA_DIR/SHD/ (Cramer et al. 2020's own format:
#: spikes/times (s) and spikes/units (channel 0..699) as variable-length arrays per sample, labels,
#: extra/keys, extra/speaker); tonic adds polarity 1 and bins by time (sensor_size (700, 1, 1)).
SHD = TonicSpec("SHD", {"train": "", "test": ""}, {"train": "shd_train.h5.zip", "test": "shd_test.h5.zip"},
                ".h5", "shd_train.h5 and shd_test.h5 (the Spiking Heidelberg Digits' HDF5 files)",
                "https://zenkelab.org/datasets/ (shd_train.h5.zip, shd_test.h5.zip)", 20)
SHD_CHANNELS = 700


def _shd(split: str, seed: int, *, timesteps: int, data_dir: Path, limit: int | None = None,
         **_: Any) -> Dataset:
    """Spiking Heidelberg Digits through tonic's reader and ToFrame: 700 cochlea channels per time bin,
    20 classes (digits 0-9 in English and German), the official train/test split."""
    import h5py

    root = data_dir / SHD.cls
    h5 = root / f"shd_{split}.h5"
    archive = root / SHD.archives[split]
    if not h5.is_file() and archive.is_file():
        from tonic.download_utils import extract_archive

        try:
            extract_archive(str(archive), str(root))
        except (OSError, ValueError, RuntimeError, zipfile.BadZipFile) as e:
            raise InputFileError(f"{archive}: could not be extracted ({e}); re-download it.") from None
    if not h5.is_file():
        raise _missing("shd", root, f"expected {SHD.layout} under {root}/, or the archive {archive.name} there "
                       f"to extract.", SHD.source)
    try:
        with h5py.File(h5, "r") as f:
            labels = np.asarray(f["labels"][()], dtype=np.int64)
            if len(f["spikes/times"]) != len(labels) or len(f["spikes/units"]) != len(labels):
                raise ValueError(f"{len(labels)} labels but {len(f['spikes/times'])} spike trains")
        ds = _tonic_class(SHD)(save_to=str(data_dir), train=split == "train",
                               transform=frame_transform((SHD_CHANNELS, 1, 1), timesteps))
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise InputFileError(f"{h5}: not a readable SHD file ({type(e).__name__}: {e}); expected the groups "
                             f"spikes/times, spikes/units, labels and extra/keys of the Heidelberg files.") from None
    if labels.size and (labels.min() < 0 or labels.max() >= SHD.num_classes):
        raise InputFileError(f"{h5}: labels run from {labels.min()} to {labels.max()}; SHD has "
                             f"{SHD.num_classes} classes (0-19).")
    index = _sample_order(labels, split, seed, False)[:limit]
    x = np.zeros((len(index), timesteps, SHD_CHANNELS), dtype=bool)
    for row, i in enumerate(index):
        try:
            frames, _ = ds[int(i)]
        except IndexError:   # a sample without spikes: tonic's slicer has nothing to bin
            continue
        except (OSError, KeyError, ValueError) as e:
            raise InputFileError(f"{h5}: sample {int(i)} could not be read ({type(e).__name__}: {e}).") from None
        x[row] = frames_to_spikes(frames, timesteps)
    return Dataset("shd", x, labels[index], SHD.num_classes, "events")


DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": _digits, "mnist": _mnist, "synthetic-events": _synthetic, "synthetic-speech": _speech,
    **{name: _tonic_loader(name) for name in TONIC}, "shd": _shd,
}


def load_dataset(name: str, split: str = "train", seed: int = 0, *, timesteps: int | None = None,
                 data_dir: str | Path | None = None, limit: int | None = None) -> Dataset:
    """Load ``split`` ('train' or 'test') of dataset ``name``.

    ``seed`` fixes the split where the dataset has none of its own (and the order of event test
    samples); ``timesteps`` is the number of time bins of event datasets (rate-coded ones ignore it);
    ``data_dir`` overrides $SNNC_DATA_DIR; ``limit`` reads only the first samples of the split.
    """
    if name not in DATASETS:
        raise SnncError(f"unknown dataset '{name}'. Supported: {', '.join(sorted(DATASETS))}.")
    if split not in ("train", "test"):
        raise SnncError(f"unknown split '{split}': use 'train' or 'test'.")
    t = int(timesteps or DEFAULT_TIMESTEPS)
    if t < 1:
        raise SnncError(f"timesteps must be at least 1, got {t}.")
    return DATASETS[name](split, seed, timesteps=t, data_dir=resolve_data_dir(data_dir), limit=limit)


def is_event_dataset(name: str | None) -> bool:
    """Whether built-in dataset ``name`` brings its own spikes (event frames) rather than static values."""
    return name in ("synthetic-events", "synthetic-speech", "shd") or name in TONIC


# ---------------------------------------------------------------- your own data: one .npz or torch file

#: The ``dataset`` a checkpoint or manifest records for data given as ``--data FILE``.
DATA_FILE_DATASET = "file"
#: How ``x`` is read: static samples coded per the model's encoding, or event frames that already are spikes.
LAYOUTS = ("static", "frames")
#: The entries of a data file snnc reads; anything else in the file is ignored.
DATA_KEYS = ("x", "y", "x_test", "y_test", "layout")
#: Splits of a data file: 'train' and 'test' as snn-train uses them (x/y and x_test/y_test, or without
#: x_test a seeded 10% of each class of x held out as 'test'); 'eval' = x_test/y_test when the file has
#: them, else every sample of x/y (what snn-compile / snn-run --data FILE run).
FILE_SPLITS = ("train", "test", "eval")
#: The most classes a label file may imply (y.max() + 1): the output layer has one neuron per class.
MAX_CLASSES = 1 << 16
DATA_FORMAT = ("an .npz (numpy.savez) with arrays x (samples) and y (integer labels), optionally x_test/y_test "
               "and layout, or a torch file holding the dict {'x': tensor, 'y': tensor, ...} (docs/datasets.md, "
               "'Your own data')")
HOLD_OUT = "10% of each class"


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (recorded beside ``data_file`` so a changed file is noticed)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_data_arrays(path: str | Path) -> dict[str, Any]:
    """The entries of a data file (:data:`DATA_KEYS` present in it) as numpy arrays, and ``layout`` as a
    string; nothing validated beyond the container. Recognised by content: a zip holding ``data.pkl`` is a
    torch file (read with ``torch.load(weights_only=True)``: no code from the file runs), another zip an
    .npz (``np.load(allow_pickle=False)``), a pickle stream a legacy torch file; anything else is refused."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such data file; --data takes {DATA_FORMAT}.")
    if path.is_dir():
        raise InputFileError(f"{path}: is a directory, not a data file; --data takes {DATA_FORMAT}.")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise InputFileError(f"{path}: cannot be read ({e.strerror or e}).") from None
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise InputFileError(f"{path}: a damaged zip archive ({e}), neither a readable .npz nor a torch file; "
                                 f"--data takes {DATA_FORMAT}.") from None
        torch_file = any(n == "data.pkl" or n.endswith("/data.pkl") for n in names)
        return _read_torch_data(path) if torch_file else _read_npz_data(path, names)
    if head[:1] == b"\x80":      # a pickle stream: torch.save(..., _use_new_zipfile_serialization=False)
        return _read_torch_data(path)
    raise InputFileError(f"{path}: neither an .npz archive nor a torch file (it starts with {head!r}); "
                         f"--data takes {DATA_FORMAT}.")


def _read_npz_data(path: Path, names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            for key in DATA_KEYS:
                if key not in z.files:
                    continue
                try:
                    out[key] = z[key]
                except ValueError:     # an object array: only numpy's pickle could read it
                    raise InputFileError(f"{path}: array '{key}' holds Python objects, which only unpickling "
                                         f"could read (snnc never unpickles data); save numeric arrays, e.g. "
                                         f"np.savez(path, x=np.asarray(x, np.float32), y=np.asarray(y, np.int64)).") from None
            found = list(z.files)
    except InputFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise InputFileError(f"{path}: a zip archive that is not a readable .npz ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:120] if str(e) else 'unreadable'}); --data takes "
                             f"{DATA_FORMAT}.") from None
    out["_found"] = found
    if "layout" in out:
        out["layout"] = _layout_text(path, out["layout"])
    return out


def _read_torch_data(path: Path) -> dict[str, Any]:
    import torch

    import pickle

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InputFileError(f"{path}: holds pickled Python objects beyond tensors and plain data; loading it would "
                             f"run code stored in the file, so snnc refuses. Save a dict of tensors: "
                             f"torch.save({{'x': x, 'y': y}}, path).") from None
    except Exception as e:  # the weights-only reader runs no file code: any error means a damaged file
        raise InputFileError(f"{path}: not a readable torch file ({type(e).__name__}); --data takes "
                             f"{DATA_FORMAT}.") from None
    if not isinstance(obj, dict):
        raise InputFileError(f"{path}: a torch file holding a {type(obj).__name__}, not a dict; save "
                             f"torch.save({{'x': x, 'y': y}}, path) (docs/datasets.md, 'Your own data').")
    if obj.get("format") == "snnc.checkpoint":
        raise InputFileError(f"{path}: is an snnc model checkpoint, not a data file; --data takes {DATA_FORMAT}. "
                             f"Models go to snn-compile.")
    out: dict[str, Any] = {"_found": [str(k)[:40] for k in obj]}
    for key in DATA_KEYS:
        if key not in obj:
            continue
        value = obj[key]
        if key == "layout":
            out[key] = _layout_text(path, value)
        elif isinstance(value, torch.Tensor):
            t = value.detach().cpu()
            if t.dtype in (torch.float16, torch.bfloat16):
                t = t.to(torch.float32)
            out[key] = t.numpy()
        else:
            raise InputFileError(f"{path}: '{key}' is a {type(value).__name__}, not a tensor; store "
                                 f"torch.as_tensor({key}) in the dict.")
    return out


def _layout_text(path: Path, value: Any) -> str:
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "US":
        value = str(value[()])
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if not isinstance(value, str) or value not in LAYOUTS:
        raise InputFileError(f"{path}: 'layout' is {str(value)[:40]!r}; it must be one of {', '.join(LAYOUTS)} "
                             f"(or left out: see docs/datasets.md, 'Your own data').")
    return value


def _shape_text(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(d)) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def infer_layout(x_shape: Sequence[int], layout: str | None = None, input_size: int | None = None) -> str:
    """'static' or 'frames' for samples of ``x_shape`` (N first). In this order: ``layout`` when given
    (``--data-layout``, or the file's ``layout`` entry); else, with a network (``input_size`` = the values
    it takes per step), the reading whose per-sample size it takes; else the number of dimensions:
    (N, F) and (N, C, H, W) are static, (N, T, F) and (N, T, C, H, W) frames."""
    if layout is not None:
        return layout
    ndim = len(x_shape)
    default = "static" if ndim in (2, 4) else "frames"
    if input_size is not None and ndim in (3, 4):
        size = {"static": math.prod(x_shape[1:]), "frames": math.prod(x_shape[2:])}
        other = "frames" if default == "static" else "static"
        if size[default] != input_size and size[other] == input_size:
            return other
    return default


def dataset_from_arrays(x: Any, y: Any, *, layout: str | None = None, name: str = "arrays", key: str = "x",
                        input_size: int | None = None, network: str | None = None, timesteps: int | None = None,
                        timesteps_from: str = "--timesteps", num_classes: int | None = None) -> Dataset:
    """A :class:`Dataset` from samples ``x`` and integer labels ``y`` (numpy arrays or tensors), checked
    value by value; errors are one line naming ``name`` (the file) and ``key`` (which array).

    ``x`` is static samples (N, F) or (N, C, H, W) with values in [0, 1] (encoding 'rate': coded per
    the model's input code by :func:`batch_spikes`, like digits and mnist) or event frames (N, T, F) or
    (N, T, C, H, W) of non-negative spike counts or booleans (encoding 'events', binarised to
    'at least one spike', like the event datasets). ``layout`` ('static' | 'frames', default
    :func:`infer_layout`) says which; (N, H, W) static and (N, T, H, W) frames need it said and get C = 1.
    ``input_size`` (values per step the network takes, named ``network`` in errors) must match a
    sample; ``timesteps`` (from ``timesteps_from``) must match the frames' T. ``num_classes``
    defaults to ``y.max() + 1``.
    """
    if layout is not None and layout not in LAYOUTS:
        raise SnncError(f"--data-layout {layout}: must be one of {', '.join(LAYOUTS)}.")
    x, labels = _check_pair(x, y, name, key)
    n = int(x.shape[0])
    if x.dtype.kind not in "biuf":
        raise InputFileError(f"{name}: {key} has dtype {x.dtype}; samples must be numbers (float in [0, 1] for "
                             f"static samples, integer or bool spike counts for frames).")
    lay = infer_layout(x.shape, layout, input_size)
    if lay == "static":
        if x.ndim == 5:
            raise InputFileError(f"{name}: {key} has shape {_shape_text(x.shape)}, 5 dimensions: event frames "
                                 f"(N, T, C, H, W), not static samples; drop the 'static' layout.")
        per_sample = tuple(int(d) for d in x.shape[1:])
        shape = per_sample if len(per_sample) == 3 else (1, *per_sample) if len(per_sample) == 2 else None
        values = _static_values(x, name, key)
        features = math.prod(per_sample)
        flat = values.reshape(n, features)
        t_bins = None
    else:
        if x.ndim == 2:
            raise InputFileError(f"{name}: {key} has shape {_shape_text(x.shape)}: (N, F) is static samples, "
                                 f"frames need a time axis (N, T, F); drop the 'frames' layout.")
        per_sample = tuple(int(d) for d in x.shape[2:])
        shape = per_sample if len(per_sample) == 3 else (1, *per_sample) if len(per_sample) == 2 else None
        t_bins = int(x.shape[1])
        if not 1 <= t_bins <= MAX_TIMESTEPS:
            raise InputFileError(f"{name}: {key} holds frames of {t_bins} time bins; expected 1 to {MAX_TIMESTEPS}.")
        features = math.prod(per_sample)
        flat = _frame_spikes(x, name, key).reshape(n, t_bins, features)
    if features == 0:
        raise InputFileError(f"{name}: {key} has shape {_shape_text(x.shape)}: samples of zero values.")
    if input_size is not None and features != input_size:
        what = "samples" if lay == "static" else "frames (per time bin)"
        raise InputFileError(f"{name}: {key} has {what} of shape {_shape_text(per_sample)} ({features} values) "
                             f"but the network in {network or 'the model'} takes {input_size} inputs; give "
                             f"{input_size} values per {'sample' if lay == 'static' else 'time bin'}.")
    if t_bins is not None:
        why = sample_size_problem(t_bins, features)
        if why:
            raise InputFileError(f"{name}: {key}: {why}.")
        if timesteps is not None and timesteps != t_bins:
            raise InputFileError(f"{name}: {key} holds frames of {t_bins} time bins but {timesteps} timesteps were "
                                 f"asked for ({timesteps_from}); frames bring their own T: use {t_bins} timesteps.")
    classes = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    encoding = "rate" if lay == "static" else "events"
    return Dataset(name, flat, labels, classes, encoding, shape=shape)


def _as_array(a: Any, name: str, key: str) -> np.ndarray:
    import torch

    if isinstance(a, torch.Tensor):
        t = a.detach().cpu()
        return (t.to(torch.float32) if t.dtype in (torch.float16, torch.bfloat16) else t).numpy()
    if not isinstance(a, np.ndarray):
        raise InputFileError(f"{name}: '{key}' is a {type(a).__name__}, not an array.")
    return a


def _check_pair(x: Any, y: Any, name: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Samples ``key`` and their labels (``y``/``y_test``): a shape snnc reads, at least one sample, and
    one non-negative integer label per sample (labels as int64)."""
    ykey = "y" + key[1:]
    x, y = _as_array(x, name, key), _as_array(y, name, ykey)
    if x.ndim < 2 or x.ndim > 5:
        raise InputFileError(f"{name}: {key} has shape {_shape_text(x.shape)}; expected static samples (N, F) or "
                             f"(N, C, H, W), or event frames (N, T, F) or (N, T, C, H, W).")
    if x.shape[0] == 0:
        raise InputFileError(f"{name}: {key} holds zero samples; give at least one.")
    return x, _labels(y, int(x.shape[0]), name, key, ykey)


def _labels(y: np.ndarray, n: int, name: str, key: str, ykey: str) -> np.ndarray:
    """y as int64 (n,): integers, none negative, one per sample."""
    if y.dtype.kind not in "iu":
        raise InputFileError(f"{name}: {ykey} has dtype {y.dtype}; labels must be integers (class indices "
                             f"0, 1, 2, ...), e.g. {ykey}.astype(np.int64).")
    if y.ndim != 1:
        raise InputFileError(f"{name}: {ykey} has shape {_shape_text(y.shape)}; labels must be one integer per "
                             f"sample, shape ({n},).")
    if len(y) != n:
        raise InputFileError(f"{name}: {key} holds {n} samples but {ykey} holds {len(y)} labels; give one label "
                             f"per sample.")
    if y.dtype.kind == "i" and (y < 0).any():
        raise InputFileError(f"{name}: {ykey} holds the negative label {int(y.min())}; labels are class indices "
                             f"0, 1, 2, ...")
    if int(y.max()) >= MAX_CLASSES:
        raise InputFileError(f"{name}: {ykey} holds the label {int(y.max())}, which would need {int(y.max()) + 1} "
                             f"output classes (at most {MAX_CLASSES}); labels are class indices 0, 1, 2, ...")
    return y.astype(np.int64)


def _static_values(x: np.ndarray, name: str, key: str) -> np.ndarray:
    """Static samples as float32, checked finite and within [0, 1]."""
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = "NaN" if np.isnan(x).any() else "infinite values"
        raise InputFileError(f"{name}: {key} holds {bad}; static samples must be numbers in [0, 1].")
    if x.dtype.kind == "b":
        return x.astype(np.float32)
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        hint = " (8-bit images: divide by 255)" if hi <= 255 and lo >= 0 else ""
        raise InputFileError(f"{name}: {key} holds values in [{lo:g}, {hi:g}]; static samples must lie in [0, 1] "
                             f"(they are spike probabilities or intensities){hint}. Event frames have a time axis: "
                             f"(N, T, F) or (N, T, C, H, W).")
    return x.astype(np.float32)


def _frame_spikes(x: np.ndarray, name: str, key: str) -> np.ndarray:
    """Event frames (counts or booleans) binarised to 'at least one spike in this bin'."""
    if x.dtype.kind == "b":
        return x
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            bad = "NaN" if np.isnan(x).any() else "infinite values"
            raise InputFileError(f"{name}: {key} holds {bad}; event frames must be spike counts or booleans.")
        if (x != np.round(x)).any():
            raise InputFileError(
                f"{name}: {key} ({_shape_text(x.shape)}, read as event frames) holds fractional values; frames are "
                f"spike counts or booleans. If these are static samples, give them as (N, F) or (N, C, H, W), or "
                f"say so with --data-layout static or a 'layout' entry 'static' in the file.")
    if (x < 0).any():
        raise InputFileError(f"{name}: {key} holds the negative value {x.min()!r}; event frames are spike counts "
                             f"(>= 0) or booleans.")
    return x > 0


def load_data_file(path: str | Path, split: str = "eval", *, seed: int = 0, layout: str | None = None,
                   input_size: int | None = None, network: str | None = None, timesteps: int | None = None,
                   timesteps_from: str = "--timesteps", limit: int | None = None,
                   sha256: str | None = None) -> Dataset:
    """``split`` of a data file (``--data FILE``) as a :class:`Dataset`, every value checked.

    The file is an .npz or a torch dict (:func:`read_data_arrays`) with ``x`` and ``y``, optionally
    ``x_test``/``y_test`` and ``layout``. ``split``: 'train' / 'test' as snn-train uses them (x and
    x_test; without x_test, :data:`HOLD_OUT` of x, seeded by ``seed``, is the test part), or 'eval'
    (x_test if present, else all of x). ``layout`` overrides the file's; ``input_size``, ``network``,
    ``timesteps`` are checked as :func:`dataset_from_arrays` does. ``limit`` keeps the first samples;
    ``sha256``, when given, must be the file's (the file a model was trained on has not changed).
    Classes are ``max(y, y_test) + 1`` over the whole file, so every split agrees.
    """
    path = Path(path)
    if split not in FILE_SPLITS:
        raise SnncError(f"unknown split '{split}' of a data file: use one of {', '.join(FILE_SPLITS)}.")
    if layout is not None and layout not in LAYOUTS:
        raise SnncError(f"--data-layout {layout}: must be one of {', '.join(LAYOUTS)}.")
    arrays = read_data_arrays(path)
    if sha256 is not None:
        got = file_sha256(path)
        if got != sha256:
            raise InputFileError(f"{path}: changed since the model was trained on it (sha256 {got[:12]}..., recorded "
                                 f"{sha256[:12]}...), so its test part may differ; pass --data {path} to run on the "
                                 f"file as it is now, or retrain.")
    found = arrays.pop("_found", [])
    for k in ("x", "y"):
        if k not in arrays:
            raise InputFileError(f"{path}: no entry '{k}' (found: {', '.join(map(str, found[:8])) or 'nothing'}); "
                                 f"--data takes {DATA_FORMAT}.")
    if ("x_test" in arrays) != ("y_test" in arrays):
        have, miss = ("x_test", "y_test") if "x_test" in arrays else ("y_test", "x_test")
        raise InputFileError(f"{path}: has '{have}' but no '{miss}'; give both for a separate test split, or neither.")
    lay = layout or arrays.get("layout")
    name = str(path)
    x, y = _check_pair(arrays["x"], arrays["y"], name, "x")
    key = "x"
    labels = [y]
    if "x_test" in arrays:
        xt, yt = _check_pair(arrays["x_test"], arrays["y_test"], name, "x_test")
        labels.append(yt)
        if tuple(xt.shape[1:]) != tuple(x.shape[1:]):
            raise InputFileError(f"{path}: x_test has samples of shape {_shape_text(xt.shape[1:])} but x has "
                                 f"{_shape_text(x.shape[1:])}; both splits need the same sample shape.")
        if split in ("test", "eval"):
            x, y, key = xt, yt, "x_test"
    elif split in ("train", "test"):
        if len(_own_split(y, "test", seed)) == 0 or len(_own_split(y, "train", seed)) == 0:
            raise InputFileError(f"{path}: {len(y)} sample(s) are too few to hold out {HOLD_OUT} for testing "
                                 f"(a class needs 2 samples to lend one); add samples, or give x_test and y_test.")
        part = _own_split(y, split, seed)
        x, y = x[part], y[part]
    num_classes = max(int(a.max()) for a in labels) + 1   # over the whole file: every split agrees
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return dataset_from_arrays(x, y, layout=lay, name=name, key=key, input_size=input_size, network=network,
                               timesteps=timesteps, timesteps_from=timesteps_from, num_classes=num_classes)


def load_data_file_splits(path: str | Path, *, seed: int = 0, layout: str | None = None,
                          timesteps: int | None = None) -> tuple[Dataset, Dataset, str]:
    """snn-train's (train, test) from a data file, and one line saying where the test samples came from."""
    train = load_data_file(path, "train", seed=seed, layout=layout, timesteps=timesteps)
    test = load_data_file(path, "test", seed=seed, layout=layout, timesteps=timesteps)
    arrays_have_test = "x_test" in read_data_arrays(path)
    kind = (f"static samples {train.input_shape} in [0, 1]" if train.encoding == "rate" else
            f"event frames of {train.timesteps} time bins x {train.input_shape}, binarised")
    where = ("the file's x_test/y_test" if arrays_have_test else
             f"held out from x/y: {HOLD_OUT}, chosen with --seed {seed}")
    about = (f"data {path}: {kind}, {train.num_classes} classes; {len(train.y)} training samples, "
             f"{len(test.y)} test samples ({where})")
    return train, test, about
