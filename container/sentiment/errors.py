"""The package's exception types, one per family of failure; messages say what, where and what to do."""

from __future__ import annotations


class SentimentError(Exception):
    """Base class: every failure the package reports on purpose."""


class DataError(SentimentError):
    """Input data that cannot be used: a corrupt archive, a wrong layout, bad bytes, a bad record."""


class DownloadError(SentimentError):
    """A download that could not be completed."""


class ChecksumError(DownloadError):
    """Downloaded bytes whose checksum differs from the published one."""


class CaptureError(DataError):
    """Data Capture files that cannot be used for drift: none found, too many unreadable records, too few reviews."""
