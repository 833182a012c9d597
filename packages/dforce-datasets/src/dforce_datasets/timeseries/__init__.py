"""Multivariate time-series data: GluonTS-format reader, the ``_nips`` registry, grouping, covariates.

Imports numpy only; numba is imported on the first call of a numba-backed function.
"""

from .archive import extract_cached, safe_extract, sha256_file
from .calendar import Frequency, calendar_fields, parse_freq, period_times
from .features import (
    LAGS,
    TIME_FEATURES,
    WindowBatch,
    WindowSpec,
    fourier_time_features,
    gather_windows,
    lag_features,
    lags_for_freq,
    make_windows,
    sample_starts,
    series_index,
    time_feature_names,
)
from .gluonts_format import DatasetMetadata, GluonTSDataset, SeriesEntry, read_dataset, read_metadata, read_split
from .grouping import (
    MultivariateData,
    MultivariateSeries,
    Normalizer,
    group_test,
    group_train,
    infer_num_test_dates,
    split_window,
    to_multivariate,
)
from .registry import DATASETS, DatasetInfo, cache_root, dataset_info, download_archive, load_dataset, locate

__all__ = [
    "DATASETS", "LAGS", "TIME_FEATURES",
    "DatasetInfo", "DatasetMetadata", "Frequency", "GluonTSDataset", "MultivariateData", "MultivariateSeries",
    "Normalizer", "SeriesEntry", "WindowBatch", "WindowSpec",
    "cache_root", "calendar_fields", "dataset_info", "download_archive", "extract_cached", "fourier_time_features",
    "gather_windows", "group_test", "group_train", "infer_num_test_dates", "lag_features", "lags_for_freq",
    "load_dataset", "locate", "make_windows", "parse_freq", "period_times", "read_dataset", "read_metadata",
    "read_split", "safe_extract", "sample_starts", "series_index", "sha256_file", "split_window",
    "time_feature_names", "to_multivariate",
]
