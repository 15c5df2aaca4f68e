"""A CSV file as spreadsheets save it: its encoding, its separator, and its rows.

The encoding is detected among the ones the contract names (UTF-8 with or without a BOM, UTF-16
with or without one, GB18030, which reads GBK), by `charset-normalizer` except for UTF-16 without
a BOM (see `_utf16_without_bom`). The separator is the one the header row uses most of `,`, `;`
and tab (Excel's "Unicode Text" is UTF-16 separated by tabs); with `;`, `,` is the decimal mark.
A row holding bytes the detected encoding cannot read is a bad row like any other.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from charset_normalizer import from_bytes

DETECT_BYTES = 64 * 1024  # of the head, and of non-ASCII lines further on, for charset detection
UTF16_SNIFF_BYTES = 32  # 16 UTF-16 code units: shorter than any kind's header row
SEPARATORS = (",", ";", "\t")  # in this order of preference on a tie
ENCODINGS = {"utf_8": ("utf-8-sig", "UTF-8"), "utf_16": ("utf-16", "UTF-16"), "gb18030": ("gb18030", "GBK")}
_UNREADABLE = "\udcff"  # stands for bytes the encoding cannot read; no decoder produces a lone surrogate
codecs.register_error("stockbot_mark", lambda exc: (_UNREADABLE, exc.end))  # type: ignore[arg-type, return-value]

Columns = tuple[tuple[str, ...], tuple[str, ...]]  # (required, optional)
ProblemAt = Callable[[int, str], None]  # (line, reason)


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    values: dict[str, str]


@dataclass(slots=True)
class CsvFormat:
    codec: str = "utf-8-sig"
    label: str = "UTF-8"
    delimiter: str = ","

    @property
    def decimal_comma(self) -> bool:
        return self.delimiter == ";"


def detect(binary: BinaryIO) -> CsvFormat:
    """The file's encoding and separator."""
    found = _encoding(binary)
    binary.seek(0)
    header = codecs.getreader(found.codec)(binary, errors="stockbot_mark").readline()
    binary.seek(0)
    found.delimiter = _delimiter(header)
    return found


def _delimiter(header: str) -> str:
    """The separator the header row uses most; a tie (a one-column header) means a comma."""
    return max(SEPARATORS, key=header.count)


def _encoding(binary: BinaryIO) -> CsvFormat:
    """The file's encoding: UTF-16 without a BOM by its NUL bytes, the rest by charset-normalizer
    (among the contract's encodings)."""
    head = binary.read(DETECT_BYTES)
    codec = _utf16_without_bom(head)
    if codec is not None:
        return CsvFormat(codec, "UTF-16")
    sample = head
    if len(head) == DETECT_BYTES:
        cut = head.rfind(b"\n") + 1
        sample = head[:cut] if cut > 0 else head
        if not any(byte >= 0x80 or byte == 0 for byte in sample):
            sample += _non_ascii_lines(binary)  # an English head says nothing; a later name might
    if _strict_utf8(sample):
        # Text that reads as UTF-8 is UTF-8: charset-normalizer takes a short file whose one
        # non-ASCII character is a zero-width space or a bidi override for GB18030 mojibake,
        # which hides the very character the importer refuses.
        return CsvFormat()
    guess = from_bytes(sample, cp_isolation=list(ENCODINGS)).best()
    if guess is None and len(sample) % 2:  # UTF-16 cut after the "\n" of a "\n\0"
        guess = from_bytes(head[: len(sample) + 1], cp_isolation=list(ENCODINGS)).best()
    if guess is None:  # a few bad rows must not hide what the rest is written in
        lines = sample.splitlines(keepends=True)
        readable = [line for line in lines if _readable(line)]
        if len(lines) - len(readable) <= len(lines) // 10:  # more, and it is some other encoding
            guess = from_bytes(b"".join(readable), cp_isolation=list(ENCODINGS)).best()
    found = CsvFormat()
    if guess is not None:
        found.codec, found.label = ENCODINGS[guess.encoding]
    return found


def _strict_utf8(sample: bytes) -> bool:
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _utf16_without_bom(head: bytes) -> str | None:
    """"utf-16-le" or "utf-16-be" for UTF-16 that starts without a BOM, as some tools write it.

    charset-normalizer does not recognise it. Every header is ASCII column names, so in UTF-16
    its first bytes alternate NUL and not NUL; no other accepted encoding puts NULs in text.
    """
    sample = head[: min(len(head), UTF16_SNIFF_BYTES) // 2 * 2]
    if len(sample) < 4:
        return None
    low, high = sample[0::2], sample[1::2]
    if all(low) and not any(high):
        return "utf-16-le"
    if all(high) and not any(low):
        return "utf-16-be"
    return None


def _readable(line: bytes) -> bool:
    for codec in ("utf-8", "gb18030"):
        try:
            line.decode(codec)
        except UnicodeDecodeError:
            continue
        return True
    return False


def _non_ascii_lines(binary: BinaryIO) -> bytes:
    picked = bytearray()
    for raw in binary:
        if len(picked) >= DETECT_BYTES:
            break
        if any(byte >= 0x80 for byte in raw):
            picked += raw
    return bytes(picked)


def read_rows(binary: BinaryIO, columns: Columns, found: CsvFormat, problem: ProblemAt) -> Iterator[Row]:
    """The data rows, with the physical line each starts on. Problems with the header (against
    `columns`) or the CSV itself go to `problem`."""
    binary.seek(0)
    text = io.TextIOWrapper(binary, encoding=found.codec, errors="stockbot_mark", newline="")
    try:
        reader = csv.reader(text, delimiter=found.delimiter)
        try:
            header = [name.strip().lower() for name in next(reader)]
            while not "".join(header):  # blank rows above the table (a sheet's title space)
                header = [name.strip().lower() for name in next(reader)]
        except StopIteration:
            problem(1, "the file is empty; expected a header row")
            return
        except csv.Error as exc:
            problem(1, f"unreadable CSV: {exc}")
            return
        if header and header[0].startswith("\ufeff"):  # a BOM the codec kept (UTF-16 written twice)
            header[0] = header[0].lstrip("\ufeff")
        reason = _header_problem(header, columns, found)
        if reason:
            problem(1, reason)
            return
        line = reader.line_num
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                problem(reader.line_num, f"unreadable CSV: {exc}")
                return
            start, line = line + 1, reader.line_num
            joined = "".join(cells)  # one scan in C instead of one per cell
            if not joined.strip():
                continue
            if _UNREADABLE in joined:
                problem(start, f"not {found.label} text")
                continue
            if len(cells) > len(header):
                problem(start, f"{len(cells)} values for {len(header)} columns")
                continue
            yield Row(start, {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(header)})
    finally:
        text.detach()  # the caller owns the binary file


def _header_problem(header: list[str], columns: Columns, found: CsvFormat) -> str | None:
    if any(_UNREADABLE in name for name in header):
        return f"not {found.label} text"
    required, optional = columns
    missing = [name for name in required if name not in header]
    unknown = [name for name in header if name not in required + optional]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    parts = []
    if missing:
        parts.append("missing column " + ", ".join(missing))
    if unknown:
        parts.append("unknown column " + ", ".join(repr(name) for name in unknown))
    if duplicated:
        parts.append("repeated column " + ", ".join(duplicated))
    return "; ".join(parts) or None

