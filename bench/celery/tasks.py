"""Celery app for the Hangar comparison benchmark (bench/celery/bench_celery.py).

Broker: Redis at $REDIS_URL. No result backend (results ignored), as a
production fire-and-forget job would run. Everything the benchmark creates in
Redis lives under names starting with ``hangar_bench:celery`` (the queue, the
kombu unacked bookkeeping and the counter), so cleaning up never touches
another Celery app's keys on the same database.

Completion detection: with no result backend the measurer cannot see when a
task has finished, so ``noop`` INCRs a counter key. That is one Redis command
per job that a real no-op task would not send; bench_celery.py subtracts it
(and its own polling/INFO commands) from redis_cmds_per_job and says so with
``counter_cmds_subtracted=1`` on its RESULT line.
"""

import os
import threading
import time

import redis
from celery import Celery
from celery.signals import worker_ready

REDIS_URL = os.environ["REDIS_URL"]

PREFIX = "hangar_bench:celery"
QUEUE = f"{PREFIX}:queue"
# INCRed once per finished task.
COUNTER_KEY = f"{PREFIX}:done"
# The worker writes time.time() here when it starts consuming; the measurer
# passes a fresh key per run so a stale value can never be mistaken for it.
READY_KEY = os.environ.get("HANGAR_BENCH_READY_KEY", f"{PREFIX}:ready")

app = Celery("tasks", broker=REDIS_URL)
app.conf.update(
    # Fire-and-forget: no result backend, results never stored.
    result_backend=None,
    task_ignore_result=True,
    # A queue of our own instead of the shared default "celery" queue.
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    broker_transport_options={
        "unacked_key": f"{PREFIX}:unacked",
        "unacked_index_key": f"{PREFIX}:unacked_index",
        "unacked_mutex_key": f"{PREFIX}:unacked_mutex",
    },
    broker_connection_retry_on_startup=True,
    # Everything else is Celery's default: acks_late off (ack on receipt),
    # worker_prefetch_multiplier=4, json serializer, task events off
    # (worker heartbeats/gossip/mingle on, as in a default deployment).
)

_clients = {}
_clients_lock = threading.Lock()


def counter_client():
    """One redis-py client per process (prefork children fork after import).

    redis.Redis is thread-safe (its own connection pool), so the threads pool
    shares one client per process.
    """
    pid = os.getpid()
    client = _clients.get(pid)
    if client is None:
        with _clients_lock:
            client = _clients.get(pid)
            if client is None:
                client = redis.Redis.from_url(REDIS_URL)
                _clients[pid] = client
    return client


@app.task(name="hangar_bench.noop", ignore_result=True)
def noop():
    # The task body is empty; the INCR only lets the measurer see completion.
    counter_client().incr(COUNTER_KEY)


@worker_ready.connect
def _report_ready(sender=None, **_kwargs):
    # Sent by Celery right after the consumer starts consuming and just before
    # its event loop's first iteration: pool processes/threads, broker
    # connections, mingle and remote control are all up by now.
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.set(READY_KEY, repr(time.time()), ex=3600)
    finally:
        client.close()
