"""What the roles give away on a provisioned node: secrets' file modes, and Kamailio's local sockets."""

from __future__ import annotations

import grp
import re
import stat

import pytest

from tests.ansible.conftest import Provisioned

pytestmark = pytest.mark.timeout(900)


def test_the_directory_database_is_read_by_kamailio_and_the_service_only(provisioned: Provisioned) -> None:
    assert provisioned.first.returncode == 0, provisioned.first.output[-3000:]
    database = provisioned.path("var/lib/zhida/data/kamailio.sqlite").stat()
    assert stat.S_IMODE(database.st_mode) == 0o640
    assert grp.getgrgid(database.st_gid).gr_name == "kamailio"


def test_services_create_files_for_their_group_only(provisioned: Provisioned) -> None:
    for service in ("controller", "recognizer", "routing"):
        unit = provisioned.path(f"etc/systemd/system/zhida-{service}.service").read_text()
        assert "UMask=0027" in unit.splitlines(), service


def test_kamailio_control_sockets_stay_on_loopback(provisioned: Provisioned) -> None:
    local = provisioned.path("etc/kamailio/kamailio-local.cfg").read_text()
    for name in ("EVAPI_BIND", "RPC_DGRAM_SOCKET"):
        value = re.search(rf'^#!define {name} "(.*)"$', local, re.MULTILINE)
        assert value is not None, name
        assert re.match(r"^(udp:)?127\.0\.0\.1:\d+$", value.group(1)), value.group(0)


def test_admission_bounds_reach_kamailio(provisioned: Provisioned) -> None:
    local = provisioned.path("etc/kamailio/kamailio-local.cfg").read_text().splitlines()
    assert "#!define SIP_MAX_BODY 8192" in local
    assert "#!define PIKE_DENSITY 30" in local
    assert '#!substdef "!BAN_SECONDS!300!g"' in local
