"""The paintwire command: run the server, inspect it, and run jobs from scripts.

Exit codes: 0 done; 1 the server rejected or failed the job; 2 bad usage or
input file; 3 cannot reach the server; 130 interrupted (the job is cancelled).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_CONNECT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    return int(args.handler(args) or 0)


def build_parser() -> argparse.ArgumentParser:
    from paintwire.protocol import DEFAULT_URL, __version__

    parser = argparse.ArgumentParser(
        prog="paintwire",
        description="Paintwire: a local image-generation server for Krita, GIMP and scripts.",
        epilog="Start with 'paintwire serve', then 'paintwire info' in another terminal.",
    )
    parser.add_argument("--version", action="version", version=f"paintwire {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the server (127.0.0.1:7878 by default)", description="Run the Paintwire server.")
    from paintwire.server.config import add_arguments

    add_arguments(serve)
    serve.add_argument("-v", "--verbose", action="store_true", help="log every connection and job")
    serve.set_defaults(handler=_serve)

    def client_options(p: argparse.ArgumentParser) -> None:
        # No default here: an absent --url falls back to PAINTWIRE_URL, then DEFAULT_URL (in _client).
        p.add_argument("--url", help=f"server websocket URL (default: PAINTWIRE_URL, else {DEFAULT_URL})")
        p.add_argument("--token", help="the server's token, if it has one (also PAINTWIRE_TOKEN)")

    info = sub.add_parser("info", help="show the server's engines, modes, parameters, models and limits")
    client_options(info)
    info.add_argument("--json", action="store_true", help="print the capabilities as JSON")
    info.add_argument("--refresh", action="store_true", help="have the server look at its model folders again first (a model was just added)")
    info.set_defaults(handler=_info)

    def job_options(p: argparse.ArgumentParser, engine: str | None) -> None:
        client_options(p)
        p.add_argument("-o", "--output", type=Path, required=True, help="PNG to write: the input with the result layers applied")
        p.add_argument("--layers", type=Path, help="also write each result layer as PNG, with its position in layers.json")
        p.add_argument("--engine", default=engine, required=engine is None, help=f"engine to use{f' (default {engine})' if engine else ''}")
        p.add_argument("--model", help="model name (see 'paintwire info')")
        p.add_argument(
            "-p", "--param", action="append", default=[], metavar="NAME=VALUE",
            help="a parameter of the mode, e.g. -p mask_blur=8 (repeatable; see 'paintwire info' for each mode's parameters)",
        )
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    inpaint = sub.add_parser("inpaint", help="regenerate the masked part of an image", description="Regenerate the masked part of IMAGE.")
    inpaint.add_argument("image", type=Path, help="input image (PNG, JPEG, ...)")
    inpaint.add_argument("--mask", type=Path, required=True, help="mask image: white = regenerate, black = keep (greyscale, same size)")
    inpaint.add_argument("--method", help="classical engine: telea, ns or fill")
    job_options(inpaint, "classical")
    inpaint.set_defaults(handler=_job, mode="inpaint")

    upscale = sub.add_parser("upscale", help="enlarge an image", description="Enlarge IMAGE.")
    upscale.add_argument("image", type=Path, help="input image")
    upscale.add_argument("--scale", type=float, help="factor, 1 to 4 (default 2)")
    job_options(upscale, "classical")
    upscale.set_defaults(handler=_job, mode="upscale", mask=None)

    run = sub.add_parser("run", help="run any mode of any engine", description="Run MODE of an engine, e.g. 'paintwire run txt2img --engine diffusers -p prompt=\"a cat\" -o cat.png'.")
    run.add_argument("mode", help="the mode (see 'paintwire info')")
    run.add_argument("--image", type=Path, help="input image, for modes that take one")
    run.add_argument("--mask", type=Path, help="mask image, for modes that take one")
    from .controls import CONTROL_HELP, REFERENCE_HELP, parse_control, parse_reference

    run.add_argument("--control", type=_usage(parse_control), action="append", default=[], metavar="KIND=IMAGE[:S[:START:END]]",
                     help=CONTROL_HELP)
    run.add_argument("--reference", type=_usage(parse_reference), action="append", default=[], metavar="IMAGE[:S]", help=REFERENCE_HELP)
    job_options(run, None)
    run.set_defaults(handler=_job)

    recall = sub.add_parser(
        "recall", help="print the settings saved in an image as 'paintwire run' arguments",
        description="Read the settings saved in IMAGE (Paintwire's own, the WebUI's 'parameters' text, or SwarmUI's) and print "
                    "them as a 'paintwire run' command. With a server to ask, they are fitted to its modes and models.",
    )
    recall.add_argument("image", type=Path, nargs="?", help="a PNG saved by Paintwire, the WebUI, Forge or SwarmUI")
    recall.add_argument("--id", type=int, dest="history_id", help="instead of an image: a result of the server's history, by its id")
    client_options(recall)
    recall.add_argument("--offline", action="store_true", help="do not ask a server; print the settings as saved")
    recall.add_argument("--json", action="store_true", help="print the settings as JSON instead")
    recall.set_defaults(handler=_recall)

    history = sub.add_parser("history", help="look after the server's history (docs/history.md)", description="Look after the server's history.")
    history_sub = history.add_subparsers(dest="history_command", metavar="ACTION", required=True)
    maintain = history_sub.add_parser(
        "maintain", help="delete files without a record and records without a file, then compact the database",
        description="Delete files without a record and records without a file, then compact the database. "
                    "Safe while the server runs.",
    )
    maintain.add_argument("--config", type=Path, help="the server's TOML configuration (also PAINTWIRE_CONFIG), for history_dir")
    maintain.add_argument("--history-dir", dest="history_dir", help="the history's folder (default: the configured one)")
    maintain.set_defaults(handler=_maintain)
    return parser


def _usage(parse: Any) -> Any:
    """An argparse type from a parser that raises ValueError with its own sentence."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = parse.__name__
    return convert


# -- serve ------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import gc
    import logging
    import os
    import signal
    import time

    from paintwire.server.app import start_server
    from paintwire.server.config import ConfigError, load_config, overrides_from_args

    from paintwire.server.logtext import configure as configure_logging

    from paintwire.server import logs

    configure_logging(logging.WARNING)  # until the configuration says where the log goes
    try:
        overrides = overrides_from_args(args)
        if isinstance(overrides.get("engines"), str):
            overrides["engines"] = overrides["engines"].split(",")
        config = load_config(args.config, overrides=overrides)
        log_where = logs.configure(args.verbose, config.log_file)
    except ConfigError as exc:
        print(f"paintwire: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"paintwire: cannot write the log file {config.log_file}: {exc.strerror}.", file=sys.stderr)
        return EXIT_USAGE

    async def serve() -> None:
        try:
            runner, server, port = await start_server(config)
        except ConfigError as exc:  # e.g. a device that is not in this machine
            print(f"paintwire: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None
        except OSError as exc:
            print(f"paintwire: cannot listen on {config.network.host}:{config.network.port}: {exc.strerror}. Is another server running? Try --port.", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None
        for line in logs.serving(server, config.network.host, port):
            print(line, flush=True)
        if server.generated_token:
            print(f"  token (clients must send it): {config.network.token}", flush=True)
        listening = time.monotonic()

        async def when_ready() -> None:
            await server.ready.wait()
            # What the imports made (torch, diffusers and transformers: millions of objects) lives as
            # long as the process: out of the collector's sight, a full collection (after a model is
            # freed) takes milliseconds instead of a second.
            gc.freeze()
            for line in logs.ready(server, log_where, time.monotonic() - listening):
                print(line, flush=True)

        summary = asyncio.create_task(when_ready())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
        except NotImplementedError:
            pass  # Windows: Ctrl-C cancels this task instead (asyncio.run's own handler)
        try:
            await stop.wait()
        except asyncio.CancelledError:
            pass
        summary.cancel()
        print("Paintwire stopping.", flush=True)
        await runner.cleanup()

    asyncio.run(serve())
    # The server has closed what it owns (connections, the history, the engines). The interpreter's
    # own teardown would now free every module and object one by one, seconds with torch loaded,
    # and wait for an engine thread still finishing its step: nothing is left for it to do.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_OK)


# -- client commands --------------------------------------------------------------------


def server_url(given: str | None, environ: Mapping[str, str]) -> str:
    """The server to talk to: --url, else PAINTWIRE_URL, else the default."""
    from paintwire.protocol import DEFAULT_URL

    return given or environ.get("PAINTWIRE_URL") or DEFAULT_URL


def engine_start_seconds() -> float:
    from paintwire.hostkit.status import ENGINE_START_SECONDS

    return ENGINE_START_SECONDS


def _client(args: argparse.Namespace):
    import os

    from paintwire.protocol import Client

    args.url = server_url(args.url, os.environ)
    # updates: a server that has just started pushes its capabilities when its slow engines are ready.
    return Client(args.url, name="paintwire-cli", token=args.token or os.environ.get("PAINTWIRE_TOKEN"), updates=True)


def _info(args: argparse.Namespace) -> int:
    from paintwire.protocol import ClientError, JobFailed

    try:
        with _client(args) as client:
            caps = client.rescan() if args.refresh else client.capabilities
            server = client.protocol.server_name
    except (ClientError, JobFailed) as exc:
        print(f"paintwire: {exc}", file=sys.stderr)
        return EXIT_CONNECT
    if args.json:
        print(json.dumps(caps.to_wire(), indent=2))
        return EXIT_OK
    print(f"{server} at {args.url}")
    lim = caps.limits
    print(f"limits: {lim.max_pixels} pixels per image, {lim.max_message_bytes} bytes per message, {lim.max_queued_per_client} queued jobs per client")
    for engine in caps.engines:
        print(f"\nengine {engine.name}: {engine.label}" + (" (starting)" if engine.starting else ""))
        if engine.notice:
            print(f"  {engine.notice}")
        if engine.device is not None:
            print(f"  device: {engine.device.summary()}")
        for mode in engine.modes:
            inputs = [str(getattr(i.kind, "value", i.kind)) + ("" if i.required else "?") for i in mode.inputs]
            placement = getattr(mode.placement, "value", mode.placement)
            print(f"  mode {mode.name} \u201c{mode.label}\u201d (reads: {', '.join(inputs) or 'nothing'}; result: {placement}): {mode.help}")
            for p in mode.params:
                rng = f" [{p.minimum:g}..{p.maximum:g}]" if p.minimum is not None and p.maximum is not None else ""
                choices = f" {{{', '.join(p.choices)}}}" if p.choices else ""
                print(f"    {p.name} ({p.type.value}{rng}{choices}, default {p.default!r}): {p.help}")
        for c in engine.controls:
            status = f": cannot be used: {c.problem}" if c.problem else f": {c.help}"
            print(f"  control {c.name} \u201c{c.label}\u201d (preprocessors: {', '.join(c.preprocessors)}){status}")
            for p in c.params:
                print(f"    {p.name} ({p.type.value}, default {p.default!r}): {p.help}")
        models = [m for m in caps.models if m.engine == engine.name]
        for m in models:
            family = f", family {m.family}" if m.family and m.family != m.kind else ""
            print(f"  model {m.name} ({m.kind}{family})" + (f": cannot be used: {m.problem}" if m.problem else ""))
            if m.memory and not m.problem:
                print(f"    memory: {m.memory}")
    return EXIT_OK


def _parse_params(args: argparse.Namespace, mode: Any) -> dict[str, Any]:
    """NAME=VALUE pairs typed by the mode's parameter specs (the server validates ranges)."""
    specs = {p.name: p for p in mode.params}
    params: dict[str, Any] = {}
    for item in args.param:
        name, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"-p {item!r}: write NAME=VALUE")
        spec = specs.get(name)
        if spec is None:
            raise ValueError(f"mode {mode.name!r} has no parameter {name!r}; it has: {', '.join(specs) or 'none'}")
        kind = spec.type.value
        if kind in ("int", "seed"):
            params[name] = int(raw)
        elif kind == "float":
            params[name] = float(raw)
        elif kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"{name} takes true or false, got {raw!r}")
            params[name] = raw.lower() in ("true", "1", "yes")
        elif kind == "choice":
            from paintwire.protocol.metadata import fit_value

            try:
                params[name] = fit_value(spec, raw)  # a value, or its label ("DPM++ 2M", as the WebUI writes it)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        else:
            params[name] = raw
    for name in ("method", "scale"):
        value = getattr(args, name, None)
        if value is not None:
            params[name] = value
    return params


def _job(args: argparse.Namespace) -> int:
    from paintwire.protocol import ClientError, JobCancelled, JobFailed, JobRequest

    from .images import load_image, load_mask, save_result
    from .progress import ProgressBar

    from .controls import control_input

    try:
        image, rgba = load_image(args.image) if getattr(args, "image", None) else (None, None)
        mask = load_mask(args.mask) if getattr(args, "mask", None) else None
        size = (image.width, image.height) if image is not None else None
        controls = tuple(control_input(c, size) for c in [*getattr(args, "control", []), *getattr(args, "reference", [])])
    except (OSError, ValueError) as exc:
        print(f"paintwire: {exc}", file=sys.stderr)
        return EXIT_USAGE
    bar = ProgressBar(enabled=not args.quiet)
    job_id: list[str] = []
    try:
        with _client(args) as client:
            client.wait_until_started(engine_start_seconds())
            engine = client.capabilities.engine(args.engine)
            mode = engine.mode(args.mode) if engine else None
            try:
                params = _parse_params(args, mode) if mode else {}
            except ValueError as exc:
                print(f"paintwire: {exc}", file=sys.stderr)
                return EXIT_USAGE
            request = JobRequest(engine=args.engine, mode=args.mode, image=image, mask=mask, model=args.model, params=params,
                                 controls=controls)

            def on_event(event: Any) -> None:
                if event.TYPE == "queued" and not job_id:
                    job_id.append(event.job)
                bar.update(event)

            try:
                result = client.run(request, on_event=on_event)
            except KeyboardInterrupt:
                bar.finish("cancelling")
                if job_id:
                    client.cancel(job_id[0])
                return EXIT_INTERRUPTED
    except JobFailed as exc:
        bar.finish("failed")
        print(f"paintwire: {exc}", file=sys.stderr)
        return EXIT_JOB_FAILED
    except JobCancelled as exc:
        bar.finish("cancelled")
        print(f"paintwire: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ClientError as exc:
        bar.finish("")
        print(f"paintwire: {exc}", file=sys.stderr)
        return EXIT_CONNECT
    bar.finish("done")
    from paintwire.protocol.metadata import labels_of, layer_settings, png_text

    labels = labels_of(mode)
    save_result(result, rgba, args.output, args.layers, lambda layer: png_text(layer_settings(args.engine, args.mode, args.model, layer), labels))
    print(f"wrote {args.output} ({result.width}x{result.height}, {len(result.layers)} layer(s))", file=sys.stderr)
    return EXIT_OK


# -- recall and history -----------------------------------------------------------------


def _recall(args: argparse.Namespace) -> int:
    from paintwire.protocol import ClientError, JobFailed

    import os

    from paintwire.hostkit.recall import history_settings

    from .recall import command_line, read_settings, run_arguments

    if (args.image is None) == (args.history_id is None):
        print("paintwire: give an image file or --id ID (a result of the server's history).", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.history_id is not None:
            recalled = history_settings(server_url(args.url, os.environ), args.token or os.environ.get("PAINTWIRE_TOKEN"), args.history_id)
        else:
            recalled = read_settings(args.image)
    except ValueError as exc:
        print(f"paintwire: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConnectionError as exc:
        print(f"paintwire: {exc} Is it running (paintwire serve)?", file=sys.stderr)
        return EXIT_CONNECT
    if recalled is None:
        print(f"paintwire: {args.image} carries no settings (no Paintwire, WebUI or SwarmUI metadata).", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps({"source": recalled.source, "settings": recalled.settings}, indent=2, ensure_ascii=False))
        return EXIT_OK
    caps = None
    if not args.offline:
        try:
            with _client(args) as client:
                caps = client.wait_until_started(engine_start_seconds())
        except (ClientError, JobFailed) as exc:
            print(f"paintwire: note: {exc} Printing the settings as saved.", file=sys.stderr)
    run_args, notes = run_arguments(recalled, caps)
    for note in notes:
        print(f"paintwire: note: {note}", file=sys.stderr)
    print(command_line(run_args) + " -o OUTPUT.png")
    return EXIT_OK


def _maintain(args: argparse.Namespace) -> int:
    from paintwire.server.config import ConfigError, load_config
    from paintwire.server.history import HistoryStore, history_folder

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"paintwire: {exc}", file=sys.stderr)
        return EXIT_USAGE
    folder = history_folder(args.history_dir or config.history.history_dir)
    if not (folder / "history.sqlite3").exists():
        print(f"paintwire: no history in {folder} (see history_dir in docs/configuration.md).", file=sys.stderr)
        return EXIT_USAGE
    print(f"tidying the history in {folder} (files, records, then compacting the database) ...", flush=True)
    store = HistoryStore(folder)
    try:
        report = store.maintain()
        count, size = store.totals()
    finally:
        store.close()
    print(f"history in {folder}: {count} result(s), {size / 2**20:.1f} MiB of images")
    print(f"  removed {len(report.files_without_record)} file(s) without a record, {len(report.records_without_file)} record(s) without an image")
    print(f"  database compacted: {report.bytes_before / 2**20:.2f} MiB -> {report.bytes_after / 2**20:.2f} MiB")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
