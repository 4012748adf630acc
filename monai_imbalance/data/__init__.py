"""Datalists, samplers for class imbalance and the repeat-acquisition simulation."""

from .check import DataCheckError, DataFilesNotFoundError, check_datalists
from .class_weights import as_class_indices, class_counts, class_weights
from .csv_datalist import load_csv_datalists
from .datalist import (
    LABEL_MAPS,
    DatalistReport,
    Datalists,
    load_datalists,
    validate_datalist,
)
from .folders import KNEE_ID_PATTERN, image_folder_datalist, load_class_folder_datalists, load_knee_folder_datalists
from .formats import DATA_FORMATS, register_format, registered_formats
from .inference_inputs import (
    InferenceDatalist,
    MissingInferenceInputError,
    check_inference_input,
    inference_datalist,
    report_skipped,
)
from .isic_classification import ISIC_TASK3_CLASSES, load_isic2018_task3_datalists
from .loading import (
    available_memory_bytes,
    cache_size_bytes,
    cpu_count,
    local_processes,
    random_after_cache,
    resolve_cache_rate,
    resolve_num_workers,
)
from .medmnist import MEDMNIST_CLASS_NAMES, download_medmnist, load_medmnist_datalists, medmnist_url
from .repeat_evaluation import REPEAT_MODES, REPEAT_UNIT_KEY, RepeatEvaluationDataset, repeat_units
from .repeats import RepeatAcquisitions
from .samplers import (
    BatchBalancedSampler,
    ClassBatchSampler,
    OverSampler,
    SamplerBatchSizeError,
    UnderSampler,
    get_sampler,
)
from .segmentation_datalists import (
    DEFAULT_SEGMENTATION_FRACTIONS,
    SEGMENTATION_FORMATS,
    drive_datalist,
    dsb2018_datalist,
    dsb2018_npz_datalist,
    isic2018_task1_datalist,
    load_segmentation_datalists,
    split_segmentation_datalist,
)
from .splits import split_by_group

__all__ = [
    "DATA_FORMATS",
    "DEFAULT_SEGMENTATION_FRACTIONS",
    "ISIC_TASK3_CLASSES",
    "KNEE_ID_PATTERN",
    "LABEL_MAPS",
    "MEDMNIST_CLASS_NAMES",
    "REPEAT_MODES",
    "REPEAT_UNIT_KEY",
    "SEGMENTATION_FORMATS",
    "BatchBalancedSampler",
    "ClassBatchSampler",
    "DataCheckError",
    "DataFilesNotFoundError",
    "DatalistReport",
    "Datalists",
    "InferenceDatalist",
    "MissingInferenceInputError",
    "OverSampler",
    "RepeatAcquisitions",
    "RepeatEvaluationDataset",
    "SamplerBatchSizeError",
    "UnderSampler",
    "as_class_indices",
    "available_memory_bytes",
    "cache_size_bytes",
    "check_datalists",
    "check_inference_input",
    "class_counts",
    "class_weights",
    "cpu_count",
    "download_medmnist",
    "drive_datalist",
    "dsb2018_datalist",
    "dsb2018_npz_datalist",
    "get_sampler",
    "image_folder_datalist",
    "inference_datalist",
    "isic2018_task1_datalist",
    "load_class_folder_datalists",
    "load_csv_datalists",
    "load_datalists",
    "load_isic2018_task3_datalists",
    "load_knee_folder_datalists",
    "load_medmnist_datalists",
    "load_segmentation_datalists",
    "local_processes",
    "medmnist_url",
    "random_after_cache",
    "register_format",
    "registered_formats",
    "repeat_units",
    "report_skipped",
    "resolve_cache_rate",
    "resolve_num_workers",
    "split_by_group",
    "split_segmentation_datalist",
    "validate_datalist",
]
