"""Who the call being handled is for: the Principal the AuthInterceptor (auth.py) bound to
the handler's task. A context variable, so it follows the call into asyncio.to_thread and into
tasks the handler creates (each copies the context when it is created); anything that runs
outside the call's tasks (a loop callback, a task another call created) must bind the
Principal it acts for itself. No gRPC here: domain code may use it."""

from __future__ import annotations

import contextvars
import enum
from dataclasses import dataclass

from corral.credentials import ON_BEHALF_ROLE_HEADER, PROJECT_HEADER
from corral.errors import Unauthenticated


class Role(enum.IntEnum):
    """Ordered: each role may do everything the ones below it may."""
    READER = 1
    WRITER = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"role must be reader, writer or admin, got {text!r}") from None

    @property
    def label(self) -> str:
        return self.name.lower()



@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `project` is the project the call acts in; None means every
    project: instance-wide keys (instance admins, the services) that name no project.
    `instance_wide` stays True for such keys even when they name one."""

    key_id: str
    role: Role
    project: str | None
    service: bool = False
    instance_wide: bool = False

    def sees(self, project: str) -> bool:
        return self.project is None or self.project == project

    def describe(self) -> str:
        scope = "all projects" if self.project is None else f"project {self.project!r}"
        who = "service" if self.service else f"key {self.key_id}"
        return f"{who} ({self.role.label}, {scope})"


_caller: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "corral_caller", default=None)


def caller() -> Principal:
    """The Principal of the call being handled."""
    principal = _caller.get()
    if principal is None:
        raise Unauthenticated("no authenticated caller")
    return principal


def caller_or_none() -> Principal | None:
    return _caller.get()


def on_behalf_headers() -> tuple[tuple[str, str], ...]:
    """Headers a service adds to its calls to another service while handling a user's call:
    the user's project and role, so it never acts beyond them."""
    principal = _caller.get()
    if principal is None or principal.service:
        return ()
    pairs = [(ON_BEHALF_ROLE_HEADER, principal.role.label)]
    if principal.project:
        pairs.append((PROJECT_HEADER, principal.project))
    return tuple(pairs)


def bind_caller(principal: Principal | None) -> contextvars.Token:
    return _caller.set(principal)
