"""Where rollouts run: in-process, in local worker processes, or on Ray actors.

Every backend splits the population into contiguous chunks, one per worker,
and concatenates the results in member order. A member's episode depends only
on its parameters and its environment seed, so the results are identical
whatever the backend and the number of workers.

Workers keep their environments and compiled policy alive between iterations.
A worker process or Ray actor that dies mid-iteration is replaced and its chunk
is evaluated again (same seeds, so the same result). Requests to worker
processes carry a call number: a reply left unread by an interrupted or failed
`evaluate` is dropped by the next one, never taken for its result.
"""

import abc
import multiprocessing
import os
import signal
import traceback

import numpy as np

from keras_odetoode.checks import check_integer
from keras_odetoode.es.envs import MissingDependencyError
from keras_odetoode.es.rollouts import RolloutResult, RolloutWorker

BACKENDS = ("local", "ray")


def split_population(size, parts):
    """Contiguous (start, stop) chunks of `size` members over at most `parts` workers."""
    parts = max(1, min(int(parts), int(size)))
    bounds = np.linspace(0, size, parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _chunk(population, seeds, start, stop):
    return {k: v[start:stop] for k, v in population.items()}, seeds[start:stop]


def _limit_threads():
    """One TF thread per worker: workers are as many as cores, the policy is tiny."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TF already initialised in this process: keep its threads
        pass


class AbstractBackend(abc.ABC):
    """Evaluates a population: one episode per member."""

    @abc.abstractmethod
    def evaluate(self, population, seeds, obs_mean, obs_variance, max_steps):
        """Returns a `RolloutResult` in member order (see `RolloutWorker.run`)."""

    def close(self):
        """Release workers and environments."""

    @property
    def num_workers(self):
        return 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class InProcessBackend(AbstractBackend):
    """All rollouts in this process (the default)."""

    def __init__(self, env_fn, policy_fn, jit_compile=True, pipeline_chunks=None):
        self.worker = RolloutWorker(env_fn, policy_fn, jit_compile=jit_compile, pipeline_chunks=pipeline_chunks)

    def evaluate(self, population, seeds, obs_mean, obs_variance, max_steps):
        return self.worker.run(population, seeds, obs_mean, obs_variance, max_steps)

    def close(self):
        self.worker.close()


def _process_main(conn, env_fn, policy_fn, jit_compile, pipeline_chunks):
    # Ctrl-C reaches the whole process group. It is the parent's to handle (it saves a
    # checkpoint, then stops its workers); a worker would only die with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("MUJOCO_GL", "disable")
    _limit_threads()
    try:
        worker = RolloutWorker(env_fn, policy_fn, jit_compile=jit_compile, pipeline_chunks=pipeline_chunks)
    except Exception:
        _reply(conn, (None, "error", traceback.format_exc()))
        return
    if not _reply(conn, (None, "ready", None)):
        worker.close()
        return
    while True:
        try:
            message = conn.recv()
        except (EOFError, KeyboardInterrupt):
            break
        if message is None:
            break
        call, args = message
        try:
            reply = (call, "ok", worker.run(*args))
        except Exception:
            reply = (call, "error", traceback.format_exc())
        if not _reply(conn, reply):
            break
    worker.close()


def _reply(conn, message):
    """Send `message` to the parent; False, quietly, if the parent has gone (killed, or closed its end)."""
    try:
        conn.send(message)
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


class _ProcessWorker:
    """One worker process and its pipe.

    Messages are (call, status, payload): `receive(call)` drops replies to earlier
    calls. `broken` is set while a message is half sent or half read, so a
    Ctrl-C at that moment leaves a pipe that must not be used again.
    """

    def __init__(self, context, *args):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_process_main, args=(child, *args), daemon=True)
        self.process.start()
        child.close()
        self.ready = False
        self.broken = False

    def request(self, call, args):
        """Send `args` for `RolloutWorker.run` as call number `call`."""
        self.broken = True
        try:
            self.conn.send((call, args))
        except (OSError, ValueError):
            pass  # died: receive() reports it
        self.broken = False

    def receive(self, call):
        """(status, payload) of the reply to `call`, or None if the process died."""
        try:
            while True:
                while not self.conn.poll(0.5):
                    if not self.process.is_alive() and not self.conn.poll(0):
                        return None
                self.broken = True
                reply_call, status, payload = self.conn.recv()
                self.broken = False
                if reply_call == call:
                    return status, payload
        except (EOFError, ConnectionError, OSError):
            self.broken = False
            return None

    def wait_ready(self):
        if not self.ready:
            message = self.receive(None)
            if message is None:
                return False
            if message[0] == "error":
                raise RuntimeError(f"An ES worker process failed to start:\n{message[1]}")
            self.ready = True
        return True

    def stop(self):
        if not self.broken:
            try:
                self.conn.send(None)
            except (OSError, ValueError):
                pass
            self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class ProcessBackend(AbstractBackend):
    """`workers` local processes (spawned), each with its own environments.

    Args:
        env_fn, policy_fn: picklable zero-argument callables (module-level
            functions or `functools.partial` of them).
        workers: number of processes (≥ 1).
        jit_compile: XLA for the per-step policy.
        max_restarts: how many times a chunk is retried on a fresh process after
            its process died.
        pipeline_chunks: see `RolloutWorker`. 1 by default: each process has one
            TensorFlow thread and, with as many processes as cores, no core to
            spare (`benchmarks/es_overhead.py` measures both).
    """

    def __init__(self, env_fn, policy_fn, workers=2, jit_compile=True, max_restarts=3, pipeline_chunks=1):
        check_integer("workers", workers, 1)
        self._args = (env_fn, policy_fn, jit_compile, pipeline_chunks)
        self._context = multiprocessing.get_context("spawn")  # fork is unsafe after TF starts threads
        self.max_restarts = int(max_restarts)
        self.workers = [_ProcessWorker(self._context, *self._args) for _ in range(int(workers))]
        self.restarts = 0
        self._calls = 0  # number of the current `evaluate`, sent with its requests

    @property
    def num_workers(self):
        return len(self.workers)

    def _replace(self, index):
        old = self.workers[index]
        old.process.kill()  # dead already, or its pipe is broken
        old.process.join()
        old.conn.close()
        self.workers[index] = _ProcessWorker(self._context, *self._args)
        self.restarts += 1

    def evaluate(self, population, seeds, obs_mean, obs_variance, max_steps):
        self._calls += 1
        call = self._calls
        for i, worker in enumerate(self.workers):
            if worker.broken:  # a Ctrl-C struck mid-message in an earlier call
                self._replace(i)
        chunks = split_population(len(seeds), len(self.workers))
        results = [None] * len(chunks)
        pending = list(range(len(chunks)))
        for attempt in range(self.max_restarts + 1):
            for i in pending:
                if self.workers[i].wait_ready():
                    params, chunk_seeds = _chunk(population, seeds, *chunks[i])
                    self.workers[i].request(call, (params, chunk_seeds, obs_mean, obs_variance, max_steps))
            failed = []
            for i in pending:
                message = self.workers[i].receive(call) if self.workers[i].ready else None
                if message is None:
                    failed.append(i)
                elif message[0] == "error":
                    raise RuntimeError(f"An ES worker process raised:\n{message[1]}")
                else:
                    results[i] = message[1]
            for i in failed:
                self._replace(i)
            pending = failed
            if not pending:
                return RolloutResult.concatenate(results)
        raise RuntimeError(
            f"ES worker processes died {self.max_restarts + 1} times in a row while evaluating "
            f"chunks {[chunks[i] for i in pending]}; giving up."
        )

    def close(self):
        for worker in self.workers:
            worker.stop()
        self.workers = []


class _RayWorker:
    """Ray actor body: a `RolloutWorker` that lives as long as the actor."""

    def __init__(self, env_fn, policy_fn, jit_compile, pipeline_chunks):
        os.environ.setdefault("MUJOCO_GL", "disable")
        _limit_threads()
        self.worker = RolloutWorker(env_fn, policy_fn, jit_compile=jit_compile, pipeline_chunks=pipeline_chunks)

    def run(self, *args):
        return self.worker.run(*args)

    def pid(self):
        return os.getpid()


def _connection_hint(address):
    return (
        f"Could not connect to the Ray cluster at address={address!r}. Check that its head "
        "runs (`ray status` there). A cluster started by `ray start --head` with Ray ≥ 2.59 "
        "accepts only clients that present its token: set RAY_AUTH_MODE=token here and give "
        "the head's token (`ray get-auth-token` on the head) in RAY_AUTH_TOKEN or "
        "~/.ray/auth_token; `--address auto` on the head node finds it by itself. "
        "See https://docs.ray.io/en/latest/ray-security/token-auth.html"
    )


class RayBackend(AbstractBackend):
    """The population split across Ray actors that keep their environments alive.

    Args:
        env_fn, policy_fn: picklable zero-argument callables.
        workers: number of actors.
        address: Ray cluster address ("auto", "ray://host:10001", ...); None
            connects to a running local cluster or starts one (`ray.init()`).
        jit_compile: XLA for the per-step policy.
        num_cpus_per_worker: CPUs Ray reserves for each actor.
        max_restarts: how many times a chunk is retried on a new actor after its actor died.
        init_kwargs: extra `ray.init` arguments (e.g. num_cpus=2) when this backend starts Ray.
    """

    def __init__(
        self,
        env_fn,
        policy_fn,
        workers=2,
        address=None,
        jit_compile=True,
        num_cpus_per_worker=1,
        max_restarts=3,
        init_kwargs=None,
    ):
        try:
            import ray
        except ImportError as error:
            raise MissingDependencyError(
                'The ray backend needs Ray, which cannot be imported: pip install "keras_odetoode[ray]"'
            ) from error
        check_integer("workers", workers, 1)
        self._ray = ray
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            try:
                ray.init(address=address, **(init_kwargs or {}))
            except ConnectionError as error:
                raise ConnectionError(_connection_hint(address)) from error
        self._actor_cls = ray.remote(num_cpus=num_cpus_per_worker)(_RayWorker)
        self._args = (env_fn, policy_fn, jit_compile, 1)  # one TensorFlow thread per actor: see ProcessBackend
        self.max_restarts = int(max_restarts)
        self.actors = [self._actor_cls.remote(*self._args) for _ in range(int(workers))]
        self.restarts = 0

    @property
    def num_workers(self):
        return len(self.actors)

    def _submit(self, i, population, seeds, chunk, obs_mean, obs_variance, max_steps):
        params, chunk_seeds = _chunk(population, seeds, *chunk)
        return self.actors[i].run.remote(params, chunk_seeds, obs_mean, obs_variance, max_steps)

    def evaluate(self, population, seeds, obs_mean, obs_variance, max_steps):
        ray = self._ray
        chunks = split_population(len(seeds), len(self.actors))
        args = (population, seeds)
        refs = {i: self._submit(i, *args, chunks[i], obs_mean, obs_variance, max_steps) for i in range(len(chunks))}
        results = [None] * len(chunks)
        attempts = [0] * len(chunks)
        while refs:
            i, ref = next(iter(refs.items()))
            try:
                results[i] = ray.get(ref)
                del refs[i]
            except ray.exceptions.RayActorError:
                attempts[i] += 1
                if attempts[i] > self.max_restarts:
                    raise RuntimeError(
                        f"The Ray actor evaluating members {chunks[i]} died {attempts[i]} times; giving up."
                    ) from None
                ray.kill(self.actors[i], no_restart=True)
                self.actors[i] = self._actor_cls.remote(*self._args)
                self.restarts += 1
                refs[i] = self._submit(i, *args, chunks[i], obs_mean, obs_variance, max_steps)
        return RolloutResult.concatenate(results)

    def close(self):
        for actor in self.actors:
            self._ray.kill(actor, no_restart=True)
        self.actors = []
        if self._owns_ray:
            self._ray.shutdown()


def make_backend(name, env_fn, policy_fn, workers=0, address=None, jit_compile=True, **kwargs):
    """ "local" (in-process when workers=0, else `workers` processes) or "ray"."""
    if name == "local":
        if workers in (0, None):
            return InProcessBackend(env_fn, policy_fn, jit_compile=jit_compile)
        return ProcessBackend(env_fn, policy_fn, workers=workers, jit_compile=jit_compile, **kwargs)
    if name == "ray":
        return RayBackend(
            env_fn, policy_fn, workers=max(1, workers or 1), address=address, jit_compile=jit_compile, **kwargs
        )
    raise ValueError(f"Unknown backend. Expected one of {BACKENDS}. Received: backend={name!r}")
