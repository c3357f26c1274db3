"""IMDb reviews in, training channels out: download, read and check, cache, split, channel files."""

from sentiment.data.cache import load_imdb
from sentiment.data.channels import CHANNEL_FORMATS, CHANNELS, LABELED_CHANNELS, read_channel, write_channel, write_channels
from sentiment.data.download import download
from sentiment.data.imdb import IMDB_ARCHIVE_NAME, IMDB_MD5, IMDB_URL, official_count_differences, read_imdb
from sentiment.data.splits import DEFAULT_SEED, DEFAULT_VALIDATION_FRACTION, carve_validation, imdb_channels
from sentiment.data.table import LABEL_NAMES, NEGATIVE, POSITIVE, UNLABELED, ReviewTable

__all__ = [
    "CHANNELS",
    "CHANNEL_FORMATS",
    "DEFAULT_SEED",
    "DEFAULT_VALIDATION_FRACTION",
    "IMDB_ARCHIVE_NAME",
    "IMDB_MD5",
    "IMDB_URL",
    "LABELED_CHANNELS",
    "LABEL_NAMES",
    "NEGATIVE",
    "POSITIVE",
    "UNLABELED",
    "ReviewTable",
    "carve_validation",
    "imdb_channels",
    "download",
    "load_imdb",
    "official_count_differences",
    "read_channel",
    "read_imdb",
    "write_channel",
    "write_channels",
]
