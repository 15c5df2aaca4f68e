"""What kind of file an import was given, by its first bytes (a name or a caption can lie).

CSV is text and goes to the importer as it is; an xlsx workbook is converted (bot/ingest/xlsx.py);
anything else is named, with what to save it as, instead of being read as garbled text
(an xlsx read as CSV used to answer "unknown column 'pk\\x03\\x04…'").
"""

from __future__ import annotations

import zipfile
from typing import BinaryIO

CSV = "csv"
XLSX = "xlsx"
SAVE_AS = "save it as CSV (UTF-8) or as an Excel workbook (.xlsx)"

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook (.xls) or another old Office file"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"{\\rtf", "an RTF document"),
)
# Inside a zip: the part that says which Office or OpenDocument file it is.
_ZIP_PARTS = (
    ("xl/workbook.xml", XLSX),
    ("xl/workbook.bin", "an Excel binary workbook (.xlsb)"),
    ("word/document.xml", "a Word document (.docx)"),
    ("ppt/presentation.xml", "a PowerPoint presentation (.pptx)"),
)


class NotATable(ValueError):
    """The file is neither CSV nor xlsx; `str()` says what it is and what to save it as."""


def sniff(binary: BinaryIO) -> str:
    """`CSV` or `XLSX`; raises NotATable for anything else. Leaves the file at its start."""
    binary.seek(0)
    head = binary.read(16)
    binary.seek(0)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        found = _zip_kind(binary)
        binary.seek(0)
        if found == XLSX:
            return XLSX
        raise NotATable(f"this is {found}, not a CSV or xlsx file; {SAVE_AS}")
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise NotATable(f"this is {what}, not a CSV or xlsx file; {SAVE_AS}")
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        raise NotATable(f"this is a WebP image, not a CSV or xlsx file; {SAVE_AS}")
    return CSV


def _zip_kind(binary: BinaryIO) -> str:
    try:
        with zipfile.ZipFile(binary) as archive:
            names = set(archive.namelist())
            for part, what in _ZIP_PARTS:
                if part in names:
                    return what
            if "mimetype" in names:
                mimetype = archive.read("mimetype")[:100]
                if b"opendocument.spreadsheet" in mimetype:
                    return "an OpenDocument spreadsheet (.ods)"
                if b"opendocument" in mimetype:
                    return "an OpenDocument file"
    except (zipfile.BadZipFile, OSError, KeyError):
        return "a damaged zip archive"
    return "a zip archive"
