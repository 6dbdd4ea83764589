"""The one place that calls nvidia-ml-py: error mapping, bytes decoding, API-version probing.

Every NVML call of the collector goes through :class:`NvmlQuery`, so the rules live here:

* a reading the GPU, driver or user cannot provide (``NOT_SUPPORTED``, ``NO_PERMISSION``,
  ``NOT_FOUND``, ``TIMEOUT``) becomes ``None`` quietly;
* a function this pynvml or driver cannot run (missing attribute, ``FUNCTION_NOT_FOUND``,
  ``ARGUMENT_VERSION_MISMATCH``, pynvml 13's ``NVMLLibraryMismatchError``) becomes ``None``,
  is logged once and never called again;
* any other error on a reading (``UNKNOWN``, ``INVALID_ARGUMENT``...) becomes ``None`` and is
  logged once per function and code; ``UNKNOWN`` answers are counted so the caller can ask the
  GPU to confirm it still answers (:meth:`NvmlQuery.confirm`);
* ``GPU_IS_LOST`` and ``RESET_REQUIRED`` raise :class:`GpuLostError`, so the caller marks just
  that GPU lost; :meth:`NvmlQuery.confirm` also raises it for ``UNKNOWN``;
* ``bytes`` from old ``pynvml`` releases become ``str``, NaN and infinities become ``None``.

This module is internal to ``gpufleet.collectors``; it imports nothing but the standard library.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

LOG = logging.getLogger("gpufleet.collectors.nvml")

# NVML return codes (nvml.h). They are ABI constants, so hard-coding them lets the choke point
# work with a pynvml that predates a name, and with test doubles that define only what we call.
SUCCESS = 0
NOT_SUPPORTED = 3
NO_PERMISSION = 4
NOT_FOUND = 6
DRIVER_NOT_LOADED = 9
TIMEOUT = 10
LIBRARY_NOT_FOUND = 12
FUNCTION_NOT_FOUND = 13
GPU_IS_LOST = 15
RESET_REQUIRED = 16
LIB_RM_VERSION_MISMATCH = 18
ARGUMENT_VERSION_MISMATCH = 25
UNKNOWN = 999

# "No data here" answers: expected on some GPUs, drivers or users, so they stay quiet.
# pynvml raises NVMLError(SUCCESS) when a list query (process utilization) finds nothing.
_ABSENT_CODES = frozenset({SUCCESS, NOT_SUPPORTED, NO_PERMISSION, NOT_FOUND, TIMEOUT})
# The GPU itself is gone or wedged; every later call on it would fail the same way.
_LOST_CODES = frozenset({GPU_IS_LOST, RESET_REQUIRED})
# This version of the call cannot work with this driver; an older version may.
_UNUSABLE_CODES = frozenset({FUNCTION_NOT_FOUND, ARGUMENT_VERSION_MISMATCH})

ULLONG_MAX = 2**64 - 1
"""NVML_VALUE_NOT_AVAILABLE for unsigned long long fields."""


class GpuLostError(Exception):
    """A GPU stopped answering NVML; raised by :class:`NvmlQuery` for that GPU's calls only.

    Attributes:
        function: The NVML function that failed.
        code: The NVML return code (``GPU_IS_LOST``, ``RESET_REQUIRED``, or ``UNKNOWN`` from
            :meth:`NvmlQuery.confirm`).
    """

    def __init__(self, function: str, code: int, message: str) -> None:
        super().__init__(f"{function}: {message}")
        self.function = function
        self.code = code


class _UnusableError(Exception):
    """This pynvml and driver cannot run the function: missing, or a mismatched version."""

    def __init__(self, function: str, why: str) -> None:
        super().__init__(f"{function}: {why}")
        self.why = why


class _AbsentError(Exception):
    """NVML answered, but has no value for this GPU, driver or user."""


class _FailedError(Exception):
    """NVML answered with an error that says nothing about the function or the GPU."""


class _NeverRaisedError(Exception):
    """Stands in for exception types that an older pynvml does not define."""


def decode_text(value: object) -> str | None:
    """Return ``value`` as ``str``; old pynvml releases return ``bytes`` for strings.

    Args:
        value: What an NVML call or struct field returned.

    Returns:
        The text, or ``None`` when ``value`` is ``None`` or empty.
    """
    if value is None:
        return None
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
    return text or None


def error_code(exc: BaseException) -> int | None:
    """The NVML return code carried by an ``NVMLError``, if any."""
    code = getattr(exc, "value", None)
    return code if isinstance(code, int) else None


def error_message(exc: BaseException) -> str:
    """A readable message for an ``NVMLError`` even when ``str()`` itself calls into NVML."""
    try:
        text = str(exc)
    except Exception:  # pynvml's __str__ calls nvmlErrorString, which can fail once NVML is gone
        text = ""
    return text or f"NVML error {error_code(exc)}"


def _exception_type(nvml: ModuleType, name: str, fallback: type[Exception]) -> type[Exception]:
    found = getattr(nvml, name, None)
    return found if isinstance(found, type) and issubclass(found, Exception) else fallback


class NvmlQuery:
    """Calls ``nvml.<function>(*args)`` and maps its errors; see the module docstring.

    Not for concurrent use: the NVML source calls it with its own lock held.

    Args:
        nvml: The ``pynvml`` module (or a test double exposing the same names).

    Attributes:
        unknown_answers: How many calls answered ``UNKNOWN`` so far; a caller compares it
            before and after reading a GPU to know whether to :meth:`confirm` the GPU.
    """

    def __init__(self, nvml: ModuleType) -> None:
        self._nvml = nvml
        self._error_type = _exception_type(nvml, "NVMLError", Exception)
        # pynvml 13 raises this plain Exception from unsuffixed wrappers (e.g. the process
        # lists) when the driver lacks the versioned symbol they call; older pynvml lacks it.
        self._mismatch_type = _exception_type(nvml, "NVMLLibraryMismatchError", _NeverRaisedError)
        self._lock = threading.Lock()
        self._unusable: set[str] = set()
        self._logged: set[tuple[str, int]] = set()
        self._versions: dict[str, str | None] = {}
        self.unknown_answers = 0

    def __call__(self, function: str, *args: object) -> Any:
        """Call one NVML function.

        Args:
            function: Its pynvml name, e.g. ``"nvmlDeviceGetPowerUsage"``.
            *args: Passed through (handles, enum values).

        Returns:
            The value (``bytes`` decoded to ``str``), or ``None`` when the reading is not
            available here.

        Raises:
            GpuLostError: The GPU behind the handle is lost or needs a reset.
        """
        return self._value(function, args, unknown_is_lost=False)

    def confirm(self, function: str, *args: object) -> Any:
        """Call a function whose failure means the GPU itself is failing, e.g. its UUID.

        As :meth:`__call__`, except that ``UNKNOWN`` raises :class:`GpuLostError` too: a GPU
        that cannot even say its UUID is not answering.
        """
        return self._value(function, args, unknown_is_lost=True)

    def succeeds(self, function: str, *args: object) -> bool:
        """Call an NVML function that returns nothing; say whether it worked.

        Args:
            function: Its pynvml name, e.g. ``"nvmlDeviceRegisterEvents"``.
            *args: Passed through.

        Returns:
            True when the call returned without error.

        Raises:
            GpuLostError: The GPU behind the handle is lost or needs a reset.
        """
        try:
            self._invoke(function, args, unknown_is_lost=False)
        except (_AbsentError, _FailedError):
            return False
        except _UnusableError as exc:
            self._note_unusable(function, exc.why, expected=False)
            return False
        return True

    def first_of(self, family: str, functions: Sequence[str], *args: object) -> Any:
        """Call the newest of several versions of one API that this pynvml and driver can run.

        A version that answers (a value, or "not supported") is remembered under ``family``, so
        later calls go straight to it. A version this pynvml or driver cannot run is skipped
        for good (logged at debug level; all of them unusable is logged once as a warning).
        A version that fails otherwise (``UNKNOWN``...) is skipped for this call only, and
        nothing is remembered from a call where that happened: the error may belong to one GPU.

        Args:
            family: A name for the API, e.g. ``"compute_processes"``.
            functions: pynvml names, newest first.
            *args: Passed through.

        Returns:
            As :meth:`__call__`.

        Raises:
            GpuLostError: The GPU behind the handle is lost or needs a reset.
        """
        with self._lock:
            known = family in self._versions
            chosen = self._versions.get(family)
        if known:
            return None if chosen is None else self(chosen, *args)
        uncertain = False
        for function in functions:
            try:
                value = self._invoke(function, args, unknown_is_lost=False)
            except _AbsentError:
                value = None
            except _UnusableError as exc:
                self._note_unusable(function, exc.why, expected=True)
                continue
            except _FailedError:
                uncertain = True
                continue
            if not uncertain:
                with self._lock:
                    self._versions[family] = function
            return value
        if not uncertain:
            with self._lock:
                self._versions[family] = None
            LOG.warning(
                "NVML can run none of %s; %s readings are unavailable", list(functions), family
            )
        return None

    def constant(self, name: str, default: int) -> int:
        """An NVML enum value by pynvml name, ``default`` when this pynvml lacks it."""
        value = getattr(self._nvml, name, default)
        return value if isinstance(value, int) else default

    def _value(self, function: str, args: tuple[object, ...], *, unknown_is_lost: bool) -> Any:
        try:
            return self._invoke(function, args, unknown_is_lost=unknown_is_lost)
        except (_AbsentError, _FailedError):
            return None
        except _UnusableError as exc:
            self._note_unusable(function, exc.why, expected=False)
            return None

    def _invoke(self, function: str, args: tuple[object, ...], *, unknown_is_lost: bool) -> Any:
        func = getattr(self._nvml, function, None)
        if not callable(func):
            raise _UnusableError(function, "missing from nvidia-ml-py")
        if function in self._unusable:
            raise _UnusableError(function, "known unusable")
        try:
            value = func(*args)
        except self._error_type as exc:
            code = error_code(exc)
            if code in _UNUSABLE_CODES:
                raise _UnusableError(function, error_message(exc)) from exc
            if code in _LOST_CODES or (unknown_is_lost and code == UNKNOWN):
                raise GpuLostError(function, code or UNKNOWN, error_message(exc)) from exc
            if code is None or code in _ABSENT_CODES:
                raise _AbsentError(function) from exc
            if code == UNKNOWN:
                with self._lock:
                    self.unknown_answers += 1
            self._log_once(function, code, exc)
            raise _FailedError(function) from exc
        except self._mismatch_type as exc:
            raise _UnusableError(function, error_message(exc)) from exc
        if isinstance(value, bytes):
            return decode_text(value)
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    def _note_unusable(self, function: str, why: str, *, expected: bool) -> None:
        with self._lock:
            if function in self._unusable:
                return
            self._unusable.add(function)
        if expected:
            LOG.debug(
                "NVML function %s cannot be used (%s); trying an older version", function, why
            )
        else:
            LOG.warning(
                "NVML function %s cannot be used (%s; nvidia-ml-py and the NVIDIA driver may not "
                "match); its readings are reported as unavailable",
                function,
                why,
            )

    def _log_once(self, function: str, code: int, exc: BaseException) -> None:
        with self._lock:
            if (function, code) in self._logged:
                return
            self._logged.add((function, code))
        LOG.warning("%s failed: %s; reported as unavailable", function, error_message(exc))
