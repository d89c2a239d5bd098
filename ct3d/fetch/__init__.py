"""Fetch public datasets: resumable, checked downloads, safe extraction, MosMedData.

Example::

    from ct3d.fetch import fetch_mosmed
    root = fetch_mosmed("data/mosmed")   # CT-0/ and CT-23/ under data/mosmed; prints the licence
"""

from ct3d.fetch.archive import ArchiveError, safe_extract
from ct3d.fetch.download import DownloadError, FileRecord, download
from ct3d.fetch.mosmed import FetchError, MosmedData, fetch_mosmed, inspect_mosmed

__all__ = ["ArchiveError", "DownloadError", "FetchError", "FileRecord", "MosmedData",
           "download", "fetch_mosmed", "inspect_mosmed", "safe_extract"]
