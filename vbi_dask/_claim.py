"""One writer per store: a claim file beside the store, held while a driver writes.

A driver claims ``STORE`` by creating ``STORE.lock`` (a JSON record: host, pid, the
process's start time, a random token, when and why it was claimed) and refreshes the
file's modification time every ``lease_s / 4`` seconds while it runs. A second driver
finds the file and is refused with the holder named, unless the claim is stale:

- same host: the holder's process is gone (or its pid now belongs to a process started
  later);
- another host: the file was not refreshed for ``lease_s`` seconds, measured on the file
  server's clock (a probe file's time), so clocks of different nodes need not agree.

The claim file is written under a temporary name and hard-linked into place, so it
appears complete or not at all, and two drivers cannot both create it (``link`` is
atomic on local filesystems and on NFS). A stale claim is taken over by renaming it
away under a unique name: of two drivers that race for it, one rename succeeds; the
renamed file is checked to be the claim judged stale and put back otherwise.

The claim sits beside the store rather than inside it: Zarr warns about foreign files
in a group, and allocating a store (``to_zarr(mode="w")``) clears its folder.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["StoreLock", "StoreLockedError", "LEASE_S", "Claim", "read_claim"]

# Seconds without a refresh after which a claim from another host is stale, unless the
# ``vbi_dask.store-lease`` Dask setting says otherwise (see vbi_dask._config). A live
# driver refreshes every lease / 4 s; a driver frozen for longer loses its claim.
LEASE_S = 120.0


def _default_lease() -> float:
    from ._config import get

    return float(get("store-lease"))


class StoreLockedError(RuntimeError):
    """Another live driver holds the store (the message names host, pid and start)."""


def _proc_start(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[19])  # field 22 of stat(5), counted after "pid (comm)"
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int, start: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    if start is not None:
        now = _proc_start(pid)
        return now is None or now == start
    return True


def _describe(claim: dict[str, Any]) -> str:
    return f"host {claim.get('host')!s}, pid {claim.get('pid')}, since {claim.get('started')}" + (
        f" ({claim['purpose']})" if claim.get("purpose") else ""
    )


@dataclass(frozen=True)
class Claim:
    """A claim on a store as :func:`read_claim` found it."""

    path: str
    holder: dict[str, Any]  # the claim file's record: host, pid, started, purpose, ...
    age_s: float | None  # since its holder last refreshed it, by this machine's clock
    stale: str | None  # why the next driver would take it over; None while it looks live

    def __str__(self) -> str:
        refreshed = f", last refreshed {self.age_s:.0f} s ago" if self.age_s is not None else ""
        verdict = f"looks stale: {self.stale}; the next driver takes it over" if self.stale else "looks live"
        return f"held by {_describe(self.holder)}{refreshed}: {verdict}"


def read_claim(store: str | os.PathLike, *, lease_s: float | None = None) -> Claim | None:
    """The claim on ``store`` (its ``STORE.lock`` file), or None when no driver holds it.

    Read only: unlike :class:`StoreLock`, which times a claim from another host on the
    file server's clock (it writes a probe file), the age here is measured with this
    machine's clock. ``lease_s``: the lease to judge it by (default: the one the claim
    records, else :data:`LEASE_S`).
    """
    lock = StoreLock(store, lease_s=lease_s)
    holder = lock._read()
    if holder is None:
        return None
    try:
        age = max(0.0, time.time() - lock.path.stat().st_mtime)
    except FileNotFoundError:  # released while we read it
        return None
    lease = float(lease_s if lease_s is not None else holder.get("lease_s") or _default_lease())
    stale = None
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        if not _alive(holder["pid"], holder.get("pid_start")):
            stale = f"process {holder['pid']} on this host is gone"
    elif age > lease and not holder.get("unreadable"):  # an unreadable claim is never taken over
        stale = f"not refreshed for {age:.0f} s (lease {lease:.0f} s)"
    return Claim(str(lock.path), holder, age, stale)


class StoreLock:
    """The claim on ``store``: ``with StoreLock(store, purpose="simulate"): ...``.

    Raises
    ------
    StoreLockedError
        On entry, when a live driver holds the store.
    """

    def __init__(self, store: str | os.PathLike, *, purpose: str = "", lease_s: float | None = None):
        self.store = Path(os.fspath(store))
        self.path = self.store.with_name(self.store.name + ".lock")
        self.purpose = purpose
        self.lease_s = float(_default_lease() if lease_s is None else lease_s)
        if not self.lease_s > 0:
            raise ValueError(f"lease_s must be positive, got {lease_s!r}")
        self.claim: dict[str, Any] | None = None
        self.lost: dict[str, Any] | None = None  # the claim that replaced ours, if any
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ public
    def acquire(self) -> "StoreLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        claim = {
            "host": socket.gethostname(),
            "pid": pid,
            "pid_start": _proc_start(pid),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "token": uuid.uuid4().hex,
            "purpose": self.purpose,
            "lease_s": self.lease_s,
        }
        for _ in range(8):  # each round either creates the claim or removes a stale one
            if self._create(claim):
                self.claim, self.lost = claim, None
                self._stop.clear()
                self._thread = threading.Thread(target=self._refresh, daemon=True, name="vbi-dask-claim")
                self._thread.start()
                return self
            holder = self._read()
            if holder is None:  # released between our attempt and this read
                continue
            reason = self._stale(holder)
            if reason is None:
                raise StoreLockedError(
                    f"store {str(self.store)!r} is being written by another driver: {_describe(holder)}; "
                    f"wait for it to finish or stop it (a claim from a dead process is taken over; from another "
                    f"host after {self.lease_s:.0f} s without refresh; claim file {str(self.path)!r})"
                )
            self._take_over(holder)
        raise StoreLockedError(
            f"could not claim store {str(self.store)!r}: its claim file {str(self.path)!r} kept changing"
        )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.claim is not None and self.lost is None:
            self._remove_if(self.claim["token"])
        self.claim = None

    def check(self) -> None:
        """Raise :class:`StoreLockedError` if another driver took the claim over."""
        if self.lost is not None:
            raise StoreLockedError(
                f"this driver lost its claim on store {str(self.store)!r} to another driver "
                f"({_describe(self.lost)}); was this driver stopped for longer than the claim's {self.lease_s:g} s lease?"
            )

    def __enter__(self) -> "StoreLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    # ------------------------------------------------------------------ file operations
    def _create(self, claim: dict[str, Any]) -> bool:
        tmp = self.path.with_name(f"{self.path.name}.{claim['token']}.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(claim, handle)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def _read(self, path: Path | None = None) -> dict[str, Any] | None:
        try:
            with open(path or self.path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            return None
        try:
            claim = json.loads(text)
        except ValueError:
            claim = None
        if not isinstance(claim, dict):  # not written by this module: refuse to guess
            return {"host": "?", "pid": "?", "started": "?", "token": None, "unreadable": True}
        return claim

    def _stale(self, holder: dict[str, Any]) -> str | None:
        """Why ``holder``'s claim is stale, or None while it is live."""
        if holder.get("unreadable"):
            return None
        if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
            if not _alive(holder["pid"], holder.get("pid_start")):
                return f"process {holder['pid']} on this host is gone"
            return None
        age = self._age()
        if age is not None and age > self.lease_s:
            return f"not refreshed for {age:.0f} s (lease {self.lease_s:.0f} s)"
        return None

    def _age(self) -> float | None:
        """Seconds since the claim file was refreshed, on the file server's clock."""
        probe = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}.clock")
        try:
            probe.touch()
            now = probe.stat().st_mtime
            return now - self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        finally:
            probe.unlink(missing_ok=True)

    def _take_over(self, holder: dict[str, Any]) -> None:
        aside = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}.stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:  # another driver took it first
            return
        moved = self._read(aside)
        if moved is not None and moved.get("token") != holder.get("token"):
            try:  # not the claim we judged stale: a driver claimed it meanwhile; put it back
                os.link(aside, self.path)
            except FileExistsError:
                pass
        aside.unlink(missing_ok=True)

    def _remove_if(self, token: str) -> None:
        holder = self._read()
        if holder is not None and holder.get("token") == token:
            self.path.unlink(missing_ok=True)

    def _refresh(self) -> None:
        while not self._stop.wait(self.lease_s / 4):
            holder = self._read()
            if holder is None or holder.get("token") != self.claim["token"]:
                self.lost = holder or {"host": "?", "pid": "?", "started": "? (claim file removed)"}
                return
            try:
                os.utime(self.path)
            except OSError:
                pass
