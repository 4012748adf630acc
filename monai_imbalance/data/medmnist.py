"""MedMNIST ``npz`` files (and MedMNIST-like files with patient ids) as datalists, with a checked download.

File format (MedMNIST v2/v3, Yang et al. 2023): ``{split}_images`` ``(N, H, W)`` or ``(N, H, W, 3)`` uint8 and
``{split}_labels`` ``(N, 1)`` for ``split`` in ``train``, ``val``, ``test``. The 28 px file of a flag is
``{flag}.npz``; the larger MedMNIST+ variants are ``{flag}_{size}.npz`` with ``size`` in 64, 128, 224
(3-D flags: 64 only).

MedMNIST-like files may add per-item arrays ``{split}_patient_ids``, ``{split}_visit_ids``,
``{split}_sides``, ``{split}_views`` and ``{split}_ids``; they become the item keys ``patient_id``,
``visit_id``, ``side``, ``view`` and ``id``. With both patient ids and sides (the knee KL file
``knee_kl_64_trainval.npz``) an item also gets ``knee_id = patient_id + side``; ``patient_id`` stays the
grouping key for patient-level splits.

Items: ``{"image": ndarray (H, W[, 3]) uint8, "label": int, "id": "<flag>_<split>_<index>", ...}``; the
image arrays are views into the loaded file, read by
:class:`~monai_imbalance.transforms.LoadImageOrArrayd` like any image file.

Download: with ``download=True`` and no local file, the official file is fetched from the MedMNIST Zenodo
record with MONAI's :func:`monai.apps.download_url` and its MD5 checked against the table of MedMNIST's
``info.py`` (v3.0.2). Local files are never checked (copies may legitimately differ, e.g. re-encoded ones).

Bundle call::

    datalists = load_datalists("medmnist", dataset_dir=os.environ.get("DATA_DIR"), flag="dermamnist", size=28,
                               download=True)
    transform = Compose([LoadImageOrArrayd(keys="image"), ScaleIntensityByTyped(keys="image"),
                         Resized(keys="image", spatial_size=(64, 64))])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_imbalance.data.check import label_value_problem, non_finite_items, raise_problems
from monai_imbalance.data.datalist import Datalists, resolve_dataset_dir, validate_datalist
from monai_imbalance.data.formats import register_format
from monai_imbalance.errors import DataDownloadError

__all__ = [
    "MEDMNIST_BASE_URL",
    "MEDMNIST_CLASS_NAMES",
    "MEDMNIST_MD5",
    "MEDMNIST_TASKS",
    "download_medmnist",
    "load_medmnist_datalists",
    "medmnist_filename",
    "medmnist_url",
    "resolve_medmnist_file",
]

#: Zenodo record of MedMNIST v3 (MedMNIST+), the download location of MedMNIST's own ``info.py``.
MEDMNIST_BASE_URL = "https://zenodo.org/records/10519652/files"

#: MD5 of the official files, ``{flag: {size: md5}}`` (MedMNIST ``info.py`` v3.0.2).
MEDMNIST_MD5: dict[str, dict[int, str]] = {
    "pathmnist": {
        28: "a8b06965200029087d5bd730944a56c1",
        64: "55aa9c1e0525abe5a6b9d8343a507616",
        128: "ac42d08fb904d92c244187169d1fd1d9",
        224: "2c51a510bcdc9cf8ddb2af93af1eadec",
    },
    "chestmnist": {
        28: "02c8a6516a18b556561a56cbdd36c4a8",
        64: "9de6cd0b934ebb5b7426cfba5efbae16",
        128: "db107e5590b27930b62dbaf558aebee3",
        224: "45bd33e6f06c3e8cdb481c74a89152aa",
    },
    "dermamnist": {
        28: "0744692d530f8e62ec473284d019b0c7",
        64: "b70a2f5635c6199aeaa28c31d7202e1f",
        128: "2defd784463fa5243564e855ed717de1",
        224: "8974907d8e169bef5f5b96bc506ae45d",
    },
    "octmnist": {
        28: "c68d92d5b585d8d81f7112f81e2d0842",
        64: "e229e9440236b774d9f0dfef9d07bdaf",
        128: "0a97e76651ace45c5d943ee3f65b63ae",
        224: "abc493b6d529d5de7569faaef2773ba3",
    },
    "pneumoniamnist": {
        28: "28209eda62fecd6e6a2d98b1501bb15f",
        64: "8f4eceb4ccffa70c672198ea285246c6",
        128: "05b46931834c231683c68f40c47b2971",
        224: "d6a3c71de1b945ea11211b03746c1fe1",
    },
    "retinamnist": {
        28: "bd4c0672f1bba3e3a89f0e4e876791e4",
        64: "afda852cc34dcda56f86ad2b2457dbcc",
        128: "e48e916a24454daf90583d4e6efb1a18",
        224: "eae7e3b6f3fcbda4ae613ebdcbe35348",
    },
    "breastmnist": {
        28: "750601b1f35ba3300ea97c75c52ff8f6",
        64: "742edef2a1fd1524b2efff4bd7ba9364",
        128: "363e4b3f8d712e9b5de15470a2aaadf1",
        224: "b56378a6eefa9fed602bb16d192d4c8b",
    },
    "bloodmnist": {
        28: "7053d0359d879ad8a5505303e11de1dc",
        64: "2b94928a2ae4916078ca51e05b6b800b",
        128: "adace1e0ed228fccda1f39692059dd4c",
        224: "b718ff6835fcbdb22ba9eacccd7b2601",
    },
    "tissuemnist": {
        28: "ebe78ee8b05294063de985d821c1c34b",
        64: "123ece2eba09d0aa5d698fda57103344",
        128: "61b955355d7425a89687b06cca3ce0c2",
        224: "b077128c4a949f0a4eb01517f9037b9c",
    },
    "organamnist": {
        28: "68e3f8846a6bd62f0c9bf841c0d9eacc",
        64: "2dcccc29b88e6da5a01161ef20cda288",
        128: "eeae80d0a227a8d099027e1b3cfd3b60",
        224: "50747347e05c87dd3aaf92c49f9f3170",
    },
    "organcmnist": {
        28: "b9ceb9546e10131b32923c5bbeaea2b1",
        64: "3ce34a8724ea6f548e6db4744d03b6a9",
        128: "773c1f009daa3fe5d9a2a201b2a7ed94",
        224: "050f5e875dc056f6768abf94ec9995d1",
    },
    "organsmnist": {
        28: "9ab87b696fb54e2a387ebe992d6ed5f1",
        64: "53a6d115339d874c25e309a994ff46d3",
        128: "ded0c5fa01a95dc4978b956f613e9b8e",
        224: "b354719e553fbbb2513d5533f52a4cb1",
    },
    "organmnist3d": {28: "a0c5a1ff56af4f155c46d46fbb45a2fe", 64: "58a2205adf14a9d0a189cb06dc78bf10"},
    "nodulemnist3d": {28: "8755a7e9e05a4d9ce80a24c3e7a256f3", 64: "c47c5b7d457bf6332200d2ea6d64ecd8"},
    "adrenalmnist3d": {28: "bbd3c5a5576322bc4cdfea780653b1ce", 64: "17721accfe9fb005146a47d33bc54b2f"},
    "fracturemnist3d": {28: "6aa7b0143a6b42da40027a9dda61302f", 64: "f01d7e6316aedf4210da0da5b7437b42"},
    "vesselmnist3d": {28: "b41fd4f7e7e2feedddb201585ecafa1b", 64: "6bb274a8846e1097066dcd64e2c4520f"},
    "synapsemnist3d": {28: "1235b78a3cd6280881dd7850a78eadb6", 64: "43bd14ebf3af9d3dd072446fedc14d5e"},
}

_ORGANS = ["bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver"]
_ORGANS += ["lung-left", "lung-right", "pancreas", "spleen"]

#: Class names (index = label) of MedMNIST's ``info.py``.
MEDMNIST_CLASS_NAMES: dict[str, list[str]] = {
    "pathmnist": [
        "adipose",
        "background",
        "debris",
        "lymphocytes",
        "mucus",
        "smooth muscle",
        "normal colon mucosa",
        "cancer-associated stroma",
        "colorectal adenocarcinoma epithelium",
    ],
    "chestmnist": [
        "atelectasis",
        "cardiomegaly",
        "effusion",
        "infiltration",
        "mass",
        "nodule",
        "pneumonia",
        "pneumothorax",
        "consolidation",
        "edema",
        "emphysema",
        "fibrosis",
        "pleural",
        "hernia",
    ],
    "dermamnist": [
        "actinic keratoses and intraepithelial carcinoma",
        "basal cell carcinoma",
        "benign keratosis-like lesions",
        "dermatofibroma",
        "melanoma",
        "melanocytic nevi",
        "vascular lesions",
    ],
    "octmnist": ["choroidal neovascularization", "diabetic macular edema", "drusen", "normal"],
    "pneumoniamnist": ["normal", "pneumonia"],
    "retinamnist": ["0", "1", "2", "3", "4"],
    "breastmnist": ["malignant", "normal, benign"],
    "bloodmnist": [
        "basophil",
        "eosinophil",
        "erythroblast",
        "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)",
        "lymphocyte",
        "monocyte",
        "neutrophil",
        "platelet",
    ],
    "tissuemnist": [
        "Collecting Duct, Connecting Tubule",
        "Distal Convoluted Tubule",
        "Glomerular endothelial cells",
        "Interstitial endothelial cells",
        "Leukocytes",
        "Podocytes",
        "Proximal Tubule Segments",
        "Thick Ascending Limb",
    ],
    "organamnist": list(_ORGANS),
    "organcmnist": list(_ORGANS),
    "organsmnist": list(_ORGANS),
    "organmnist3d": [
        "liver",
        "kidney-right",
        "kidney-left",
        "femur-right",
        "femur-left",
        "bladder",
        "heart",
        "lung-right",
        "lung-left",
        "spleen",
        "pancreas",
    ],
    "nodulemnist3d": ["benign", "malignant"],
    "adrenalmnist3d": ["normal", "hyperplasia"],
    "fracturemnist3d": ["buckle rib fracture", "nondisplaced rib fracture", "displaced rib fracture"],
    "vesselmnist3d": ["vessel", "aneurysm"],
    "synapsemnist3d": ["inhibitory synapse", "excitatory synapse"],
}

#: Task type of each flag (MedMNIST ``info.py``); multi-label flags cannot become single-label datalists.
MEDMNIST_TASKS: dict[str, str] = dict.fromkeys(MEDMNIST_MD5, "multi-class")
MEDMNIST_TASKS.update(
    {
        "chestmnist": "multi-label, binary-class",
        "pneumoniamnist": "binary-class",
        "breastmnist": "binary-class",
        "retinamnist": "ordinal-regression",
        "nodulemnist3d": "binary-class",
        "adrenalmnist3d": "binary-class",
        "vesselmnist3d": "binary-class",
        "synapsemnist3d": "binary-class",
    }
)

_SPLITS = ("train", "val", "test")
#: npz per-item arrays (``{split}_<name>``) and the item key each becomes.
_ITEM_ARRAYS = {"patient_ids": "patient_id", "visit_ids": "visit_id", "sides": "side", "views": "view", "ids": "id"}


def _check_flag_size(flag: str, size: int) -> None:
    if flag not in MEDMNIST_MD5:
        raise ValueError(f"unknown MedMNIST flag {flag!r}; known flags: {sorted(MEDMNIST_MD5)}.")
    if size not in MEDMNIST_MD5[flag]:
        raise ValueError(f"MedMNIST {flag} has no size {size}; available sizes: {sorted(MEDMNIST_MD5[flag])}.")


def medmnist_filename(flag: str, size: int = 28) -> str:
    """File name of a MedMNIST flag and size: ``{flag}.npz`` for 28 px, else ``{flag}_{size}.npz``."""
    return f"{flag}.npz" if int(size) == 28 else f"{flag}_{int(size)}.npz"


def medmnist_url(flag: str, size: int = 28) -> str:
    """Official download URL of a MedMNIST file (Zenodo record of MedMNIST v3)."""
    _check_flag_size(flag, int(size))
    return f"{MEDMNIST_BASE_URL}/{medmnist_filename(flag, size)}?download=1"


def _how_to_provide(flag: str | None, size: int, where: Path | None) -> str:
    name = medmnist_filename(flag, size) if flag else "<flag>.npz"
    return (
        f"Provide a local copy of {name}: pass its path (dataset_dir=/path/to/{name}), or a directory holding "
        f"it (dataset_dir=/path/to/dir, or set the DATA_DIR environment variable to that directory)"
        + (f", or call with download=True to fetch it into {where}" if where is not None else "")
        + "."
    )


def download_medmnist(flag: str, size: int = 28, directory: str | os.PathLike = ".", progress: bool = False) -> Path:
    """Download the official ``{flag}[_{size}].npz`` into ``directory`` with MONAI and check its MD5.

    An existing file is returned unchecked. Returns the file path.

    Raises:
        ConnectionError: the download failed (offline, server error); the message says how to provide a copy.
        RuntimeError: the downloaded file's MD5 differs from the official one (the file is not kept).
    """
    from monai.apps import download_url

    _check_flag_size(flag, int(size))
    target = Path(directory) / medmnist_filename(flag, size)
    if target.is_file():
        return target
    url, md5 = medmnist_url(flag, size), MEDMNIST_MD5[flag][int(size)]
    try:
        download_url(url, filepath=target, hash_val=md5, hash_type="md5", progress=progress)
    except Exception as e:
        if "hash check" in str(e).lower():
            raise RuntimeError(f"downloaded {url} but its md5 is not the official {md5}: {e}") from e
        raise DataDownloadError(
            f"could not download MedMNIST {flag} ({size} px) from {url}: {type(e).__name__}: {e}. "
            + _how_to_provide(flag, size, None)
        ) from e
    if not target.is_file():
        raise DataDownloadError(f"download of {url} to {target} failed. " + _how_to_provide(flag, size, None))
    return target


def resolve_medmnist_file(
    dataset_dir: str | os.PathLike | None = None,
    flag: str | None = None,
    size: int = 28,
    download: bool = False,
    progress: bool = False,
) -> Path:
    """Find (or download) a MedMNIST file.

    ``dataset_dir`` (``None``: the ``DATA_DIR`` environment variable) may be the ``.npz`` file itself or a
    directory holding :func:`medmnist_filename` ``(flag, size)``; with ``download=True`` a missing file is
    downloaded into that directory (``~/.medmnist`` when neither is set).

    Raises:
        FileNotFoundError: no local file and ``download=False``; the message says how to provide one.
        ValueError: a directory without ``flag``, or an unknown flag/size when downloading.
    """
    if (dataset_dir is None or str(dataset_dir) == "") and not os.environ.get("DATA_DIR"):
        if not download:
            raise FileNotFoundError("no MedMNIST location given. " + _how_to_provide(flag, size, None))
        dataset_dir = Path("~/.medmnist").expanduser()
    path = resolve_dataset_dir(dataset_dir, "MedMNIST")
    if path.suffix.lower() == ".npz" or path.is_file():
        if path.is_file():
            return path
        raise FileNotFoundError(f"MedMNIST file not found: {path}. " + _how_to_provide(flag, size, None))
    if not flag:
        raise ValueError(f"{path} is a directory: pass flag=... (e.g. 'dermamnist') to choose the file in it.")
    candidate = path / medmnist_filename(flag, size)
    if candidate.is_file():
        return candidate
    if download:
        return download_medmnist(flag, size, path, progress=progress)
    raise FileNotFoundError(f"MedMNIST file not found: {candidate}. " + _how_to_provide(flag, size, path))


@register_format("medmnist")
def load_medmnist_datalists(
    dataset_dir: str | os.PathLike | None = None,
    flag: str | None = None,
    size: int = 28,
    download: bool = False,
    splits: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    progress: bool = False,
    warn: bool = True,
) -> Datalists:
    """Read a MedMNIST(-like) ``npz`` as ``{split: items}`` (see the module docstring).

    Args:
        dataset_dir: the ``.npz`` file or a directory holding ``{flag}[_{size}].npz``; ``None``: ``DATA_DIR``.
        flag: MedMNIST flag (``dermamnist``, ``retinamnist``, ...); with a file path it defaults to the file
            stem and only names the items and the classes.
        size: 28, 64, 128 or 224 (which file to look for / download).
        download: download the official file when it is not found locally (MD5 checked).
        splits: splits to read (default: every ``train``/``val``/``test`` in the file).
        class_names: class names; default MedMNIST's names for a known flag, else ``"0".."K-1"``.
        progress: show a download progress bar.
        warn: warn about classes without training samples (see :func:`validate_datalist`).

    Raises:
        FileNotFoundError: no file (with how to provide one).
        ValueError: a file without ``{split}_images``/``{split}_labels``, mismatched lengths, multi-label labels,
            or a requested split the file lacks.
        DataCheckError: (a ``ValueError``) labels that are NaN, infinite, negative or not whole (``1.7`` is not
            read as class 1) and images holding NaN or infinite values, every one named by its split array and
            index.
    """
    path = resolve_medmnist_file(dataset_dir, flag, size, download, progress)
    name = flag or path.stem
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as e:
        raise ValueError(f"cannot read MedMNIST npz file {path}: {type(e).__name__}: {e}") from e
    with npz:
        keys = set(npz.files)
        present = [s for s in _SPLITS if f"{s}_images" in keys and f"{s}_labels" in keys]
        if not present:
            raise ValueError(
                f"{path} is not a MedMNIST-style npz: no '<split>_images' / '<split>_labels' arrays "
                f"(found keys {sorted(keys)})."
            )
        wanted = list(splits) if splits is not None else present
        absent = [s for s in wanted if s not in present]
        if absent:
            raise ValueError(f"{path} has no split(s) {absent}; it has {present}.")
        result: dict[str, list[dict[str, Any]]] = {}
        max_label = -1
        problems: list[str] = []
        for split in wanted:
            images = npz[f"{split}_images"]
            labels = np.asarray(npz[f"{split}_labels"])
            if labels.ndim == 2 and labels.shape[1] == 1:
                labels = labels[:, 0]
            if labels.ndim != 1:
                raise ValueError(
                    f"{path}: {split}_labels has shape {labels.shape}; only single-label data (N,) or (N, 1) is "
                    f"supported (multi-label flags such as chestmnist are not)."
                )
            if len(images) != len(labels):
                raise ValueError(f"{path}: {len(images)} {split}_images but {len(labels)} {split}_labels.")
            for i in np.flatnonzero([label_value_problem(v) is not None for v in labels.tolist()]):
                problems.append(
                    f"{path}: {split}_labels[{i}] = {labels[i].item()!r} {label_value_problem(labels[i].item())}"
                )
            for i in non_finite_items(images):
                problems.append(
                    f"{path}: {split}_images[{i}] holds NaN or infinite pixel values "
                    f"({int((~np.isfinite(images[i])).sum())} of {images[i].size})"
                )
            if problems:
                continue
            extras = {}
            for suffix, item_key in _ITEM_ARRAYS.items():
                if f"{split}_{suffix}" in keys:
                    values = np.asarray(npz[f"{split}_{suffix}"]).reshape(-1)
                    if len(values) != len(labels):
                        raise ValueError(f"{path}: {len(values)} {split}_{suffix} but {len(labels)} {split}_labels.")
                    extras[item_key] = [str(v) for v in values]
            items = []
            for i in range(len(labels)):
                item: dict[str, Any] = {"image": images[i], "label": int(labels[i]), "id": f"{name}_{split}_{i}"}
                for item_key, values in extras.items():
                    item[item_key] = values[i]
                if "patient_id" in item and "side" in item:
                    item["knee_id"] = f"{item['patient_id']}{item['side']}"
                items.append(item)
            result[split] = items
            if len(labels):
                max_label = max(max_label, int(labels.max()))
    raise_problems(problems)
    if class_names is not None and max_label >= len(class_names):
        for split, items in result.items():
            bad = next((i for i, item in enumerate(items) if item["label"] >= len(class_names)), None)
            if bad is not None:
                raise ValueError(
                    f"{path}: {split}_labels[{bad}] = {items[bad]['label']} is an unknown label value: the "
                    f"{len(class_names)} class names {list(class_names)} take the labels 0..{len(class_names) - 1}."
                )
    if class_names is None:
        known = MEDMNIST_CLASS_NAMES.get(name)
        class_names = known if known is not None and len(known) > max_label else [str(i) for i in range(max_label + 1)]
    report = validate_datalist(result, class_names=class_names, check_files=False, warn=warn)
    return Datalists(result, class_names=class_names, source=str(path), report=report)
