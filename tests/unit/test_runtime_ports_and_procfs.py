"""Free ports and what /proc says about processes."""

import os
import socket

from test_coordinator.runtime.ports_alloc import free_port
from test_coordinator.targets.process import procfs


def test_free_port_can_be_bound() -> None:
    """The port returned is free: a server can bind it right away."""
    port = free_port()

    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        assert server.getsockname()[1] == port


def test_stat_of_this_process() -> None:
    """The fields match what the os module says about us."""
    stat = procfs.read_stat(os.getpid())

    assert stat is not None
    assert (stat.pid, stat.ppid, stat.pgrp, stat.session) == (
        os.getpid(),
        os.getppid(),
        os.getpgrp(),
        os.getsid(0),
    )
    assert stat.state in ("R", "S")
    assert procfs.is_alive(os.getpid())


def test_command_names_with_spaces_and_parentheses_parse() -> None:
    """comm may hold ') (' and spaces: fields are read after the last ')'."""
    raw = b"4242 (odd ) (name) Z 1 4240 4240 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 987 0 0\n"

    stat = procfs._parse_stat(raw)

    assert stat == procfs.ProcStat(4242, "Z", 1, 4240, 4240, 987)
    assert stat.is_zombie


def test_a_process_that_does_not_exist() -> None:
    """A pid beyond the kernel's maximum never exists."""
    assert procfs.read_stat(2**22 + 1) is None
    assert not procfs.is_alive(2**22 + 1)
    assert procfs.group_members(2**22 + 1) == []


def test_group_members_include_this_process() -> None:
    members = procfs.group_members(os.getpgrp())

    assert os.getpid() in [m.pid for m in members]
