"""`weir scan`: the scanner as a command for CI pipelines and outside checks.

Owns argument parsing, input decoding and output formatting:

    weir scan [--scanners secrets,pii,prompt-injection] [--redact] FILE|-

One JSON object per finding per line (`scanner`, `rule`, `start`, `end`,
code-point offsets into the decoded text), or with `--redact` the redacted
text. The matched text itself is never printed. Exit codes: 0 no findings,
1 findings, 2 error (message on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys

from .rules import SCANNERS, RuleError

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse would exit; report as a value so main() stays a function.
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def _build_parser() -> _Parser:
    p = _Parser(
        prog="weir scan",
        description="Scan text for secrets, PII and prompt injection.",
    )
    p.add_argument(
        "--scanners",
        default=",".join(SCANNERS),
        help=f"comma-separated scanners to run (default: {','.join(SCANNERS)})",
    )
    p.add_argument(
        "--redact",
        action="store_true",
        help="print the text with findings replaced by [REDACTED:<rule>] instead of findings",
    )
    p.add_argument("file", metavar="FILE|-", help="file to scan, or - for standard input")
    return p


def _err(msg: str) -> int:
    print(f"weir scan: {msg}", file=sys.stderr)
    return EXIT_ERROR


def main(argv: list[str]) -> int:
    """Run `weir scan` with `argv` (the arguments after `scan`); return the exit code."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        parser.print_usage(sys.stderr)
        return _err(str(exc))
    except SystemExit as exc:  # --help
        return EXIT_CLEAN if not exc.code else EXIT_ERROR

    names = [n.strip() for n in args.scanners.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCANNERS]
    if not names or unknown:
        return _err(
            f"unknown scanner(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(SCANNERS)}"
        )

    source = "<stdin>" if args.file == "-" else args.file
    try:
        if args.file == "-":
            raw = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as fh:
                raw = fh.read()
    except OSError as exc:
        return _err(f"cannot read {source}: {exc.strerror or exc}")

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _err(f"{source}: invalid UTF-8 at byte offset {exc.start}")

    # Imported late so that usage errors answer without loading numba.
    from .scanner import Scanner

    try:
        scanner = Scanner.for_scanners(names)
    except RuleError as exc:
        return _err(str(exc))
    redacted, findings = scanner.scan_and_redact(text)

    out = sys.stdout
    try:
        if args.redact:
            out.flush()
            sys.stdout.buffer.write(redacted.encode("utf-8", "surrogatepass"))
            sys.stdout.buffer.flush()
        else:
            for f in findings:
                out.write(
                    json.dumps(
                        {"scanner": f.scanner, "rule": f.rule, "start": f.start, "end": f.end}
                    )
                    + "\n"
                )
            out.flush()
    except BrokenPipeError:
        return EXIT_FINDINGS if findings else EXIT_CLEAN
    return EXIT_FINDINGS if findings else EXIT_CLEAN


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
