"""The one place that calls nvidia-ml-py: error mapping, bytes decoding, API-version probing.

Every NVML call of the collector goes through :class:`NvmlQuery`, so the rules live here:

* a reading the GPU, driver or user cannot provide (``NOT_SUPPORTED``, ``NO_PERMISSION``,
  ``NOT_FOUND``, ``TIMEOUT``, ``FUNCTION_NOT_FOUND``, or a function an old ``pynvml`` lacks)
  becomes ``None``;
* an error that means the GPU itself stopped answering (``GPU_IS_LOST``, ``UNKNOWN``,
  ``RESET_REQUIRED``) raises :class:`GpuLostError`, so the caller marks just that GPU lost;
* ``bytes`` from old ``pynvml`` releases become ``str``;
* a missing function is logged once per name, not on every sample.

This module is internal to ``gpufleet.collectors``; it imports nothing but the standard library.
"""

from __future__ import annotations

import logging
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
UNKNOWN = 999

# "No data here" answers: expected on some GPUs, drivers or users, so they stay quiet.
# pynvml raises NVMLError(SUCCESS) when a list query (process utilization) finds nothing.
_ABSENT_CODES = frozenset({SUCCESS, NOT_SUPPORTED, NO_PERMISSION, NOT_FOUND, TIMEOUT})
# The GPU itself is gone or wedged; every later call on it would fail the same way.
_LOST_CODES = frozenset({GPU_IS_LOST, UNKNOWN, RESET_REQUIRED})

ULLONG_MAX = 2**64 - 1
"""NVML_VALUE_NOT_AVAILABLE for unsigned long long fields (old pynvml passes it through)."""


class GpuLostError(Exception):
    """A GPU stopped answering NVML; raised by :class:`NvmlQuery` for that GPU's calls only.

    Attributes:
        function: The NVML function that failed.
        code: The NVML return code (``GPU_IS_LOST``, ``UNKNOWN`` or ``RESET_REQUIRED``).
    """

    def __init__(self, function: str, code: int, message: str) -> None:
        super().__init__(f"{function}: {message}")
        self.function = function
        self.code = code


class _FunctionMissingError(Exception):
    """The function is absent from pynvml or from the driver's libnvidia-ml.so."""


class _AbsentError(Exception):
    """NVML answered, but has no value for this GPU, driver or user."""


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


class NvmlQuery:
    """Calls ``nvml.<function>(*args)`` and maps its errors; see the module docstring.

    Args:
        nvml: The ``pynvml`` module (or a test double exposing the same names).
    """

    def __init__(self, nvml: ModuleType) -> None:
        self._nvml = nvml
        self._error_type: type[BaseException] = getattr(nvml, "NVMLError", Exception)
        self._lock = threading.Lock()
        self._missing: set[str] = set()
        self._logged: set[tuple[str, int]] = set()
        self._versions: dict[str, str | None] = {}

    def __call__(self, function: str, *args: object) -> Any:
        """Call one NVML function.

        Args:
            function: Its pynvml name, e.g. ``"nvmlDeviceGetPowerUsage"``.
            *args: Passed through (handles, enum values).

        Returns:
            The value (``bytes`` decoded to ``str``), or ``None`` when the reading is not
            available here.

        Raises:
            GpuLostError: The GPU behind the handle stopped answering.
        """
        try:
            return self._invoke(function, args)
        except _AbsentError:
            return None
        except _FunctionMissingError:
            self._note_missing(function, expected=False)
            return None

    def succeeds(self, function: str, *args: object) -> bool:
        """Call an NVML function that returns nothing; say whether it worked.

        Args:
            function: Its pynvml name, e.g. ``"nvmlDeviceRegisterEvents"``.
            *args: Passed through.

        Returns:
            True when the call returned without error.

        Raises:
            GpuLostError: The GPU behind the handle stopped answering.
        """
        try:
            self._invoke(function, args)
        except _AbsentError:
            return False
        except _FunctionMissingError:
            self._note_missing(function, expected=False)
            return False
        return True

    def first_of(self, family: str, functions: Sequence[str], *args: object) -> Any:
        """Call the newest of several versions of one API that this pynvml and driver have.

        The version that answers (even with "not supported") is remembered under ``family``,
        so later calls go straight to it; older versions missing is expected and logged at
        debug level, all of them missing is logged once as a warning.

        Args:
            family: A name for the API, e.g. ``"compute_processes"``.
            functions: pynvml names, newest first.
            *args: Passed through.

        Returns:
            As :meth:`__call__`.

        Raises:
            GpuLostError: The GPU behind the handle stopped answering.
        """
        with self._lock:
            known = family in self._versions
            chosen = self._versions.get(family)
        if known:
            if chosen is None:
                return None
            return self(chosen, *args)
        for function in functions:
            try:
                value = self._invoke(function, args)
            except _AbsentError:
                value = None
            except _FunctionMissingError:
                self._note_missing(function, expected=True)
                continue
            with self._lock:
                self._versions[family] = function
            return value
        with self._lock:
            self._versions[family] = None
        LOG.warning("NVML has none of %s; %s readings are unavailable", list(functions), family)
        return None

    def constant(self, name: str, default: int) -> int:
        """An NVML enum value by pynvml name, ``default`` when this pynvml lacks it."""
        value = getattr(self._nvml, name, default)
        return value if isinstance(value, int) else default

    def _invoke(self, function: str, args: tuple[object, ...]) -> Any:
        func = getattr(self._nvml, function, None)
        if not callable(func):
            raise _FunctionMissingError(function)
        try:
            value = func(*args)
        except self._error_type as exc:
            code = error_code(exc)
            if code == FUNCTION_NOT_FOUND:
                raise _FunctionMissingError(function) from exc
            if code in _LOST_CODES:
                raise GpuLostError(function, code, error_message(exc)) from exc
            if code is not None and code not in _ABSENT_CODES:
                self._log_once(function, code, exc)
            raise _AbsentError(function) from exc
        return decode_text(value) if isinstance(value, bytes) else value

    def _note_missing(self, function: str, *, expected: bool) -> None:
        with self._lock:
            if function in self._missing:
                return
            self._missing.add(function)
        if expected:
            LOG.debug("NVML function %s is missing; trying an older version", function)
        else:
            LOG.warning(
                "NVML function %s is missing (nvidia-ml-py and the NVIDIA driver may not match); "
                "its readings are reported as unavailable",
                function,
            )

    def _log_once(self, function: str, code: int, exc: BaseException) -> None:
        with self._lock:
            if (function, code) in self._logged:
                return
            self._logged.add((function, code))
        LOG.warning("%s failed: %s; reported as unavailable", function, error_message(exc))
