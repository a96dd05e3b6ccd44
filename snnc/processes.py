"""Process hygiene shared by everything that starts processes (Lava's worker, hwsim's pool): a
child must never outlive the program that started it, however that program ends."""
from __future__ import annotations

import ctypes
import os

PR_SET_PDEATHSIG = 1   # linux/prctl.h


def die_with_parent(sig: int, parent: int | None = None) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (prctl PR_SET_PDEATHSIG; a
    no-op on other systems). A parent killed outright (SIGKILL, or SIGTERM's default action) runs
    no clean-up, and pipes do not tell a blocked child: this is what ends it. With ``parent`` (the
    pid expected), a parent that died before the request was made ends us at once."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)
