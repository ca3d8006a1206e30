"""The ``clearmark`` command line: ``detect``, ``clean``, ``report`` and ``serve``.

Only this module touches the terminal: progress bars (on a terminal, quiet otherwise) and the
summary go to stderr, so ``clearmark detect`` can stream JSON lines on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from . import __version__
from ._client import DEFAULT_RATE, Client
from ._detect import DetectorConfig
from ._errors import ClearmarkError
from ._fetch import parse_networks
from ._folder import MIN_IMAGES
from ._imageio import LoadLimits
from ._marks import MarkStore, learn_marks, learn_template, load_template, save_template
from ._pipeline import (
    CleanTask,
    DetectTask,
    Input,
    Journal,
    Record,
    default_jobs,
    find_inputs,
    is_done,
    is_image_name,
    remove_stale_temp_files,
    run,
)
from ._protocol import DEFAULT_BASE_URL, resolve_token
from ._remote import PrepareTask, run_remote
from ._remove import LocalRemover
from ._report import record_run, summarize, write_report

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A command line that cannot run; reported in one line with exit status 2."""


def main(argv: list[str] | None = None, *, console: Console | None = None) -> int:
    """Run the command line; ``console`` (for tests) replaces the stderr console."""
    parser = _parser()
    args = parser.parse_args(argv)
    if hasattr(args, "jobs"):  # Ray sizes its own pool unless told
        args.jobs_given = args.jobs is not None
        args.jobs = args.jobs or default_jobs()
    # one message, one line: logs stay greppable
    console = console or Console(stderr=True, soft_wrap=True)
    try:
        return int(args.handler(args, console))
    except UsageError as exc:
        console.print(f"clearmark {args.command}: error: {exc}", markup=False, highlight=False)
        return EXIT_USAGE
    except KeyboardInterrupt:
        console.print("interrupted; run the same command again to resume", markup=False)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clearmark", description=(
        "Find and remove visible watermarks in images."))
    parser.add_argument("--version", action="version", version=f"clearmark {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    detect = commands.add_parser("detect", help="find watermarks; one JSON line per image")
    detect.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders")
    detect.add_argument("--jsonl", type=Path, metavar="FILE", help="write JSON lines here "
                        "instead of stdout")
    detect.add_argument("--masks", type=Path, metavar="DIR",
                        help="write a 0/255 PNG mask per watermarked image under DIR")
    _common(detect)
    detect.set_defaults(handler=_detect)

    clean = commands.add_parser("clean", help="write every image of SRC, cleaned, to DST")
    clean.add_argument("src", type=Path, metavar="SRC", help="folder (or file) to clean")
    clean.add_argument("--out", type=Path, required=True, metavar="DST",
                       help="output folder (created; never inside SRC)")
    clean.add_argument("--remover", choices=("local", "api"), default=None,
                       help="where removal runs (default: api when a token or --api-base "
                       "is given, else local, offline)")
    clean.add_argument("--api-base", metavar="URL", help="removal endpoint base URL "
                       f"(default: {DEFAULT_BASE_URL})")
    clean.add_argument("--token-file", type=Path, metavar="FILE",
                       help="file holding the API token (else CLEARMARK_TOKEN)")
    clean.add_argument("--rate", type=float, default=DEFAULT_RATE, metavar="R",
                       help=f"API requests per second (default: {DEFAULT_RATE:g})")
    clean.add_argument("--jsonl", type=Path, metavar="FILE", help="also write one JSON line "
                       "per image here")
    clean.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                       help="skip images a previous run finished (default: on)")
    clean.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="where the work runs: this machine's processes, or Ray Data")
    clean.add_argument("--address", metavar="ADDR", help="Ray cluster address (with --engine "
                       "ray; default: a local cluster)")
    clean.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                       help="make thumbnails and write DST/report.html, the review page "
                       "(default: on)")
    _common(clean)
    clean.set_defaults(handler=_clean)

    report = commands.add_parser("report", help="(re)write DST/report.html, the review page "
                                 "of a clean run")
    report.add_argument("dst", type=Path, metavar="DST", help="the folder a clean run wrote")
    report.add_argument("--threshold", type=float, default=None, metavar="T",
                        help="the detector threshold that 'low confidence' is measured from "
                        "(default: the last run's)")
    report.set_defaults(handler=_report)

    learn = commands.add_parser("learn", help="learn the mark a folder's images share, as a "
                                "template for --template")
    learn.add_argument("folder", type=Path, metavar="FOLDER",
                       help="at least 8 images carrying one mark at one place")
    learn.add_argument("--out", type=Path, required=True, metavar="FILE",
                       help="the template file to write (.npz)")
    learn.set_defaults(handler=_learn_template)
    _serve_parser(commands)
    return parser


def _serve_parser(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the removal endpoint (needs the server "
                                "extra)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on "
                       "(default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks "
                       "a free one)")
    serve.add_argument("--token-file", type=Path, metavar="FILE", help="accepted tokens, one "
                       "per line (else CLEARMARK_SERVER_TOKENS, comma-separated)")
    serve.add_argument("--public-url", metavar="URL", help="base of result URLs (default: "
                       "the URL a request came in on)")
    serve.add_argument("--workers", type=_positive_int, default=default_jobs(), metavar="N",
                       help="removals at once (default: all cores)")
    serve.add_argument("--rate-limit", type=float, metavar="R", help="API requests per "
                       "second per token (default: no limit)")
    serve.add_argument("--allow-fetch", action="append", default=[], metavar="CIDR",
                       help="let image_url/mask_url/callback_url reach this private network "
                       "(repeatable; by default private addresses are refused)")
    serve.set_defaults(handler=_serve)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=_positive_int, default=None, metavar="N",
                        help="worker processes (default: all cores)")
    parser.add_argument("--max-pixels", type=_positive_int, default=LoadLimits().max_pixels,
                        metavar="N", help="refuse images with more pixels (bomb guard)")
    decision = parser.add_mutually_exclusive_group()
    decision.add_argument("--threshold", type=float, default=None, metavar="T",
                          help="score from which an image counts as watermarked "
                          f"(default {DetectorConfig().threshold})")
    decision.add_argument("--sensitivity", choices=tuple(SENSITIVITY), default=None,
                          help="low: fewer false positives, more misses; high: the other way "
                          "(thresholds " + ", ".join(f"{k} {v}" for k, v in SENSITIVITY.items())
                          + ")")
    parser.add_argument("--template", action="append", type=Path, default=[], metavar="FILE",
                        help="also look for this mark (made by 'clearmark learn') anywhere, "
                        "at any size; repeatable")
    parser.add_argument("--folder-evidence", action=argparse.BooleanOptionalAction,
                        default=True, help="learn marks shared by the images of a folder "
                        "and look for them too (default: on)")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


# Thresholds chosen on the tuning set (bench/detect.py --set tune --sweep): low keeps hard
# clean photos (signs, pages, cartoons) at ~5 % flagged for ~3 points less corner text; high
# finds ~4 points more corner text and flags ~10 % of them.
SENSITIVITY = {"low": 0.7, "normal": DetectorConfig().threshold, "high": 0.3}


def _detector_config(args: argparse.Namespace) -> DetectorConfig:
    threshold = args.threshold if args.threshold is not None else \
        SENSITIVITY[args.sensitivity or "normal"]
    templates = tuple(str(path.resolve()) for path in args.template)
    for path in templates:
        try:
            load_template(path)
        except ClearmarkError as exc:
            raise UsageError(str(exc)) from exc
    try:
        return DetectorConfig(threshold=threshold, templates=templates)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


# -- detect -----------------------------------------------------------------------------------


def _detect(args: argparse.Namespace, console: Console) -> int:
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise UsageError(f"no such file or folder: {missing[0]}")
    limits = LoadLimits(max_pixels=args.max_pixels)
    started, counts = time.perf_counter(), Counter[str]()
    with ExitStack() as stack:
        marks = None
        if args.folder_evidence and any(Path(p).is_dir() for p in args.paths):
            marks = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="clearmark-")))
        task = DetectTask(config=_detector_config(args), masks=args.masks, limits=limits,
                          marks=marks)
        out = _open_output(stack, args.jsonl)
        total = _count(args.paths) if console.is_terminal else None
        progress = stack.enter_context(_progress(console, "detect", total))
        learn = MarkStore(marks) if marks is not None else None
        for record in run(task, find_inputs(args.paths), jobs=args.jobs, learn=learn):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
            counts["seen"] += 1
            counts["failed" if record["error"] else
                   "watermarked" if record["watermarked"] else "clean"] += 1
            progress.advance()
    _summary(console, "detect", counts, ("seen", "watermarked", "clean", "failed"), started)
    return EXIT_OK


# -- clean ------------------------------------------------------------------------------------


def _clean(args: argparse.Namespace, console: Console) -> int:
    src, dst = args.src, args.out
    _check_clean_paths(src, dst)
    client = _api_client(args)
    limits = LoadLimits(max_pixels=args.max_pixels)
    dst.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(dst)
    marks = None
    if args.folder_evidence and src.is_dir():
        marks = dst / ".clearmark" / "marks"
        if client is not None or args.engine == "ray":  # these cannot learn as they go
            _learn(console, [src], MarkStore(marks), limits, mattes=client is None)
    task = CleanTask(src=src if src.is_dir() else src.parent, dst=dst,
                     config=_detector_config(args), remover=LocalRemover(), limits=limits,
                     marks=marks, thumbs=args.report)
    journal = Journal(dst)
    previous = journal.load() if args.resume else {}
    started, counts = time.perf_counter(), Counter[str]()
    failures: list[str] = []
    with ExitStack() as stack:
        stack.callback(journal.close)
        report = _open_output(stack, args.jsonl) if args.jsonl else None
        total = _count([src]) if console.is_terminal else None
        progress = stack.enter_context(_progress(console, "clean", total))

        def account(record: Record, resumed: bool) -> None:
            if not resumed:
                journal.append(record)
            if report is not None:
                report.write(json.dumps(_public(record, resumed), ensure_ascii=False) + "\n")
            _tally(counts, failures, record, resumed)
            progress.advance()

        def todo() -> Iterator[Input]:
            for item in find_inputs([src]):
                record = previous.get(str(item.rel))
                if is_done(record, item, dst):
                    assert record is not None
                    account(record, resumed=True)
                else:
                    yield item

        if client is not None:
            records = run_remote(PrepareTask(task), todo(), client, jobs=args.jobs)
        elif args.engine == "ray":
            records = _ray_engine()(task, todo(), address=args.address,
                                    workers=args.jobs if args.jobs_given else None)
        else:
            records = run(task, todo(), jobs=args.jobs,
                          learn=MarkStore(marks) if marks is not None else None)
        for record in records:
            account(record, resumed=False)
    record_run(dst, seconds=time.perf_counter() - started, threshold=task.config.threshold,
               seen=counts["seen"], resumed=counts["resumed"])
    tail = _write_report(console, dst, task.config.threshold) if args.report else ""
    counts["copied unchanged"] = counts["copied"]
    _summary(console, "clean", counts, ("seen", "watermarked", "cleaned", "copied unchanged",
                                        "failed", "skipped", "resumed"), started, tail)
    for line in failures[:20]:
        console.print(f"  failed: {line}", markup=False, highlight=False)
    if len(failures) > 20:
        console.print(f"  ... and {len(failures) - 20} more (see the JSONL report)",
                      markup=False)
    return EXIT_OK


def _api_client(args: argparse.Namespace) -> Callable[..., Client] | None:
    """How to make the endpoint client, or None for the local remover.

    Without ``--remover``, the endpoint is used when a token or ``--api-base`` is given.
    """
    try:
        token = resolve_token(None, args.token_file)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    choice = args.remover or ("api" if token is not None or args.api_base else "local")
    if choice == "local":
        if args.api_base:
            raise UsageError("--api-base is for the API remover; drop --remover local")
        return None
    if token is None:
        raise UsageError("the API remover needs a token: set CLEARMARK_TOKEN or pass "
                         "--token-file FILE")
    base = args.api_base or DEFAULT_BASE_URL
    if not base.startswith(("http://", "https://")):
        raise UsageError(f"--api-base must be an http(s) URL, got {base!r}")
    if not args.rate > 0:
        raise UsageError("--rate must be a positive number of requests per second")
    return partial(Client, base, token=token.reveal(), rate=args.rate, verify=False)


def _write_report(console: Console, dst: Path, threshold: float) -> str:
    """The review page of every record in the journal (this run's and resumed ones): its
    path for the summary line. A page that cannot be written is said, not fatal: the images
    are all accounted for."""
    try:
        return f"; review: {write_report(dst, Journal(dst).load().values(), threshold=threshold)}"
    except (ClearmarkError, OSError) as exc:
        console.print(f"clearmark clean: could not write the report: {exc}", markup=False,
                      highlight=False)
        return ""


# -- report -----------------------------------------------------------------------------------


def _report(args: argparse.Namespace, console: Console) -> int:
    journal = Journal(args.dst)
    if not journal.path.is_file():
        raise UsageError(f"{args.dst} holds no clean run (no {journal.path})")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise UsageError("--threshold must be in [0, 1]")
    records = list(journal.load().values())
    try:
        page = write_report(args.dst, records, threshold=args.threshold)
    except ClearmarkError as exc:
        console.print(f"clearmark report: {exc}", markup=False, highlight=False)
        return EXIT_FAILED
    counts = summarize(records, 0.5)
    parts = ", ".join(f"{counts[key]} {key}" for key in ("seen", "cleaned", "unchanged",
                                                          "failed", "skipped"))
    console.print(f"clearmark report: {parts}; wrote {page}", markup=False, highlight=False,
                  soft_wrap=True)
    return EXIT_OK


# -- serve ------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace, console: Console) -> int:
    try:
        from . import _server
    except ImportError:
        raise UsageError("the server needs extra packages: pip install 'clearmark[server]'") \
            from None
    try:
        tokens = _server.load_server_tokens(args.token_file)
        config = _server.ServerConfig(tokens=tokens, public_url=args.public_url,
                                      workers=args.workers, rate_limit=args.rate_limit,
                                      allow=parse_networks(args.allow_fetch))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        sock = _server.bind(args.host, args.port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    console.print(f"clearmark serve: listening on http://{shown}:{port} "
                  f"({len(tokens)} token{'s' if len(tokens) != 1 else ''})", markup=False,
                  highlight=False)
    _server.serve(_server.create_app(config), sock)
    return EXIT_OK


def _learn(console: Console, folders: list[Any], store: MarkStore, limits: LoadLimits,
           mattes: bool = False) -> None:
    """The folder-evidence pass: learn each folder's shared marks before the main pass (and
    with ``mattes``, each mark's matte for the local remover)."""
    images = (item.path for item in find_inputs(folders) if is_image_name(item.rel))
    with _progress(console, "learn", None) as progress:
        learn_marks(images, store, limits, on_file=progress.advance, mattes=mattes)


def _learn_template(args: argparse.Namespace, console: Console) -> int:
    if not args.folder.is_dir():
        raise UsageError(f"{args.folder} is not a folder")
    images = (item.path for item in find_inputs([args.folder]) if is_image_name(item.rel))
    mark = learn_template(images, LoadLimits())
    if mark is None:
        console.print(f"clearmark learn: no mark shared by {MIN_IMAGES} or more images of the "
                      f"same shape in {args.folder}", markup=False, highlight=False)
        return EXIT_FAILED
    save_template(mark, args.out)
    x, y, w, h = mark.box
    console.print(f"clearmark learn: a {w}x{h} mark at ({x}, {y}) of {mark.shape[1]}x"
                  f"{mark.shape[0]}, from {mark.support} images; written to {args.out}",
                  markup=False, highlight=False)
    return 0


def _ray_engine() -> Any:
    """clearmark.ray's engine, or a usage error carrying its one-line install hint."""
    try:
        from . import ray as clearmark_ray
    except ImportError as exc:
        raise UsageError(str(exc)) from exc
    return clearmark_ray.run


def _check_clean_paths(src: Path, dst: Path) -> None:
    if not src.exists():
        raise UsageError(f"no such file or folder: {src}")
    source = src.resolve() if src.is_dir() else src.resolve().parent
    target = dst.resolve()
    if target == source or target.is_relative_to(source):
        raise UsageError(f"--out {dst} is inside SRC {src}; choose a folder outside it")
    if dst.exists() and not dst.is_dir():
        raise UsageError(f"--out {dst} exists and is not a folder")


def _tally(counts: Counter[str], failures: list[str], record: Record, resumed: bool) -> None:
    counts["seen"] += 1
    counts[record["status"]] += 1
    if record.get("watermarked"):
        counts["watermarked"] += 1
    if resumed:
        counts["resumed"] += 1
    if record["status"] == "failed":
        failures.append(str(record["error"]))


def _public(record: Record, resumed: bool) -> Record:
    """The report's view of a record: no journal bookkeeping."""
    public = {k: v for k, v in record.items() if k not in ("fingerprint", "rel")}
    public["resumed"] = resumed
    return public


# -- terminal ---------------------------------------------------------------------------------


def _open_output(stack: ExitStack, path: Path | None) -> IO[str]:
    if path is None:
        return sys.stdout
    path.parent.mkdir(parents=True, exist_ok=True)
    return stack.enter_context(open(path, "w", encoding="utf-8"))


def _count(paths: list[Any]) -> int:
    return sum(1 for _ in find_inputs(paths))


class _Bar:
    """A progress bar that is a no-op off a terminal."""

    def __init__(self, progress: Progress | None, task_id: Any) -> None:
        self._progress, self._task_id = progress, task_id

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task_id)


class _progress:
    def __init__(self, console: Console, label: str, total: int | None) -> None:
        self._progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                                  transient=True) if console.is_terminal else None
        self._total = total

    def __enter__(self) -> _Bar:
        if self._progress is None:
            return _Bar(None, None)
        self._progress.start()
        return _Bar(self._progress, self._progress.add_task("", total=self._total))

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _summary(console: Console, command: str, counts: Counter[str], keys: tuple[str, ...],
             started: float, tail: str = "") -> None:
    seconds = time.perf_counter() - started
    parts = ", ".join(f"{counts[key]} {key}" for key in keys)
    console.print(f"clearmark {command}: {parts} in {seconds:.1f} s{tail}", markup=False,
                  highlight=False, soft_wrap=True)  # one line, whatever the width
