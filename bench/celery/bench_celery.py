#!/usr/bin/env python3
"""Celery 5 + Redis broker, measured the way bench/src/main.rs measures Hangar.

Phases (N = --jobs, the no-op task ``tasks.noop``):

1. enqueue: ``noop.delay()`` N times with no worker running;
   enqueue_per_s = N / time.
2. drain: start ``celery worker`` on that N-job backlog; drain_per_s =
   N / (time from the worker reporting ready until the N-th task finished).
3. end-to-end: with the pool running, ``noop.delay()`` N more times;
   e2e_per_s = N / (time from the first enqueue until all N finished).
   Redis commands per job are counted over this phase only, from the sum of
   ``calls=`` over every ``cmdstat_*`` line of ``INFO commandstats``.

Prints:
  RESULT system=celery pool=<pool> c=<C> enqueue_per_s=<x> e2e_per_s=<y>
         drain_per_s=<z> redis_cmds_per_job=<k> counter_cmds_subtracted=1
(one line), then BREAKDOWN (commands per job by command, e2e phase), DETAIL
(CPU seconds per phase) and, unless --no-bulk, a separate BULK line for the
kombu 5.7 pipelined publish path (``Producer.batch``), which is not part of the
main figures.

Run it against a Redis nobody else uses: commands are counted server-wide.
Only keys named ``hangar_bench:celery...`` (and kombu's two binding sets of that
queue) are deleted; the database is never flushed.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))


class BenchError(Exception):
    pass


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL"),
                   help="broker, e.g. redis://127.0.0.1:6390/0 (default $REDIS_URL)")
    p.add_argument("--jobs", type=int, default=int(os.environ.get("JOBS", "20000")),
                   help="jobs per phase (default $JOBS or 20000)")
    p.add_argument("--concurrency", type=int,
                   default=int(os.environ.get("CONCURRENCY", "2")),
                   help="worker --concurrency (default $CONCURRENCY or 2)")
    p.add_argument("--pool", choices=("prefork", "threads"),
                   default=os.environ.get("POOL", "prefork"),
                   help="worker --pool (default $POOL or prefork)")
    p.add_argument("--timeout", type=float,
                   default=float(os.environ.get("BENCH_TIMEOUT", "300")),
                   help="limit in seconds for each phase / wait (default 300)")
    p.add_argument("--poll-interval", type=float, default=0.005,
                   help="seconds between counter polls (default 0.005)")
    p.add_argument("--bulk-batch", type=int, default=1000,
                   help="max pipelined commands per flush for the BULK line")
    p.add_argument("--no-bulk", action="store_true",
                   help="skip the separate Producer.batch() enqueue measurement")
    a = p.parse_args()
    if not a.redis_url:
        p.error("--redis-url or $REDIS_URL is required")
    if a.jobs <= 0 or a.concurrency <= 0:
        p.error("--jobs and --concurrency must be positive")
    return a


def _on_sigterm(signum, _frame):
    # Turn SIGTERM/SIGHUP (e.g. from `timeout`) into SystemExit so the
    # `finally` below still stops the worker we started.
    raise SystemExit(128 + signum)


# --- measurements ---------------------------------------------------------

def command_calls(info):
    """{command: calls} from a parsed ``INFO commandstats`` reply."""
    out = {}
    for key, val in info.items():
        if key.startswith("cmdstat_"):
            if isinstance(val, dict):
                calls = int(val["calls"])
            else:  # unparsed "calls=1,usec=..." string
                calls = int(str(val).split("calls=")[1].split(",")[0])
            out[key[len("cmdstat_"):]] = calls
    return out


def redis_snapshot(r):
    """Command counts and server CPU in ONE command (INFO commandstats cpu)."""
    info = r.execute_command("INFO", "commandstats", "cpu")
    cpu = float(info.get("used_cpu_user", 0)) + float(info.get("used_cpu_sys", 0))
    return command_calls(info), cpu


_CLK = os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pgid):
    """User+system CPU of every live process in process group ``pgid``
    (the worker and, for prefork, its pool children; threads are included
    in their process's figures), as (total, group leader only)."""
    total = leader = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is field 3 (state); pgrp is field 5, utime 14, stime 15.
        if int(fields[2]) == pgid:
            ticks = int(fields[11]) + int(fields[12])
            total += ticks
            if int(name) == pgid:
                leader = ticks
    return total / _CLK, leader / _CLK


def own_cpu_seconds():
    t = os.times()
    return t.user + t.system


# --- the worker subprocess ------------------------------------------------

class Worker:
    def __init__(self, redis_url, pool, concurrency, ready_key):
        self.log = tempfile.NamedTemporaryFile(
            prefix=f"hangar-celery-{pool}-", suffix=".log", delete=False)
        cmd = [sys.executable, "-m", "celery", "-A", "tasks", "worker",
               "--pool", pool, "--concurrency", str(concurrency),
               "--loglevel", "warning",
               # A node name of its own, so a default-named worker elsewhere
               # on the same broker does not clash in mingle/remote control.
               "-n", f"hangarbench{os.getpid()}@%h"]
        env = dict(os.environ, REDIS_URL=redis_url,
                   HANGAR_BENCH_READY_KEY=ready_key, PYTHONUNBUFFERED="1",
                   PYTHONDONTWRITEBYTECODE="1")
        # Own session => own process group whose id is the worker's PID, so
        # stop() can signal exactly this worker and its pool children.
        self.proc = subprocess.Popen(
            cmd, cwd=HERE, env=env, stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid

    def check_alive(self):
        rc = self.proc.poll()
        if rc is not None:
            raise BenchError(f"celery worker (pid {self.pid}) exited with code {rc}")

    def log_tail(self, lines=30):
        try:
            with open(self.log.name, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def _signal_group(self, sig):
        try:
            os.killpg(self.pid, sig)
            return True
        except ProcessLookupError:
            return False

    def stop(self, grace=15.0):
        """SIGTERM (warm shutdown) to the worker's process group, SIGKILL
        after ``grace`` seconds if anything in it is still alive."""
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        # Pool children may outlive the main process briefly; the group id
        # stays ours while any member lives.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and group_alive(self.pid):
            time.sleep(0.1)
        if group_alive(self.pid):
            self._signal_group(signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


# --- helpers --------------------------------------------------------------

def enqueue(task, n, deadline, what):
    for i in range(n):
        task.delay()
        if i % 1000 == 999 and time.monotonic() > deadline:
            raise BenchError(f"{what}: timed out after enqueueing {i + 1} of {n}")


class Counter:
    """Polls the done-counter with GET; counts its own commands."""

    def __init__(self, r, key, interval):
        self.r, self.key, self.interval = r, key, interval
        self.polls = 0

    def get(self):
        self.polls += 1
        v = self.r.get(self.key)
        return int(v) if v is not None else 0

    def wait_for(self, target, deadline, worker, what):
        while True:
            v = self.get()
            if v >= target:
                return v
            if time.monotonic() > deadline:
                raise BenchError(f"{what}: timed out with {v} of {target} tasks done")
            worker.check_alive()
            time.sleep(self.interval)


def main():
    args = parse_args()
    os.environ["REDIS_URL"] = args.redis_url
    sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
    sys.path.insert(0, HERE)
    import redis  # noqa: E402
    import tasks  # noqa: E402  (reads REDIS_URL at import)

    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)

    n, c, pool = args.jobs, args.concurrency, args.pool
    r = redis.Redis.from_url(args.redis_url, socket_timeout=30)
    try:
        r.ping()
    except redis.RedisError as e:
        raise BenchError(f"cannot reach redis at {args.redis_url}: {e}") from e

    ready_key = f"{tasks.PREFIX}:ready:{uuid.uuid4().hex}"
    our_keys = [tasks.QUEUE, tasks.COUNTER_KEY, ready_key,
                f"{tasks.PREFIX}:unacked", f"{tasks.PREFIX}:unacked_index",
                f"{tasks.PREFIX}:unacked_mutex",
                f"_kombu.binding.{tasks.QUEUE}",
                f"_kombu.binding_permanent.{tasks.QUEUE}"]
    r.delete(*our_keys)

    worker = None
    keep_log = False
    try:
        # 0. Optional, separate: pipelined enqueue through kombu 5.7's
        #    Producer.batch() (the closest Celery gets to Hangar's
        #    enqueue_batch). Jobs are discarded afterwards (no worker runs).
        bulk_line = None
        if not args.no_bulk:
            deadline = time.monotonic() + args.timeout
            t0 = time.perf_counter()
            with tasks.app.producer_or_acquire() as producer:
                with producer.batch(max_size=args.bulk_batch):
                    for i in range(n):
                        tasks.noop.apply_async(producer=producer)
                        if i % 1000 == 999 and time.monotonic() > deadline:
                            raise BenchError("bulk enqueue: timed out")
            bulk_s = time.perf_counter() - t0
            queued = r.llen(tasks.QUEUE)
            if queued != n:
                raise BenchError(f"bulk enqueue: queue holds {queued}, expected {n}")
            r.delete(tasks.QUEUE)
            bulk_line = (f"BULK system=celery pool={pool} c={c} "
                         f"enqueue_batch_per_s={n / bulk_s:.0f} batch={args.bulk_batch} "
                         f"(apply_async inside Producer.batch(); not in RESULT)")

        # 1. Enqueue rate: N x noop.delay(), no worker running.
        deadline = time.monotonic() + args.timeout
        t0 = time.perf_counter()
        enqueue(tasks.noop, n, deadline, "enqueue phase")
        enqueue_s = time.perf_counter() - t0
        queued = r.llen(tasks.QUEUE)
        if queued != n:
            raise BenchError(f"enqueue phase: queue holds {queued}, expected {n}")

        # 2. Drain. The backlog must exist before the worker starts, so the
        #    worker is started now. Celery's boot (imports, forking the pool,
        #    broker connections, ~1 s of mingle) is not job throughput and
        #    Hangar's in-process pool has none of it, so it is excluded: the
        #    clock starts at the time.time() the worker_ready handler in
        #    tasks.py writes to Redis. Celery sends worker_ready after
        #    consumer.consume() and before the first event-loop iteration, so
        #    no task can have run before that instant; polling the key only
        #    delays our noticing, not the start time. The clock stops when we
        #    see the counter reach N (polled every --poll-interval).
        worker = Worker(args.redis_url, pool, c, ready_key)
        deadline = time.monotonic() + min(args.timeout, 120)
        while True:
            v = r.get(ready_key)
            if v is not None:
                t_ready = float(v)
                break
            worker.check_alive()
            if time.monotonic() > deadline:
                raise BenchError("worker did not report ready (worker_ready signal) in time")
            time.sleep(0.01)
        counter = Counter(r, tasks.COUNTER_KEY, args.poll_interval)
        cpu_w0 = group_cpu_seconds(worker.pid)
        _, cpu_r0 = redis_snapshot(r)
        done = counter.wait_for(n, time.monotonic() + args.timeout, worker, "drain phase")
        t_drained = time.time()
        drain_s = t_drained - t_ready
        cpu_w1 = group_cpu_seconds(worker.pid)
        _, cpu_r1 = redis_snapshot(r)
        drain_cpu = (cpu_w1[0] - cpu_w0[0], cpu_w1[1] - cpu_w0[1], cpu_r1 - cpu_r0)
        if done != n:
            raise BenchError(f"drain phase: counter is {done}, expected exactly {n}")

        # 3. End to end, pool running. Commands counted from here.
        #    Measurer's own commands inside the window, subtracted below:
        #      - the INFO that takes the "before" snapshot (Redis counts a
        #        command after it runs, so it shows up in the "after" one;
        #        the "after" INFO is not in its own figures);
        #      - every GET poll of the counter (counted in Counter.polls).
        #    The task's INCR (exactly one per job; it shows as INCRBY) is subtracted too:
        #    counter_cmds_subtracted=1.
        counter.polls = 0
        cpu_m0 = own_cpu_seconds()
        cpu_w0 = group_cpu_seconds(worker.pid)
        before, cpu_r0 = redis_snapshot(r)
        deadline = time.monotonic() + args.timeout
        t0 = time.perf_counter()
        enqueue(tasks.noop, n, deadline, "end-to-end phase")
        t_enq = time.perf_counter() - t0
        done = counter.wait_for(2 * n, deadline, worker, "end-to-end phase")
        e2e_s = time.perf_counter() - t0
        after, cpu_r1 = redis_snapshot(r)
        cpu_w1 = group_cpu_seconds(worker.pid)
        cpu_m1 = own_cpu_seconds()
        polls = counter.polls
        if done != 2 * n:
            raise BenchError(f"end-to-end phase: counter is {done}, expected exactly {2 * n}")

        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        delta = {k: d for k, d in delta.items() if d > 0}
        raw = sum(delta.values())
        own = 1 + polls          # INFO + GET polls
        counter_cmds = n         # one INCR per job
        per_job = (raw - own - counter_cmds) / n

        print(f"RESULT system=celery pool={pool} c={c} "
              f"enqueue_per_s={n / enqueue_s:.0f} e2e_per_s={n / e2e_s:.0f} "
              f"drain_per_s={n / drain_s:.0f} redis_cmds_per_job={per_job:.2f} "
              f"counter_cmds_subtracted=1", flush=True)
        rows = sorted(delta.items(), key=lambda kv: (-kv[1], kv[0]))
        print(f"BREAKDOWN system=celery pool={pool} c={c} per_job (e2e phase, {n} jobs, "
              f"raw, before subtracting incrby={n} (the task counter; redis-py sends INCR as INCRBY 1), get={polls} (polls) "
              f"and info=1 (snapshot)): "
              + " ".join(f"{k}={d / n:.3f}" for k, d in rows), flush=True)
        print(f"DETAIL system=celery pool={pool} c={c} "
              f"e2e_enqueue_part_s={t_enq:.2f} e2e_s={e2e_s:.2f} "
              f"e2e_cpu_s worker={cpu_w1[0] - cpu_w0[0]:.2f} "
              f"(main_process={cpu_w1[1] - cpu_w0[1]:.2f}) redis={cpu_r1 - cpu_r0:.2f} "
              f"producer={cpu_m1 - cpu_m0:.2f} | drain_s={drain_s:.2f} "
              f"drain_cpu_s worker={drain_cpu[0]:.2f} (main_process={drain_cpu[1]:.2f}) "
              f"redis={drain_cpu[2]:.2f} | enqueue_s={enqueue_s:.2f}", flush=True)
        if bulk_line:
            print(bulk_line, flush=True)
        return 0
    except BenchError as e:
        print(f"bench_celery: error: {e}", file=sys.stderr)
        if worker is not None:
            tail = worker.log_tail()
            if tail:
                print(f"--- last lines of the worker log {worker.log.name} (kept) ---\n{tail}",
                      file=sys.stderr)
                keep_log = True
        return 1
    finally:
        if worker is not None:
            worker.stop()
            if not keep_log:
                try:
                    os.unlink(worker.log.name)
                except OSError:
                    pass
        try:
            r.delete(*our_keys)
        except Exception:
            pass


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:  # raised before the worker exists
        print(f"bench_celery: error: {e}", file=sys.stderr)
        sys.exit(1)
