"""Style labels, one per piece: from a CSV beside the corpus, or from each file's folder.

`train --style-from folder`: a piece's label is the name of the folder its file lies in.
`train --style-from FILE.csv`: a CSV with the columns `path` and `label`, or other columns named
after it (`FILE.csv:PATH:LABEL`; piano-midi's `metadata.csv:midi:composer`); its paths are
relative to the CSV's folder or absolute, and a piece's file is found by the end of its path.
Training keeps the labels in its model directory's copy of the notes table (`tables.label_notes`)
and lists them in the model's settings (`ModelConfig.styles`); a piece without one trains with none.
"""
from __future__ import annotations

import csv
import io
import re
from typing import NamedTuple

from lstm_composer import storage

FOLDER = "folder"
_CSV = re.compile(r"(?P<file>.+\.csv)(?::(?P<path>[^:/]+):(?P<label>[^:/]+))?", re.IGNORECASE)


class StyleSource(NamedTuple):
    """Where the labels come from: each file's folder, or a CSV and its two columns."""

    csv: str | None = None
    path_column: str = "path"
    label_column: str = "label"

    @classmethod
    def parse(cls, text: str) -> "StyleSource":
        """`folder`, `labels.csv` or `metadata.csv:midi:composer`."""
        if text == FOLDER:
            return cls()
        match = _CSV.fullmatch(text)
        if not match:
            raise ValueError(f"--style-from is 'folder' or a CSV file (FILE.csv, or "
                             f"FILE.csv:PATH_COLUMN:LABEL_COLUMN), got {text!r}")
        return cls(match["file"], match["path"] or "path", match["label"] or "label")


def read_labels(source: StyleSource, paths: dict[str, str]) -> dict[str, str]:
    """The label of each piece that has one, by piece id (`paths`: each piece's file, as the
    pieces table names it)."""
    if source.csv is None:
        return {piece: parts[-2] for piece, path in paths.items() if len(parts := _parts(path)) > 1}
    by_path = _csv_labels(source)
    labels = {}
    for piece, path in paths.items():
        parts = _parts(path)
        found = next((by_path[key] for i in range(len(parts)) if (key := "/".join(parts[i:])) in by_path), None)
        if found:
            labels[piece] = found
    if paths and not labels:
        raise ValueError(f"no path of {source.csv} names a file of the corpus (e.g. {next(iter(by_path), 'none')} "
                         f"against {next(iter(paths.values()))})")
    return labels


def _csv_labels(source: StyleSource) -> dict[str, str]:
    """(path relative to the CSV's folder, or absolute, without a leading /) → label."""
    try:
        text = storage.read_bytes(source.csv).decode("utf-8-sig")
    except OSError as error:
        raise ValueError(f"cannot read --style-from {source.csv}: {error.strerror or error}") from None
    rows = csv.DictReader(io.StringIO(text))
    missing = [column for column in (source.path_column, source.label_column) if column not in (rows.fieldnames or [])]
    if missing:
        raise ValueError(f"{source.csv} has no column {missing[0]!r} (its columns: "
                         f"{', '.join(rows.fieldnames or [])}); name the columns of paths and labels: "
                         f"--style-from {source.csv}:PATH_COLUMN:LABEL_COLUMN")
    return {"/".join(_parts(row[source.path_column])): row[source.label_column].strip() for row in rows
            if row[source.path_column] and (row[source.label_column] or "").strip()}


def _parts(path: str) -> list[str]:
    """A path or URI's names, without its scheme and without `.` names."""
    path = re.sub(r"^[a-z][a-z0-9+.-]*:/*", "", path.replace("\\", "/"), flags=re.IGNORECASE)
    return [part for part in path.split("/") if part not in ("", ".")]
