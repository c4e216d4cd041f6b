"""Inspect and replay dead-lettered messages; ``python -m caesar_common.deadletters``.

A message a consumer could not handle ``delivery_limit`` times, or could not decode at
all, ends in ``<queue>.dlq`` (see :mod:`caesar_common.bus`). Operators list those
messages, fix the cause, and replay them: a replayed message goes back to the queue it
came from only (through the default exchange), so other subscribers of the event never
see it twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from caesar_common.bus import REASON_HEADER, resent, runner_pool_queue
from caesar_common.logging import get_logger

log = get_logger(__name__)

DLQ_SUFFIX = ".dlq"
SERVICE_QUEUES: tuple[str, ...] = (
    "api.job-states",
    "api.pool-status",
    "scheduler.events",
    "monitor.events",
    "monitor.heartbeats",
    "accounting.events",
    "runner.cancels",
    runner_pool_queue("local"),
    runner_pool_queue("slurm"),
)
"""Every queue a caesar-rest service consumes (each has ``<name>.dlq``)."""


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered message, as an operator needs to see it."""

    dead_letter_queue: str
    origin_queue: str
    reason: str
    deaths: int
    message_id: str
    type: str
    routing_key: str
    body: str


def _origin(message: AbstractIncomingMessage, dlq: str) -> tuple[str, str, int]:
    refused = message.headers.get(REASON_HEADER)
    if refused:  # refused by its handler and copied here with the reason (bus.Rejected)
        text = refused.decode() if isinstance(refused, bytes) else str(refused)
        return dlq.removesuffix(DLQ_SUFFIX), f"refused: {text}", 1
    deaths = message.headers.get("x-death") or []
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        first = deaths[0]
        count = first.get("count", 1)
        return str(first.get("queue", "")), str(first.get("reason", "")), int(str(count or 1))
    return dlq.removesuffix(DLQ_SUFFIX), "", 1


async def depths(connection: AbstractConnection, queues: Sequence[str] = SERVICE_QUEUES) -> dict[str, int]:
    """Messages waiting in each existing dead-letter queue (missing ones are left out)."""
    result: dict[str, int] = {}
    for queue in queues:
        channel = await connection.channel()
        try:
            declared = await channel.declare_queue(queue + DLQ_SUFFIX, passive=True)
            result[queue] = int(declared.declaration_result.message_count or 0)
        except aio_pika.exceptions.ChannelClosed:
            pass  # the service never declared it: nothing was dead-lettered there
        finally:
            # Closed by us even when the broker closed it (a missing queue): a robust
            # channel the broker closed is otherwise reopened, and a periodic refresh
            # leaked one channel per missing queue until channel_max (2047) was reached.
            with suppress(Exception):
                await channel.close()
    return result


async def list_dead_letters(
    connection: AbstractConnection, queues: Sequence[str] = SERVICE_QUEUES, *, limit: int = 100
) -> list[DeadLetter]:
    """Peek at up to ``limit`` messages per dead-letter queue; they stay where they are."""
    found: list[DeadLetter] = []
    for queue, count in (await depths(connection, queues)).items():
        if not count:
            continue
        channel = await connection.channel()
        dlq = await channel.get_queue(queue + DLQ_SUFFIX)
        held: list[AbstractIncomingMessage] = []
        for _ in range(min(limit, count)):
            message = await dlq.get(fail=False)
            if message is None:
                break
            held.append(message)
            origin, reason, deaths = _origin(message, dlq.name)
            found.append(
                DeadLetter(
                    dead_letter_queue=dlq.name,
                    origin_queue=origin,
                    reason=reason,
                    deaths=deaths,
                    message_id=message.message_id or "",
                    type=message.type or "",
                    routing_key=message.routing_key or "",
                    body=message.body.decode(errors="replace"),
                )
            )
        for message in held:
            await message.nack(requeue=True)
        await channel.close()
        await _until_back(connection, queue, count)
    return found


async def _until_back(connection: AbstractConnection, queue: str, count: int, *, wait_s: float = 5.0) -> None:
    """Wait (bounded) until the peeked messages are counted in their queue again.

    A requeue is asynchronous: a quorum queue applies it through its log, so a depth read
    right after a peek can miss the messages that were just looked at. Whoever lists and
    then counts (an operator, the monitor) must see them where they were.
    """
    deadline = asyncio.get_running_loop().time() + wait_s
    while (await depths(connection, [queue])).get(queue, 0) < count:
        if asyncio.get_running_loop().time() > deadline:
            log.warning("peeked dead letters not counted back yet", queue=queue, expected=count)
            return
        await asyncio.sleep(0.05)


async def replay(connection: AbstractConnection, queue: str, *, limit: int = 1000) -> int:
    """Move up to ``limit`` messages from ``<queue>.dlq`` back to the queue they came from."""
    channel = await connection.channel(publisher_confirms=True)
    try:
        dlq = await channel.get_queue(queue + DLQ_SUFFIX)
        moved = 0
        while moved < limit:
            message = await dlq.get(fail=False)
            if message is None:
                break
            origin, _, _ = _origin(message, dlq.name)
            headers = {k: v for k, v in message.headers.items() if not k.startswith("x-")}
            await channel.default_exchange.publish(resent(message, headers), routing_key=origin or queue)
            await message.ack()
            moved += 1
        return moved
    finally:
        await channel.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m caesar_common.deadletters", description=__doc__)
    parser.add_argument("--amqp-url", default=None, help="default: CAESAR_AMQP_URL")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="show dead-lettered messages (they stay queued)")
    listing.add_argument("--queue", action="append", help="a service queue (repeatable); default: all")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    again = sub.add_parser("replay", help="send dead-lettered messages back to their queue")
    again.add_argument("queue", help="the service queue, e.g. scheduler.events")
    again.add_argument("--limit", type=int, default=1000)
    return parser


async def _main(args: argparse.Namespace) -> int:
    from caesar_common.settings import ServiceSettings

    url = args.amqp_url or ServiceSettings().amqp_url
    connection = await aio_pika.connect(url)
    try:
        if args.command == "replay":
            moved = await replay(connection, args.queue, limit=args.limit)
            print(f"replayed {moved} message(s) from {args.queue}{DLQ_SUFFIX} to {args.queue}")
            return 0
        letters = await list_dead_letters(connection, args.queue or SERVICE_QUEUES, limit=args.limit)
        for letter in letters:
            if args.json:
                print(json.dumps(asdict(letter)))
            else:
                print(
                    f"{letter.dead_letter_queue}  from={letter.origin_queue}  reason={letter.reason}  "
                    f"deaths={letter.deaths}  type={letter.type}  id={letter.message_id}"
                )
        if not args.json:
            print(f"{len(letters)} dead-lettered message(s)")
        return 0
    finally:
        await connection.close()


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(_main(_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
