"""The ``tts-gateway`` command: ``serve`` the gateway, ``say`` text through one, list ``voices``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tts-gateway`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tts-gateway", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="config file (default: $TTSGW_CONFIG or built-in)")
    serve.add_argument("--host", help="address to listen on (overrides server.host)")
    serve.add_argument("--port", type=int, help="port to listen on (overrides server.port)")
    serve.set_defaults(run=_serve)

    say = commands.add_parser("say", help="speak text through a gateway; save or play the audio")
    say.add_argument("text", nargs="?", help="the text (default: --file, or standard input)")
    say.add_argument("--file", type=Path, help="read the text from this file")
    say.add_argument("--out", type=Path, help="write .ogg (Ogg Opus) or .wav (PCM)")
    say.add_argument(
        "--play",
        action="store_true",
        help="play on the sound card (needs the 'play' extra: pip install 'tts-gateway[play]')",
    )
    say.add_argument(
        "--events", type=Path, help="write every message but audio here, one JSON object a line"
    )
    say.add_argument("--url", default="ws://127.0.0.1:8765/v1/stream", help="gateway stream URL")
    say.add_argument("--backend", help="backend name (default: the gateway's)")
    say.add_argument("--voice", help="voice id (default: the backend's)")
    say.add_argument("--lang", help="language, e.g. en-us")
    say.add_argument("--speed", type=float, help="speaking rate, 0.5 to 2.0")
    say.add_argument(
        "--format", choices=["opus", "pcm16", "ulaw", "alaw"], help="audio format on the wire"
    )
    say.add_argument("--ssml", action="store_true", help="read the text as SSML")
    say.add_argument(
        "--lexicon",
        type=Path,
        help="a JSON file: the session's pronunciation lexicon (a list of entries)",
    )
    say.add_argument(
        "--simulate-llm",
        type=float,
        metavar="TOKENS_PER_S",
        help="send the text a few characters at a time at this many tokens per second",
    )
    say.set_defaults(run=_say)

    voices = commands.add_parser("voices", help="list a gateway's voices")
    voices.add_argument("--url", default="http://127.0.0.1:8765", help="gateway base URL")
    voices.set_defaults(run=_voices)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError, load_config, with_server
    from gateway.server.run import run_server

    try:
        config = load_config(args.config)
        overrides = {"host": args.host, "port": args.port}
        config = with_server(config, **{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        print(f"tts-gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    run_server(config)
    return 0


def _say(args: argparse.Namespace) -> int:
    from tts_gateway_client.client import ClientError
    from tts_gateway_client.playback import PlaybackUnavailable
    from tts_gateway_client.say import SayOptions, print_report, say

    if args.out is not None and args.out.suffix.lower() not in (".ogg", ".opus", ".wav"):
        print("tts-gateway say: --out must end in .ogg or .wav", file=sys.stderr)
        return 2
    if args.text is not None:
        text = args.text
    elif args.file is not None:
        text = args.file.read_text(encoding="utf-8")
    else:
        text = sys.stdin.read()
    if not text.strip():
        print("tts-gateway say: no text to speak", file=sys.stderr)
        return 2
    try:
        lexicon = json.loads(args.lexicon.read_text(encoding="utf-8")) if args.lexicon else None
    except (OSError, ValueError) as exc:
        print(f"tts-gateway say: cannot read the lexicon {args.lexicon}: {exc}", file=sys.stderr)
        return 2
    options = SayOptions(
        text=text,
        out=args.out,
        url=args.url,
        backend=args.backend,
        voice=args.voice,
        lang=args.lang,
        speed=args.speed,
        format=args.format,
        simulate_llm_tps=args.simulate_llm,
        events=args.events,
        play=args.play,
        progress=sys.stderr.isatty(),
        ssml=args.ssml,
        lexicon=lexicon,
    )
    try:
        report = asyncio.run(say(options))
    except PlaybackUnavailable as exc:
        print(f"tts-gateway say: cannot play: {exc}", file=sys.stderr)
        return 2
    except ClientError as exc:
        print(f"tts-gateway say: {exc}", file=sys.stderr)
        return 1
    print_report(report, args.out)
    return 1 if report.errors or report.done is None else 0


def _voices(args: argparse.Namespace) -> int:
    import httpx

    try:
        response = httpx.get(f"{args.url.rstrip('/')}/v1/voices", timeout=10)
    except httpx.HTTPError as exc:
        print(f"tts-gateway voices: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    body = response.json()
    if response.status_code != 200:
        print(f"tts-gateway voices: {json.dumps(body.get('backends'))}", file=sys.stderr)
        return 1
    for voice in body["voices"]:
        print(
            f"{voice['backend']:<12} {voice['id']:<20} {voice.get('language') or '-':<8} "
            f"{voice.get('gender') or '-'}"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
