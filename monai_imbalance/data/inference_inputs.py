"""What an inference run predicts: a folder of new images (unreadable ones skipped and listed), or nothing yet.

``configs/inference.yaml`` needs only the model folder and ``--input_dir``. Building its data set must not
touch any data: the Model Zoo's ``ci/verify_bundle.py`` creates the inference workflow and checks its
properties (which builds the data set, loader and evaluator) with no data and no network. So without an input
the datalist is empty, and the run itself refuses to start (:func:`check_inference_input`, the first step of
the config's ``run``), in one line naming ``--input_dir``.

Unreadable inputs (a file that is empty, not an image, or damaged in its header: read as
:func:`monai_imbalance.data.check_image_file` reads it, without decoding the pixels) are skipped with a
warning naming each, and :func:`report_skipped` lists them again when the run ends; ``strict=True``
(``--strict true``) stops at the first instead. A file whose header reads but whose pixels do not (e.g. a
truncated JPEG) still stops the run when it is loaded, naming the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from monai_imbalance.data.check import check_image_file
from monai_imbalance.data.folders import image_folder_datalist
from monai_imbalance.errors import DataError, UserError, data_errors_for_users

__all__ = [
    "InferenceDatalist",
    "MissingInferenceInputError",
    "check_inference_input",
    "inference_datalist",
    "report_skipped",
]

logger = logging.getLogger(__name__)


class MissingInferenceInputError(UserError, ValueError):
    """An inference run was started without anything to predict (or with two sources at once)."""


class InferenceDatalist(list):
    """The datalist of an inference run (``[{"image": path, "id": ...}, ...]``) and the inputs it skipped.

    Attributes:
        skipped: ``[(path, reason), ...]`` of the unreadable inputs left out, in folder order.
    """

    def __init__(self, items: Iterable[Mapping[str, Any]] = (), skipped: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(items)
        self.skipped: list[tuple[str, str]] = list(skipped)


@data_errors_for_users
def inference_datalist(
    input_dir: str | os.PathLike | None, *, strict: bool = False, image_key: str = "image"
) -> InferenceDatalist:
    """The readable images of ``input_dir`` (:func:`~monai_imbalance.data.image_folder_datalist`), or an empty list.

    Args:
        input_dir: the folder of images; ``None`` (no ``--input_dir``): an empty datalist, so that a workflow can
            be built and checked without data; the run refuses it (:func:`check_inference_input`).
        strict: raise at the first unreadable file instead of skipping it.
        image_key: the datalist key of the image path.

    Raises:
        DataNotFoundError: ``input_dir`` is not a folder (a ``FileNotFoundError``; user errors end a bundle run in
            one line).
        DataError: ``input_dir`` holds no image file, every image is unreadable, or (``strict``) one is (a
            ``ValueError``).
    """
    if input_dir is None or input_dir == "":
        return InferenceDatalist()
    items, skipped = [], []
    for item in image_folder_datalist(input_dir):
        problem = check_image_file(item[image_key])
        if problem is None:
            items.append(item)
            continue
        if strict:
            raise DataError(f"{problem}; remove it from --input_dir, or drop --strict true to skip unreadable inputs")
        logger.warning(f"skipping an unreadable input: {problem}")
        skipped.append((item[image_key], problem))
    if not items:
        raise DataError(
            f"none of the {len(skipped)} image file(s) in {input_dir} can be read; the first: {skipped[0][1]}"
        )
    return InferenceDatalist(items, skipped)


def check_inference_input(*, input_dir: Any, predict_test_split: bool = False) -> None:
    """Refuse a run with nothing to predict, or with two inputs; the first step of ``inference.yaml``'s ``run``.

    Raises:
        MissingInferenceInputError: neither or both of ``input_dir`` and ``predict_test_split``.
    """
    if input_dir and predict_test_split:
        raise MissingInferenceInputError(
            f"give either --input_dir ({input_dir}) or --predict_test_split true, not both"
        )
    if not input_dir and not predict_test_split:
        raise MissingInferenceInputError(
            "nothing to predict: give --input_dir <folder of images> (or --predict_test_split true for the test "
            "split of the data set the bundle was trained on, which reads that data)"
        )


def report_skipped(datalist: Any) -> list[tuple[str, str]]:
    """Log, once the run has ended, the inputs :func:`inference_datalist` skipped; returns them."""
    skipped = list(getattr(datalist, "skipped", []))
    if skipped:
        lines = "".join(f"\n  - {reason}" for _, reason in skipped)
        logger.warning(f"skipped {len(skipped)} unreadable input(s), not predicted:{lines}")
    return skipped
