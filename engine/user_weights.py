"""Which weights file decodes a .hsic file: the installed one, a retired one from the archive, or a
user's own file (from ``hsic train`` or ``hsic:train``) used in place of the installed one.

A file written with installed weights that have since been retrained decodes with the archived copy of
the weights of its digest (:func:`engine.weight_files.weights_by_digest`).

The encoder records the file in the header (``codec_options``: its name and the absolute path it had)
next to the digest every file carries (``weights_sha256``). The decoder finds it again: the file the
caller names, else the recorded path, else a file of the recorded name beside the ``.hsic`` (so a
``.hsic`` moved together with its weights still decodes). Whatever is found must have the recorded
digest; nothing found is a :class:`CodecError` that says where it looked.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import CodecError
from engine.format.container import Header
from engine.registry import get_info
from engine.weight_files import check_weights_file, file_sha256, installed_path, weights_by_digest

NAME_KEY, PATH_KEY = "weights_file", "weights_path"


def codec_options(weights: str | os.PathLike | None) -> dict[str, str] | None:
    """What the header records about a user's weights file (None for the installed weights)."""
    if weights is None:
        return None
    path = Path(weights).resolve()
    return {NAME_KEY: path.name, PATH_KEY: str(path)}


def find_weights(hsic_path: str | os.PathLike, header: Header,
                 weights: str | os.PathLike | None = None) -> Path | None:
    """The weights file to decode ``hsic_path`` with, or None for the installed weights.

    Installed weights whose digest differs from the header's are replaced by the archived file of the
    header's digest when there is one (otherwise None: the decoder reports the mismatch).

    ``weights``: a file the caller names; it must have the header's digest.
    """
    want = header.weights_sha256
    if weights is not None:
        path = Path(weights)
        if not path.exists():
            raise CodecError(f"weights file {path} does not exist")
        check_weights_file(path)
        if file_sha256(path) != want:
            raise CodecError(f"weights file {path} is not the one {hsic_path} was written with "
                             f"(digest {file_sha256(path)[:12]}, file needs {want[:12]})")
        return path
    installed_name = get_info(header.codec).weights.get(header.quality, "")
    found = weights_by_digest(installed_name, want) if installed_name else None
    if found is not None and found != installed_path(installed_name):  # retired: the archived copy
        return found
    name = header.codec_options.get(NAME_KEY)
    if not isinstance(name, str) or not name:
        return None  # written with the installed weights: SceneDecoder checks their digest
    if found is not None:
        return None  # the user's weights have since been installed as the default ones
    recorded = header.codec_options.get(PATH_KEY)
    tried = [Path(recorded)] if isinstance(recorded, str) and recorded else []
    # Only the base name is trusted from the header for the search beside the file.
    tried.append(Path(os.path.abspath(hsic_path)).parent / Path(name).name)
    for path in tried:
        # The header's author chose these paths: only weights files (.pt) that pass the checks.
        if path.suffix == ".pt" and path.is_file() and _usable(path) and file_sha256(path) == want:
            return path
    raise CodecError(
        f"{hsic_path} was coded with the weights file {name!r} (digest {want[:12]}), which was not found "
        f"(looked at {', '.join(repr(str(p)) for p in tried)}); put it beside the .hsic file or name it with --weights"
    )


def _usable(path: Path) -> bool:
    try:
        check_weights_file(path)
    except CodecError:
        return False
    return True
