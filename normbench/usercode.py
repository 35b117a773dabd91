"""The boundary around the user's code: factories, loaders and norms run supervised."""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, NoReturn, TypeVar

from normbench.errors import EXIT_INTERRUPTED, InputError, NormbenchError, shorten
from normbench.streams import stdout_to_stderr

T = TypeVar("T")

# Whatever the user's code does (raise, ``sys.exit(0)``, ``raise KeyboardInterrupt``, print),
# normbench must still say, in one sentence naming the target, what went wrong; a run must
# not end with exit 0 and no output because a loader called ``sys.exit(0)``.


class UserCodeError(InputError):
    """The user's code raised or exited; the message names the target (exit code 2).

    ``deed`` is what the code did (``raised ValueError: bad``), for callers that word the
    sentence themselves.
    """

    def __init__(self, message: str, deed: str = "") -> None:
        super().__init__(message)
        self.deed = deed or message


class UserCodeStopped(NormbenchError):
    """Ctrl-C (or the user's code raising ``KeyboardInterrupt``) while the user's code ran."""

    exit_code = EXIT_INTERRUPTED


class HardExit(SystemExit):
    """The user's code called ``os._exit(code)`` while ``hard_exit_trapped`` was active."""


# normbench's own immediate exits (a second Ctrl-C, an orphaned worker) call this, never the
# trapped ``os._exit``.
real_exit = os._exit


def _trapped_exit(code: int) -> NoReturn:
    raise HardExit(code)


@contextmanager
def hard_exit_trapped() -> Iterator[None]:
    """While the block runs, ``os._exit(n)`` raises ``HardExit(n)`` instead of ending the
    process at once, which would skip every ``finally``, lose what is not yet written and exit
    with the user's code's status (0 included) and no sentence. Only Python-level calls are
    trapped; worker processes are fresh interpreters, untouched."""
    if os._exit is _trapped_exit:  # nested: the outer block restores it
        yield
        return
    os._exit = _trapped_exit
    try:
        yield
    finally:
        os._exit = real_exit


def describe(exc: BaseException) -> str:
    """What the user's code did, as the end of a sentence: ``raised ValueError: bad``."""
    if isinstance(exc, HardExit):
        return f"called os._exit({exc.code!r})"
    if isinstance(exc, SystemExit):
        return f"called sys.exit({shorten(_shown(exc.code, repr))})"
    if isinstance(exc, GeneratorExit):
        return "raised GeneratorExit"
    return f"raised {error_text(exc)}"


def error_text(exc: BaseException) -> str:
    """``ValueError: bad`` on one line, whatever the exception's ``__str__`` does (raise,
    return a non-string, run to megabytes, break lines)."""
    text = shorten(" ".join(_shown(exc, str).splitlines()), MESSAGE_LIMIT)
    return type(exc).__name__ + (f": {text}" if text else "")


MESSAGE_LIMIT = 300  # characters of the user's own message a sentence repeats


def _shown(value: Any, how: Callable[[Any], str]) -> str:
    """``how(value)``: the user's ``__str__`` or ``__repr__`` may itself raise or not return
    a string, and the sentence must still be written."""
    try:
        text = how(value)
    except Exception as exc:  # whatever it raised, the sentence goes on
        return f"<its text could not be shown: {type(exc).__name__}>"
    return text if isinstance(text, str) else "<its text is not a string>"


@contextmanager
def _same_directory() -> Iterator[None]:
    """The user's code may ``os.chdir``: normbench's relative paths (``--out runs``, the suite,
    the baseline) must keep meaning what the user typed, so the directory is restored."""
    try:
        before = os.getcwd()
    except OSError:  # the directory is gone already; nothing to restore
        yield
        return
    try:
        yield
    finally:
        try:
            moved = os.getcwd() != before
        except OSError:  # the code removed the directory it moved to
            moved = True
        if moved:
            with suppress(OSError):
                os.chdir(before)


# Ctrl-C, SIGTERM (a CI timeout, a parent stopping its workers), a hang-up and a closed pipe
# are normbench's to handle (stop, keep what finished); the user's code may not take them over.
_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE")
    if hasattr(signal, name)
)


@contextmanager
def _same_signals() -> Iterator[None]:
    """Restore the handlers of ``_SIGNALS`` that the block replaced (main thread only: Python
    sets handlers there alone)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {signum: signal.getsignal(signum) for signum in _SIGNALS}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            if handler is not None and signal.getsignal(signum) is not handler:
                with suppress(OSError, TypeError, ValueError):
                    signal.signal(signum, handler)


@contextmanager
def _same_torch_state() -> Iterator[None]:
    """Restore torch's process-wide switches the block changed: the default dtype, grad mode,
    the thread count and deterministic algorithms select the arithmetic of every later task in
    this process (one variant, one answer), and a factory leaving grad off fails training."""
    torch = sys.modules.get("torch")
    if torch is None:  # not imported yet: nothing of ours to protect
        yield
        return
    saved = (
        torch.get_default_dtype(),
        torch.is_grad_enabled(),
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
    )
    try:
        yield
    finally:
        dtype, grad, threads, deterministic = saved
        if torch.get_default_dtype() != dtype:
            torch.set_default_dtype(dtype)
        torch.set_grad_enabled(grad)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        if torch.are_deterministic_algorithms_enabled() != deterministic:
            torch.use_deterministic_algorithms(deterministic)


@contextmanager
def supervised(what: str) -> Iterator[None]:
    """Run the block as the user's code ``what`` (e.g. ``custom model factory 'pkg:f'``).

    stdout goes to stderr meanwhile; ``KeyboardInterrupt`` becomes ``UserCodeStopped``
    (exit 130, a stop), any other exception or exit a ``UserCodeError`` sentence. Errors
    normbench itself raised inside (a nested supervised call) pass through unchanged.
    """
    with stdout_to_stderr(), _same_directory(), _same_signals(), _same_torch_state():
        try:
            yield
        except NormbenchError:
            raise
        except KeyboardInterrupt:
            raise UserCodeStopped(f"interrupted while {what} ran") from None
        except BaseException as exc:  # SystemExit, GeneratorExit, any Exception
            deed = describe(exc)
            raise UserCodeError(f"{what} {deed}", deed) from None


def call(what: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``func(*args, **kwargs)`` run ``supervised(what)``."""
    with supervised(what):
        return func(*args, **kwargs)


def seed_everything(seed: int) -> None:
    """Seed every global RNG the user's code may draw from: torch (if imported), numpy's
    legacy global state and Python's ``random``, so a factory drawing its initial weights
    from any of them builds the same model for the same task seed."""
    random.seed(seed)
    if "numpy" in sys.modules:
        import numpy as np

        np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)


@contextmanager
def global_rng_state() -> Iterator[None]:
    """Restore Python's and numpy's global RNG states after the block (torch has fork_rng)."""
    py_state = random.getstate()
    np_state = None
    if "numpy" in sys.modules:
        import numpy as np

        np_state = np.random.get_state()
    try:
        yield
    finally:
        random.setstate(py_state)
        if np_state is not None:
            import numpy as np

            np.random.set_state(np_state)
