"""`weir scan`: the scanner as a command for CI pipelines and everyday checks.

Owns argument parsing and the run: which inputs (`scan_inputs`), each read
in blocks through the streaming scanner (`file_scan`), each finding written
as it is found (`scan_report`):

    weir scan [--scanners LIST] [--format jsonl|text|sarif] [--exclude PATTERN]...
              [--baseline FILE] [--strict-utf8] [--redact] PATH...

A finding is its file, line, column, byte offset, scanner, rule and a keyed
hash; the matched text itself is never printed. Exit codes: 0 no findings,
1 findings, 2 an error (a message on stderr; the other inputs are still
scanned and their findings written).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from importlib import metadata
from typing import TYPE_CHECKING, BinaryIO, TextIO

from .rules import SCANNERS, RuleError
from .scan_report import FORMATS, BaselineError, load_baseline

if TYPE_CHECKING:
    import pathspec

    from .scanner import Scanner

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
SALT_ENV = "WEIR_AUDIT_SALT"

_EPILOG = f"""\
exit codes: 0 no findings, 1 findings, 2 an error (unreadable input, bad option).

Each finding carries a keyed hash of the match (HMAC-SHA256), never the match.
The key is ${SALT_ENV}; without it a random key is used and hashes change
from run to run. A baseline needs the key it was made with:

  {SALT_ENV}=... weir scan --format jsonl . > weir-baseline.jsonl
  {SALT_ENV}=... weir scan --baseline weir-baseline.jsonl --format sarif . > weir.sarif
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse would exit; report as a value so main() stays a function.
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="weir scan",
        description=(
            "Scan files, directories (recursively) or standard input for secrets, PII and "
            "prompt injection. Input is read in blocks and findings are written as they "
            "are found, so memory stays bounded whatever the input's size."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="a file, a directory (walked recursively; .git and symbolic links are skipped) "
        "or - for standard input",
    )
    p.add_argument(
        "--scanners",
        default=",".join(SCANNERS),
        metavar="LIST",
        help=f"comma-separated scanners to run (default: {','.join(SCANNERS)})",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="jsonl",
        help="jsonl: one JSON object per finding (default); text: file:line:column: "
        "scanner/rule hash; sarif: a SARIF 2.1.0 log for GitHub or GitLab code scanning",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help=".gitignore-style pattern of paths to skip inside directories, relative to "
        "the directory given (repeatable); files named on the command line are always read",
    )
    p.add_argument(
        "--exclude-from",
        action="append",
        default=[],
        metavar="FILE",
        help="read more exclude patterns from FILE, .gitignore syntax (e.g. .gitignore)",
    )
    p.add_argument(
        "--baseline",
        metavar="FILE",
        help="leave out findings whose rule and hash an earlier jsonl or sarif report "
        f"lists (needs ${SALT_ENV}, the key that report was made with)",
    )
    p.add_argument(
        "--strict-utf8",
        action="store_true",
        help="treat input that is not UTF-8 as an error (exit 2) instead of scanning it "
        "with the invalid bytes replaced by U+FFFD and a warning",
    )
    p.add_argument(
        "--redact",
        action="store_true",
        help="instead of findings, print the one input's text with each finding replaced "
        "by [REDACTED:<rule>]",
    )
    return p


def _version() -> str:
    try:
        return metadata.version("weir")
    except metadata.PackageNotFoundError:
        return "0.0.0"


class _Run:
    """One invocation's state: the exit status and where messages go."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.errors = 0
        self.findings = 0

    def error(self, msg: str) -> None:
        self.errors += 1
        print(f"weir scan: {msg}", file=self.err)

    def warn(self, msg: str) -> None:
        print(f"weir scan: warning: {msg}", file=self.err)

    @property
    def code(self) -> int:
        if self.errors:
            return EXIT_ERROR
        return EXIT_FINDINGS if self.findings else EXIT_CLEAN


def main(argv: list[str]) -> int:
    """Run `weir scan` with `argv` (the arguments after `scan`); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_intermixed_args(argv)
    except _UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"weir scan: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except SystemExit as exc:  # --help
        return EXIT_CLEAN if not exc.code else EXIT_ERROR
    run = _Run(sys.stderr)

    names = [n.strip() for n in args.scanners.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCANNERS]
    if not names or unknown:
        run.error(
            f"unknown scanner(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(SCANNERS)}"
        )
        return run.code
    if args.redact and (len(args.paths) != 1 or os.path.isdir(args.paths[0])):
        run.error("--redact takes exactly one file or -")
        return run.code

    from .scan_inputs import exclude_spec

    patterns = list(args.exclude)
    for path in args.exclude_from:
        try:
            with open(path, encoding="utf-8") as fh:
                patterns.extend(fh.read().splitlines())
        except (OSError, UnicodeDecodeError) as exc:
            run.error(f"cannot read --exclude-from {path}: {getattr(exc, 'strerror', exc)}")
            return run.code
    try:
        excludes = exclude_spec(patterns)
    except ValueError as exc:
        run.error(str(exc))
        return run.code

    baseline: frozenset[tuple[str, str]] = frozenset()
    if args.baseline:
        if not os.environ.get(SALT_ENV):
            run.error(
                f"--baseline needs stable hashes: set {SALT_ENV} to the key the baseline "
                "was made with"
            )
            return run.code
        try:
            baseline = load_baseline(args.baseline)
        except BaselineError as exc:
            run.error(str(exc))
            return run.code

    # Imported late so that usage errors answer without loading numba.
    from .scanner import Scanner

    try:
        scanner = Scanner.for_scanners(names)
    except RuleError as exc:
        run.error(str(exc))
        return run.code

    try:
        if args.redact:
            _redact(scanner, args.paths[0], args.strict_utf8, run)
        else:
            _scan(scanner, args, excludes, baseline, run)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as grep does.
        sys.stderr.close()
    return run.code


def _open(path: str | None) -> contextlib.AbstractContextManager[BinaryIO]:
    if path is None:
        # Standard input is not ours to close.
        return contextlib.nullcontext(sys.stdin.buffer)
    return open(path, "rb")


def _scan(
    scanner: Scanner,
    args: argparse.Namespace,
    excludes: pathspec.PathSpec,
    baseline: frozenset[tuple[str, str]],
    run: _Run,
) -> None:
    from .file_scan import FileScan, NotUtf8Error
    from .scan_inputs import InputError, iter_inputs
    from .scan_report import make_writer

    out = sys.stdout
    writer = make_writer(args.format, out, scanner.rules, _version())
    for item in iter_inputs(args.paths, excludes):
        if isinstance(item, InputError):
            run.error(f"{item.name}: {item.reason}")
            writer.warning(item.name, item.reason)
            continue
        try:
            with _open(item.path) as fh:
                scan = FileScan(scanner, fh, strict_utf8=args.strict_utf8)
                for f in scan:
                    if (f.rule, f.hash) in baseline:
                        continue
                    run.findings += 1
                    writer.finding(item.name, f)
                out.flush()
        except NotUtf8Error as exc:
            run.error(
                f"{item.name}: {exc} (without --strict-utf8 it is scanned with "
                "invalid bytes replaced)"
            )
            writer.warning(item.name, str(exc))
            continue
        except BrokenPipeError:
            raise
        except OSError as exc:
            run.error(f"{item.name}: cannot read: {exc.strerror or exc}")
            writer.warning(item.name, f"cannot read: {exc.strerror or exc}")
            continue
        if scan.invalid_bytes:
            message = (
                f"not valid UTF-8: {scan.invalid_bytes} invalid byte(s) replaced with U+FFFD, "
                f"the first at byte offset {scan.first_invalid_offset}"
            )
            run.warn(f"{item.name}: {message}")
            writer.warning(item.name, message)
    writer.close(succeeded=run.errors == 0)


def _redact(scanner: Scanner, path: str, strict: bool, run: _Run) -> None:
    from .file_scan import NotUtf8Error, redact_to

    name = "<stdin>" if path == "-" else path
    sys.stdout.flush()
    try:
        with _open(None if path == "-" else path) as fh:
            run.findings = redact_to(scanner, fh, sys.stdout.buffer, strict_utf8=strict)
    except NotUtf8Error as exc:
        run.error(f"{name}: {exc}")
    except BrokenPipeError:
        raise
    except OSError as exc:
        run.error(f"cannot read {name}: {exc.strerror or exc}")
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
