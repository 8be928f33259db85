"""Which files a command reads and which it writes: inputs from paths, folders and globs; outputs planned so an
input is never overwritten and no two inputs write the same file; writes atomic, so no partial file is left."""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import secrets
import stat
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

from aetool.errors import AetoolError, DataError, ImageError, os_reason
from aetool.runtime.images import FORMATS, format_for, image_suffixes, opened_image
from aetool.runtime.signals import interrupts_held

if TYPE_CHECKING:
    from aetool.runtime.stream import ImageStream

STDIN = "-"
_MAGIC = set("*?[")
STALE_SECONDS = 10 * 60  # a temporary this old was left by a killed writer: writing one file takes far less
NAME_MAX = 255  # bytes in a file name: ext4, XFS, btrfs, APFS and NTFS (255 UTF-16 units) all allow this many
# aetool's temporaries: ".NAME.XXXXXXXX.part" (8 random letters, digits or _, as tempfile's names and ours are)
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.part", re.DOTALL)
_SWEPT: set[Path] = set()  # folders whose stale temporaries this process has removed


@dataclass(frozen=True)
class Input:
    """One image to read: a file (found under ``root`` when it came from a folder or glob) or stdin's bytes."""

    label: str
    source: Path | bytes
    root: Path | None = None


@dataclass(frozen=True)
class Job:
    """One image to process: where it comes from and where its result goes (``None``: standard output)."""

    label: str
    source: Path | bytes
    target: Path | None
    fmt: str  # Pillow format name


@dataclass(frozen=True)
class Failure:
    """An input that cannot be processed, with the one-line reason."""

    label: str
    error: str


HEATMAP = ".heatmap"  # detect's heatmaps end in .heatmap.png and .raw.heatmap.png
OUTPUT_SUFFIXES = (".denoised", ".reconstructed", ".noisy", HEATMAP)  # the image commands' outputs: NAME.SUFFIX.png


def collect(args: Sequence[str], *, recursive: bool = False, skip: str = "") -> tuple[list[Input], list[Failure]]:
    """The images named by files, folders (``recursive`` to descend) and globs. Folder scans skip what aetool's
    commands write (``OUTPUT_SUFFIXES``: ``x.denoised.png`` is not an input of the next command on the folder), and
    say so in a warning (or in the failure of a folder that holds nothing else) when it is another command's than
    this one's (``skip``); globs skip what this command writes (``*{skip}.*``); a file named is taken as it is. A
    file named twice (by its name and by its folder, relative or absolute) is one input, keyed by :func:`_key`; an
    absolute name and a folder's relative one were two (trial 89)."""
    inputs: dict[str, Input] = {}
    failures = []
    for arg in args:
        path = Path(arg)
        if not arg:  # Path("") is the current folder, which the user did not name
            failures.append(Failure('""', "an empty name, not a file or folder (. is the current folder)"))
        elif path.is_dir():
            listed, unreadable = folder_files(path, recursive=recursive)
            found = [p for p in listed if _is_image(p, OUTPUT_SUFFIXES)]
            others = tuple(end for end in OUTPUT_SUFFIXES if end != skip)  # this command's own: skipped unsaid
            outputs = [p for p in listed if p.stem.endswith(others) and _is_image(p, ())]
            failures += [Failure(str(folder), f"cannot read this folder: {reason}") for folder, reason in unreadable]
            dangling = [p for p in listed if p.suffix.lower() in image_suffixes() and p.is_symlink() and not p.exists()]
            failures += [Failure(str(p), missing_because(p)) for p in dangling]
            skipped = _skipped_outputs(path, outputs)
            if not found and not unreadable and not dangling:
                where = " or its subfolders" if recursive else ""
                hint = "" if recursive or not any(p.is_dir() for p in path.iterdir()) else " (use -r for subfolders)"
                failures.append(Failure(arg, f"no images found in this folder{where}{hint}{skipped and '; '}{skipped}"))
            elif skipped:  # the add-noise → denoise of one folder did nothing with the noisy images, unsaid
                warnings.warn(f"{arg}: {skipped}", UserWarning, stacklevel=2)
            inputs.update((_key(p), Input(str(p), p, path)) for p in found)
        elif path.exists() or not _MAGIC & set(arg):
            inputs.setdefault(_key(path), Input(arg, path))
        else:
            found = [Path(p) for p in _glob(arg) if _is_image(Path(p), (skip,) * bool(skip))]
            if not found:
                failures.append(Failure(arg, "pattern matched no images"))
            root = _glob_root(arg)
            inputs.update((_key(p), Input(str(p), p, root)) for p in found)
    return list(inputs.values()), failures


def _key(path: Path) -> str:
    """Which file a path names, for telling one named twice: its folder's real path (links and ``..`` resolved as
    the file system does: ``link/../a/x.png`` is not ``a/x.png`` when ``link`` leads elsewhere, which a lexical
    absolute path merged; trial 92) and its own name (a link to a file stays its own input)."""
    return os.path.join(os.path.realpath(path.parent), path.name)


def _skipped_outputs(folder: Path, outputs: list[Path]) -> str:
    """What a folder scan says of the images it left out for being named like aetool's outputs (``""``: none)."""
    if not outputs:
        return ""
    suffixes = dict.fromkeys(next(end for end in OUTPUT_SUFFIXES if path.stem.endswith(end)) for path in outputs)
    globs = " ".join(f"'{folder / ('*' + suffix + '.*')}'" for suffix in suffixes)  # each kind's, not the first's
    named = ", ".join(p.name for p in outputs[:2]) + (", …" if len(outputs) > 2 else "")
    return (
        f"skipped {len(outputs)} image{'s' * (len(outputs) != 1)} named like aetool's outputs ({named}), as folder "
        f"scans do; {'a glob takes' if len(suffixes) == 1 else 'globs take'} them: {globs}"
    )


def check_exists(source: str, *, named: str) -> None:
    """Raise ``DataError`` beginning with ``named`` when ``source``, a path that is not a glob, does not exist."""
    if not Path(source).exists() and not _MAGIC & set(source):
        raise DataError(f"{named}: no such file or folder")


def collect_set(source: str, *, named: str, skip: str = "", warn: bool = True) -> list[Input]:
    """The images of one set that an option names (``--data``, ``--normal``…): a folder, searched recursively, a
    glob or a file; what the set lacks (a dangling link, a loop) a warning each, unless ``warn`` is False (a set
    read again, by an export after training: said three times, trial 94). Raises ``DataError`` beginning with
    ``named`` when ``source`` does not exist (unlike an input of a batch, which is one failed image among others)
    or holds no images."""
    check_exists(source, named=named)
    found, failures = collect([source], recursive=True, skip=skip)
    if not found:
        first = failures[0] if failures else Failure(source, "no images")
        raise DataError(
            f"{named}: {first.error}" if first.label == source else f"{named}: {first.label}: {first.error}"
        )
    for failure in failures if warn else ():  # the set is still usable: say what it lacks
        warnings.warn(f"{named}: {failure.label}: {failure.error}; its images are left out", stacklevel=2)
    return found


def folder_files(folder: Path, *, recursive: bool) -> tuple[list[Path], list[tuple[Path, str]]]:
    """What ``folder`` holds, sorted: its entries, or with ``recursive`` the files of it and its subfolders, where a
    symbolic link to a folder is followed (``data/cats -> /mnt/disk/cats``) and each real folder is read once, so a
    link back up the tree is no loop and two links to one folder do not give its files twice; and the folders that
    could not be read (no permission: a disk's ``lost+found``), each with the reason."""
    unreadable: list[tuple[Path, str]] = []

    def cannot_read(err: OSError) -> None:
        unreadable.append((Path(err.filename), err.strerror or str(err)))

    if not recursive:
        try:
            return sorted(folder.iterdir()), unreadable
        except OSError as err:
            cannot_read(err)
            return [], unreadable
    seen: set[tuple[int, int]] = set()
    found: list[Path] = []
    for top, subfolders, names in os.walk(folder, onerror=cannot_read, followlinks=True):
        try:
            info = os.stat(top)
        except OSError:
            subfolders.clear()
            continue
        if (info.st_dev, info.st_ino) in seen:
            subfolders.clear()
            continue
        seen.add((info.st_dev, info.st_ino))
        subfolders.sort()
        found.extend(Path(top, name) for name in names)
    return sorted(found), unreadable


def missing_because(path: Path) -> str:
    """Why ``path``, which is no file, cannot be opened: a loop of symbolic links, a link to nothing, or nothing."""
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "is a loop of symbolic links"
    if path.is_symlink():
        return f"is a symbolic link to {os.readlink(path)}, which does not exist"
    return "does not exist"


APPLE_DOUBLE = b"\x00\x05\x16\x07"  # the first bytes of macOS's ._NAME files, beside each file it copies elsewhere


def _is_image(path: Path, skip: tuple[str, ...]) -> bool:
    """Whether a scan takes ``path``: an image suffix, a file, not a name ending in ``skip``, and not one of the
    AppleDouble ``._photo.png`` files macOS leaves beside each file it copies to a foreign disk (a folder of 120
    such files gave 120 "not an image" lines), which are left out as quietly as ``.DS_Store``."""
    if not (path.suffix.lower() in image_suffixes() and path.is_file() and not path.stem.endswith(skip)):
        return False
    if path.name.startswith("._"):
        try:
            with path.open("rb") as stream:
                return stream.read(len(APPLE_DOUBLE)) != APPLE_DOUBLE
        except OSError:
            return True  # its reading fails where it is read, with the reason
    return True


def overlapping(source: str, trained: str, *, classes: Sequence[str] | None = None) -> bool:
    """Whether the images ``source`` names (a folder, glob or file) and those a run trained on (``trained``, a
    folder or a glob's root; its subfolders of ``classes`` for a one-class run) overlap: one folder holds the other."""
    root, given = folder_of(trained).resolve(), folder_of(source).resolve()
    folders = [root / label for label in classes] if classes else [root]
    return any(given.is_relative_to(folder) or folder.is_relative_to(given) for folder in folders)


def folder_of(source: str) -> Path:
    """The folder a folder, file or glob argument names images under: itself, the file's, or the glob's root; a
    path that is not there (a run's training folder since moved away) is taken as the folder it named, not as a
    file in its parent, which would hold every folder beside it."""
    path = Path(source)
    if path.is_dir():
        return path
    if _MAGIC & set(source):
        return _glob_root(source)
    return path.parent if path.is_file() else path


def is_path(value: object) -> TypeGuard[str | os.PathLike[str]]:
    """Whether ``value`` names a path: text or an ``os.PathLike``, not empty (None was pathlib's "expected str,
    bytes or os.PathLike", and "" the current folder)."""
    return isinstance(value, str | os.PathLike) and bool(str(value))


def full_path(path: str | Path, *, named: str) -> str:
    """``path`` absolute, without ``..`` and with a leading ``~`` made the home folder, as a run records it (so one
    folder reached two ways is one setting); raises as :func:`expand_home` does."""
    return os.path.normpath(expand_home(path, named=named).absolute())


def expand_home(path: str | Path, *, named: str) -> Path:
    """``path`` with a leading ``~`` made the home folder (``Path.expanduser``). Raises ``DataError`` beginning with
    ``named`` (the option or variable that gave the path) when there is no home folder to make it (HOME unset and a
    user without a passwd entry, as in a container run under a bare user id) or no user of the name ``~user`` gives
    (which was said to be an unset HOME; trial 103)."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        user = Path(path).parts[0][1:]
        if user:
            raise DataError(
                f"{named} {path}: no user named {user} here, whose home ~{user} would be; give the full path"
            ) from None
        raise DataError(
            f"{named} {path} starts with ~, but this process has no home folder (HOME is unset); give the full path"
        ) from None


def _glob(pattern: str) -> list[str]:
    """The sorted paths ``pattern`` matches, a ``**`` component matching any depth of folders without following
    symbolic links to folders, as pathlib's glob does (and Python 3.13's by default): ``glob.glob`` followed a link
    back up the tree (``loop -> ..``) until paths were 40 links deep, so each image came about 40 times, in both
    the training and the validation images (two such links would make it 2⁴⁰). Other patterns are
    ``glob.glob``'s."""
    parts = Path(pattern).parts
    if "**" not in parts:
        return sorted(glob.glob(pattern))
    root = _glob_root(pattern)
    rest = Path(*parts[len(root.parts) :]) if root != Path(".") else Path(*parts)
    return sorted(str(path) for path in root.glob(str(rest)))


def _glob_root(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard: ``digits/**/*.png`` → ``digits``."""
    parts = Path(pattern).parts
    literal = parts[: next(i for i, p in enumerate(parts) if _MAGIC & set(p))]
    return Path(*literal) if literal else Path(".")


def plan(
    inputs: Iterable[Input],
    *,
    output: str | None,
    suffix: str,
    fmt: str | None = None,
    force: bool = False,
    shown: Callable[[Path], Path] = lambda target: target,
    option: str = "-o",
) -> tuple[Iterable[Job], list[Failure]]:
    """Where each input's result goes (``option``: the command-line option ``output`` came from, for messages).

    No ``output``: beside the input as ``NAME{suffix}.png`` (stdin's goes to stdout, several images of it one after
    another). ``-``: stdout. A name with an image suffix, for one file: that file. Otherwise a folder, mirroring the
    input folders' layout, as ``NAME.png`` (``NAME.FORMAT``; ``stdin-000001.png``… for a stream on stdin); when the
    inputs come from several folders or globs, each one's under a folder of its name (``cam1/0001.png`` and
    ``cam2/0001.png`` → ``FOLDER/cam1/0001.png``, ``FOLDER/cam2/0001.png``, as ``cp -r`` copies two folders);
    images a scan found inside the output folder are left out (:func:`_outside`). An input is never a target unless
    ``force``; a target written twice (two inputs whose names differ only by their extension, into one folder)
    fails the second input, its message naming the file ``shown`` gives for the target (the file a caller writes
    in its stead), unless one of them does not read as an image: that one fails on its own reason, and the other is
    written.

    ``inputs`` that are not a sequence (:func:`standard_input`'s images as they arrive) are planned as they come,
    the jobs given lazily, unless ``output`` names one image file: that takes the stream's only image, so the
    stream is read to its end first, or refused as soon as a second image begins (a camera's never ends).
    """
    if output == "":
        raise AetoolError(f"{option} is an empty name; give a file or a folder (. for the current one)")
    ext = (fmt or "png").lower()
    pillow_fmt = format_for(ext)
    if not isinstance(inputs, Sequence):
        if output is None or output == STDIN or not _names_a_file(output):
            if output is not None and output != STDIN:
                _check_output_folder(Path(output), output=output, option=option)
            return _stream_jobs(inputs, output=output, suffix=suffix, ext=ext, fmt=pillow_fmt, option=option), []
        taken: list[Input] = []
        for item in inputs:  # up to a second image: a camera's stream does not end
            taken.append(item)
            if _an_image_of_the_stream(item) and sum(map(_an_image_of_the_stream, taken)) > 1:
                raise AetoolError(
                    f"{option} {output} names one image file, but standard input holds more than one image; give a "
                    "folder"
                )
        inputs = taken
    single = len(inputs) == 1 and inputs[0].root is None
    streamed = len(inputs) > 1 and all(isinstance(item.source, bytes) for item in inputs)  # stdin's images
    if output == STDIN and not (single or streamed):
        raise AetoolError(f"{option} - (standard output) takes exactly one input file")
    named = output is not None and output != STDIN and _names_a_file(output)
    if output is not None and named and not single and Path(output).suffix.lower()[1:] in FORMATS:
        inputs_are = "the inputs are a folder, a glob or several files"
        if streamed:  # its images are -:1, -:2, …; the bytes between them that begin none, -:bytes A-B, are not
            images = sum(map(_an_image_of_the_stream, inputs))
            junk = " and bytes that begin no image" if images < len(inputs) else ""
            inputs_are = f"standard input holds {images} image{'s' * (images != 1)}{junk}"
        raise AetoolError(f"{option} {output} names one image file, but {inputs_are}; give a folder")
    file_target = named and single
    if output is not None and file_target:
        suffix = Path(output).suffix
        if suffix.lower()[1:] not in FORMATS:
            raise AetoolError(
                f"{option} {output} names an output file of unknown image format {suffix!r} (choose one of "
                f"{', '.join(FORMATS)}); for a folder, end its name in /: {option} {output}/"
            )
        pillow_fmt = format_for(suffix)
        if fmt and format_for(fmt) != pillow_fmt:
            raise AetoolError(f"--format {fmt} contradicts the output name {output}")
    if output is not None and output != STDIN:
        _check_output_folder(Path(output).parent if file_target else Path(output), output=output, option=option)
    if output is not None and output != STDIN and not file_target:
        inputs = _outside(inputs, _resolved(Path(output)))
    sources = {_resolved(item.source) for item in inputs if isinstance(item.source, Path)}
    by_root = len({item.root for item in inputs if item.root is not None}) > 1
    jobs: list[Job] = []
    failures: list[Failure] = []
    claimed: dict[Path | None, Input] = {}
    for item in inputs:
        target = _target(item, output, suffix, ext, file_target, by_root=by_root)
        resolved = _resolved(target) if target else None
        if resolved in sources and not force:
            other = "use --force, or another -o" if output is not None else "use --force, or -o"
            failures.append(Failure(item.label, f"refusing to overwrite input {target} ({other})"))
        elif target and resolved in claimed and not _unreadable(claimed[resolved]):
            if _unreadable(item):  # it fails on its own, with its own reason, and writes nothing
                jobs.append(Job(item.label, item.source, target, pillow_fmt))
            else:
                failures.append(
                    Failure(item.label, f"{shown(target)} is already the output of {claimed[resolved].label}")
                )
        else:  # a claimant that cannot be read writes nothing: it fails on its own, and this input takes the name
            claimed[resolved] = item
            jobs.append(Job(item.label, item.source, target, pillow_fmt))
    return jobs, failures


def _stream_jobs(
    inputs: Iterable[Input], *, output: str | None, suffix: str, ext: str, fmt: str, option: str
) -> Iterator[Job]:
    """The jobs of standard input's images as they arrive (:func:`plan`). Raises ``AetoolError`` at the first when
    the stream holds several images and their results would go to standard output one after another in a format
    whose end a reader cannot find (TGA, TIFF, GIF): aetool itself read three such frames back as one, exit 0."""
    from aetool.runtime.stream import SPLIT_FORMATS

    for item in inputs:
        several = item.label != STDIN  # -:1, -:2…: standard input holds more than one part
        if several and (output is None or output == STDIN) and fmt not in SPLIT_FORMATS:
            raise AetoolError(
                f"standard input holds several images, whose {ext} results written one after another to standard "
                f"output could not be told apart; give --format png, jpg, ppm, bmp or webp, or {option} FOLDER/"
            )
        yield Job(item.label, item.source, _target(item, output, suffix, ext, False), fmt)


def _an_image_of_the_stream(item: Input) -> bool:
    """Whether ``item`` is one of standard input's images (``-:1``, ``-:2``…), not bytes between them that begin
    none (``-:bytes 64-65``)."""
    return item.label.removeprefix(f"{STDIN}:").isdigit()


def _check_output_folder(folder: Path, *, output: str, option: str) -> None:
    """Raise ``AetoolError`` when nothing can be written into ``folder``, where ``option`` ``output`` puts the
    results: below a file, a dangling symbolic link, or a folder that cannot be made or written
    (:func:`check_folder`)."""
    blocking = file_in_the_way(folder)
    if blocking is not None:  # each image failed alone: "cannot write out/a.png: Not a directory"
        if blocking == Path(output) and not blocking.is_file():  # -o /dev/null, /dev/stdout, a pipe (trial 96)
            raise AetoolError(
                f"{option} {output} is a device or pipe, not a folder; {option} - writes to standard output"
            )
        kind = "a file" if blocking.is_file() else "a device or pipe"  # -o /dev/null/sub (trial 97)
        where = "is a file" if blocking == Path(output) else f"is below {blocking}, {kind}"
        raise AetoolError(f"{option} {output} {where}; outputs go into a folder (made if missing)")
    dangling = next((path for path in (folder, *folder.parents) if path.is_symlink() and not path.exists()), None)
    if dangling is not None:  # each image failed alone too, as did a folder that cannot be written (below)
        raise AetoolError(
            f"{option} {output}: {dangling} is a symbolic link to {os.readlink(dangling)}, which is not there"
        )
    check_folder(folder, named=f"{option} {output}")


def _unreadable(item: Input) -> bool:
    """Whether an input file does not read as an image (decoded whole, ``images.opened_image``): missing, not an
    image, a broken header, pixels cut short (a JPEG whose header was whole claimed the name; trial 86). Asked only
    of an input whose output name another input also wants."""
    if not isinstance(item.source, Path):
        return False
    try:
        with opened_image(item.source) as image:
            image.load()
            return False
    except ImageError:
        return True


def _outside(inputs: Sequence[Input], folder: Path) -> list[Input]:
    """``inputs`` less the images a folder or glob scan found inside ``folder``, the output folder, when it lies
    within the scanned folder: ``denoise photos/ -r -o photos/out/`` run twice would take the first run's outputs
    as inputs. Files named one by one stay, and so does everything when ``-o`` is the scanned folder itself."""
    kept = []
    for item in inputs:
        if isinstance(item.source, Path) and item.root is not None:
            root = _resolved(item.root)
            if folder != root and root in folder.parents and folder in _resolved(item.source).parents:
                continue
        kept.append(item)
    return kept


def _resolved(path: Path) -> Path:
    """``path`` resolved; a symlink loop (``RuntimeError`` or ``OSError`` by Python version) stays as given, made
    absolute: reading it fails as that input's error."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def file_in_the_way(folder: Path) -> Path | None:
    """The file (not a folder) that ``folder`` is or lies below, so that nothing can be written there; None when
    ``folder`` and the part of its path that exists are folders."""
    existing = next((path for path in (folder, *folder.parents) if path.exists()), None)
    return existing if existing is not None and not existing.is_dir() else None


def _names_a_file(output: str) -> bool:
    return not output.endswith(("/", os.sep)) and not Path(output).is_dir() and bool(Path(output).suffix)


def _target(
    item: Input, output: str | None, suffix: str, ext: str, file_target: bool, *, by_root: bool = False
) -> Path | None:
    if output == STDIN:
        return None
    if output is None:
        return None if isinstance(item.source, bytes) else item.source.with_name(f"{item.source.stem}{suffix}.{ext}")
    if file_target:
        return Path(output)
    stem = _stdin_stem(item.label) if isinstance(item.source, bytes) else item.source.stem
    folder = Path(output)
    if item.root is not None and isinstance(item.source, Path):
        folder = folder / (_resolved(item.root).name if by_root else "") / item.source.parent.relative_to(item.root)
    return folder / f"{stem}.{ext}"


def _stdin_stem(label: str) -> str:
    """The output name's stem of an image from standard input: ``stdin``, ``stdin-000002`` for ``-:2``, and
    ``stdin-bytes-64-65`` for bytes of a stream that begin no image (``-:bytes 64-65``)."""
    if label == STDIN:
        return "stdin"
    part = label.removeprefix(STDIN + ":")
    return f"stdin-{int(part):06d}" if part.isdigit() else f"stdin-{part.replace(' ', '-')}"


def standard_input(images: ImageStream) -> Iterator[Input]:
    """The images of standard input as inputs, given as ``images`` settles them (as they arrive): one labelled
    ``-``, or, for several images written one after another (``ffmpeg -f image2pipe``;
    :func:`aetool.runtime.stream.split_images` tells where each ends), ``-:1``, ``-:2``, … in their order; bytes between them that begin no image (they fail) are
    ``-:bytes FIRST-LAST`` (offsets in the stream, ``-:byte N`` for one), so the images' numbers have no gap
    where no image was lost (``ffmpeg -i stdin-%06d.png`` stops at the first missing number)."""
    from aetool.runtime.stream import begins_an_image

    parts = iter(images)
    first = next(parts)  # the stream's end gives a part, if only its empty bytes
    if images.one_part:
        _warn_if_several(first, who="standard input", start=None)  # ffmpeg -c:v tiff: 9 frames of 10 were lost unsaid
        yield Input(STDIN, first)
        return
    number, start = 0, 0
    for part in chain((first,), parts):  # the images numbered -:1, -:2, …; other bytes by where they lie
        end = start + len(part)
        if begins_an_image(part):
            number += 1
            label = f"{STDIN}:{number}"
            _warn_if_several(part, who=label, start=start)  # two GIFs between PNG frames: one was lost unsaid
        else:
            label = f"{STDIN}:bytes {start}-{end - 1}" if len(part) > 1 else f"{STDIN}:byte {start}"
        yield Input(label, part)
        start = end


def _warn_if_several(part: bytes, *, who: str, start: int | None) -> None:
    """Warn when ``part`` of standard input (``who``), an image of a format whose end aetool does not find, holds
    its signature again: several such images, of which only the first is read. ``start``: where ``part`` lies in
    the stream; None for a stream of one part."""
    from aetool.runtime.stream import repeated_signature

    again = repeated_signature(part)
    if again is not None:
        where = f"{again:,}" if start is None else f"{start + again:,} of the stream"
        warnings.warn(
            f"{who} seems to hold several images of a format whose end aetool does not find (its signature comes "
            f"again at byte {where}): only the first is read; pipe PNG, JPEG, PPM, BMP or WebP frames (ffmpeg -c:v "
            "png)",
            UserWarning,
            stacklevel=3,
        )


Content = bytes | Callable[[Path], None]  # the bytes of a file, or a function that writes the file at a path


def write_files(contents: Mapping[Path, Content], *, replacing: Iterable[Path] = ()) -> None:
    """Write every file under a hidden temporary name beside its target, then rename them all into place.

    Nothing is renamed until every file is written, and the temporaries go whatever happens: Ctrl-C is held back
    while a temporary is created and recorded, while the files are renamed and while the temporaries are removed,
    then raised, so an interrupt never leaves a ``.part`` file or half a set of renames. A reader never sees a
    half-written file, and a set of files is written whole or not at all (a crash between two renames aside: the
    runtime tells a model from a decoder of another export by the digest the model records). The first write into
    a folder also removes temporaries older than ``STALE_SECONDS`` that a killed writer left there. New files get
    the usual permissions (0666 less the umask). Folders made on the way are removed again when nothing was
    written. ``replacing``: files of an older set that the new one replaces, removed once every new file is written,
    just before the renames (if one cannot be written, they stay). Raises ``AetoolError`` naming the target, never
    the temporary, when a file cannot be written, and before anything is written for a name over ``NAME_MAX`` bytes.
    """
    for target in contents:  # refused before anything is written: the renames before it were done (a site half new)
        if len(os.fsencode(target.name)) > NAME_MAX:
            raise AetoolError(f"cannot write {target}: {os.strerror(errno.ENAMETOOLONG)}")  # the OS's words
    staged: dict[Path, Path] = {}
    made: list[Path] = []
    current = None
    written = False
    try:
        for current, content in contents.items():
            made += make_folder(current.parent)
            remove_stale_temporaries(current.parent)
            with interrupts_held():
                handle, temporary = _create_temporary(current)
                staged[current] = temporary
            with os.fdopen(handle, "wb") as stream:
                if isinstance(content, bytes):
                    stream.write(content)
            if not isinstance(content, bytes):
                content(temporary)
        with interrupts_held():
            for old in replacing:
                try:
                    old.unlink(missing_ok=True)
                except OSError as err:
                    raise AetoolError(f"cannot remove {old}, which the new files replace: {err.strerror}") from None
            for current, temporary in staged.items():
                os.replace(temporary, current)
            written = True
    except OSError as err:
        if _TEMPORARY.fullmatch(Path(str(err.filename or "")).name):  # ours, for ``current``: its name may be cut
            raise AetoolError(f"cannot write {current}: {err.strerror or err}") from None
        raise AetoolError(f"cannot write {current}: {os_reason(err).removesuffix(f': {current}')}") from None
    finally:
        with interrupts_held():
            for temporary in staged.values():
                temporary.unlink(missing_ok=True)
            for folder in reversed(made if not written else []):
                with contextlib.suppress(OSError):  # another writer's file in it, say: it stays
                    folder.rmdir()


def make_folder(folder: Path, *, exist_ok: bool = True) -> list[Path]:
    """Make ``folder`` and the folders missing on its way, and return those it made, outermost first;
    ``NotADirectoryError`` naming a file that stands in the way (``mkdir`` names the folder it could not make, and
    says "File exists" when the file is that folder), ``FileNotFoundError`` naming a symbolic link to nothing there,
    ``FileExistsError`` for a folder already there unless ``exist_ok``."""
    missing = [path for path in (folder, *folder.parents) if not path.exists()][::-1]
    try:
        folder.mkdir(parents=True, exist_ok=exist_ok)
        return missing
    except (FileExistsError, NotADirectoryError):
        if folder.is_dir():  # there, and not exist_ok
            raise
        on_the_way = (folder, *folder.parents)
        if dangling := next((path for path in on_the_way if path.is_symlink() and not path.exists()), None):
            why = f"a symbolic link to {os.readlink(dangling)}, which does not exist"
            raise FileNotFoundError(errno.ENOENT, why, str(dangling)) from None
        blocking = next((path for path in on_the_way if path.exists() and not path.is_dir()), folder)
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(blocking)) from None


def _create_temporary(target: Path) -> tuple[int, Path]:
    """A new hidden file beside ``target`` (``.NAME.XXXXXXXX.part``), open for writing, and its path; raises
    ``OSError`` when the folder cannot be written. NAME is cut to keep the whole within ``NAME_MAX`` bytes, so a
    target whose own name is allowed can always be written."""
    while True:
        token = secrets.token_hex(4)
        name = os.fsdecode(os.fsencode(target.name)[: NAME_MAX - len(f"..{token}.part")])
        temporary = target.with_name(f".{name}.{token}.part")
        try:
            return os.open(
                temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666
            ), temporary
        except FileExistsError:
            continue


def is_utf8(name: str) -> bool:
    """Whether ``name`` (a path or file name) is UTF-8 text, not bytes that Python keeps as surrogates
    (``os.fsdecode``)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_folder(folder: Path, *, file: str | None = None, named: str | None = None) -> None:
    """Raise ``AetoolError`` naming ``folder`` (or ``folder / file``, the file to be written; after ``named``, the
    option that gave it, when given) when files could not be written into it, made with the folders missing on its
    way: it or the nearest folder on its way that exists is a file (or a device such as /dev/null), or nothing can
    be written there (a read-only file system, no write permission, no space or no inodes left: found by writing
    one byte into a hidden temporary there and removing it). For a check before long work whose output comes
    last."""
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    cannot = f"cannot write {folder / file}" if file else f"cannot write into {folder}"
    cannot = f"{named}: {cannot}" if named else cannot
    if not existing.is_dir():
        raise AetoolError(f"{cannot}: {existing} is {'a file' if existing.is_file() else 'not a folder'}")
    try:
        with interrupts_held():
            handle, temporary = _create_temporary(existing / "probe")
            try:
                os.write(handle, b"\0")  # a full disk still takes an empty file (an inode), not a byte
            finally:
                os.close(handle)
                temporary.unlink()
    except OSError as err:
        raise AetoolError(f"{cannot}: {err.strerror or err} (in {existing})") from None


def remove_stale_temporaries(folder: Path, *, older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove the hidden temporaries (``.NAME.XXXXXXXX.part``) that a killed writer left in ``folder`` more than
    ``older_than`` seconds ago, once per folder and process; the ones removed. Best effort: a file that cannot be
    listed or removed stays, and never fails a write."""
    if folder in _SWEPT:
        return []
    _SWEPT.add(folder)
    removed = []
    cutoff = time.time() - older_than
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if not _TEMPORARY.fullmatch(entry.name):
                    continue
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    except OSError:
        pass
    return removed


def atomic_write(path: Path, content: Content) -> None:
    """Write one file all or nothing (see :func:`write_files`); raises ``AetoolError`` when it cannot."""
    write_files({path: content})
