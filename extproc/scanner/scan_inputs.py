"""Which inputs `weir scan PATH...` reads: files, directories walked, standard input.

Owns the walk and the excludes:

* `-` is standard input; a file is read as given, even if an exclude would
  match it (as ripgrep does: naming a file is asking for it);
* a directory is walked recursively in a stable (sorted) order. Excludes are
  `.gitignore` patterns (via `pathspec`), matched against the path relative
  to that directory; an excluded directory is not entered. `.git` is never
  entered. Symbolic links met during the walk are not followed, so a walk
  stays inside its tree and cannot loop; special files (FIFOs, sockets,
  devices) are skipped.

A path that does not exist is reported as an `InputError` in its place, and
the walk goes on: one bad argument must not hide the findings of the others.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pathspec

STDIN = "-"
_NEVER_ENTERED = frozenset({".git"})


@dataclass(frozen=True, slots=True)
class Input:
    """One thing to scan: `path` to open (None for standard input) and how to name it."""

    name: str
    path: str | None


@dataclass(frozen=True, slots=True)
class InputError:
    name: str
    reason: str


def exclude_spec(patterns: Sequence[str]) -> pathspec.PathSpec:
    """Compile `.gitignore`-style patterns; an invalid one raises ValueError."""
    try:
        return pathspec.GitIgnoreSpec.from_lines(patterns)
    except (ValueError, TypeError) as exc:  # pathspec's GitWildMatchPatternError is a ValueError
        raise ValueError(f"invalid --exclude pattern: {exc}") from None


def iter_inputs(paths: Sequence[str], excludes: pathspec.PathSpec) -> Iterator[Input | InputError]:
    """Every input named by `paths`, in order, directories expanded."""
    for path in paths:
        if path == STDIN:
            yield Input("<stdin>", None)
            continue
        mode = _mode(os.stat, path)
        if isinstance(mode, InputError):
            yield mode
        elif stat.S_ISDIR(mode):
            yield from _walk(path, excludes)
        else:
            yield Input(os.path.normpath(path), path)


def _mode(stat_of: Callable[[str], os.stat_result], path: str) -> int | InputError:
    try:
        return stat_of(path).st_mode
    except OSError as exc:
        return InputError(path, f"cannot read: {exc.strerror or exc}")


def _walk(root: str, excludes: pathspec.PathSpec) -> Iterator[Input | InputError]:
    def onerror(exc: OSError) -> None:
        errors.append(InputError(exc.filename or root, f"cannot read: {exc.strerror or exc}"))

    errors: list[InputError] = []
    for here, dirs, files in os.walk(root, onerror=onerror):
        yield from errors
        errors.clear()
        rel_here = os.path.relpath(here, root)
        rel_here = "" if rel_here == "." else rel_here.replace(os.sep, "/") + "/"
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in _NEVER_ENTERED
            and not os.path.islink(os.path.join(here, d))
            and not excludes.match_file(rel_here + d + "/")
        )
        for name in sorted(files):
            full = os.path.join(here, name)
            if excludes.match_file(rel_here + name):
                continue
            mode = _mode(os.lstat, full)
            if isinstance(mode, InputError):
                yield mode
            elif stat.S_ISREG(mode):
                yield Input(os.path.normpath(full), full)
    yield from errors
