"""ECSMService → ECSM create/update bodies (ecsm-api.md §3.2, §3.5, §9)."""

from __future__ import annotations

import copy

import pytest

from ecsm_actors.controllers.service import mapping
from ecsm_actors.controllers.service.naming import (
    owned_prefix,
    parse_owned,
    service_name,
    split_key,
)
from ecsm_actors.errors import TerminalError

IMAGE_CONFIG = {
    "platform": {"os": "sylixos", "arch": "arm64"},
    "process": {"args": ["/apps/app/app"], "env": ["PATH=/bin", "APP_NAME=app"], "cwd": "/apps"},
    "root": {"path": "/var/rootfs/app", "readonly": False},
    "hostname": "app",
    "mounts": [{"destination": "/var/log", "source": "/data/log", "options": ["rw"]}],
    "sylixos": {
        "devices": [{"path": "/dev/ttyS0", "access": "rw"}],
        "resources": {"cpu": {"highestPrio": 200, "lowestPrio": 255},
                      "memory": {"kheapLimit": 1024, "memoryLimitMB": 256},
                      "disk": {"limitMB": 1024},
                      "kernelObject": {"threadLimit": 100}},
        "network": {"ftpdEnable": False, "telnetdEnable": False},
        "commands": ["echo hi"],
    },
}


def spec(**template) -> dict:
    return {"deploymentStrategy": {"type": "Dynamic", "nodePool": ["node-1"], "replicas": 2},
            "upgradeStrategy": {"type": "Never"},
            "template": {"image": "app@1.0", **template}}


def config_of(s: dict, base=IMAGE_CONFIG) -> dict:
    return mapping.container_config(s["template"], base, default_hostname="web")


# -- naming --------------------------------------------------------------------------------

def test_an_ecsm_service_name_is_namespace_name_revision():
    assert service_name("prod", "web", "0123456789") == "prod.web.0123456789"
    assert owned_prefix("prod", "web") == "prod.web."


@pytest.mark.parametrize(("ecsm_name", "owned"), [
    ("prod.web.0123456789", True),
    ("prod.web.012345678", False),         # too short
    ("prod.web.0123456789x", False),       # trailing junk
    ("prod.webx.0123456789", False),       # a name with our name as prefix
    ("xprod.web.0123456789", False),       # the filter is a substring match
    ("prod.web.ABCDEF0123", False),        # revisions are lowercase hex
    ("prod.web.web.0123456789", False),
])
def test_only_exact_revisions_of_the_object_are_owned(ecsm_name, owned):
    assert (parse_owned(ecsm_name, "prod", "web") is not None) is owned


def test_a_key_splits_into_namespace_and_name():
    assert split_key("prod/web") == ("prod", "web")
    assert split_key("web") == ("default", "web")


# -- image ref, action, policy ------------------------------------------------------------------

@pytest.mark.parametrize(("template", "ref"), [
    ({"image": "app@1.0#linux"}, "app@1.0#linux"),
    ({"image": "app@1.0"}, "app@1.0#sylixos"),
    ({"image": "app@1.0", "platformSpecific": {"platform": {"os": "linux"}}}, "app@1.0#linux"),
])
def test_the_image_ref_always_carries_an_os(template, ref):
    assert mapping.image_ref(template) == ref


@pytest.mark.parametrize(("platform_specific", "action"), [
    ({}, "run"), ({"action": "Run"}, "run"), ({"action": "Load"}, "load")])
def test_the_action_is_lowercased_and_defaults_to_run(platform_specific, action):
    assert mapping.action_of({"platformSpecific": platform_specific}) == action


@pytest.mark.parametrize(("strategy", "policy"), [("Static", "static"), ("Dynamic", "dynamic")])
def test_the_policy_is_the_lowercased_strategy(strategy, policy):
    assert mapping.policy_of({"deploymentStrategy": {"type": strategy}}) == policy


# -- container config overlay ---------------------------------------------------------------------

def test_without_template_fields_the_image_config_is_kept_and_hostname_defaulted():
    out = config_of(spec())
    assert out["process"] == IMAGE_CONFIG["process"]
    assert out["sylixos"] == IMAGE_CONFIG["sylixos"]
    assert out["hostname"] == "web"


def test_the_base_config_is_never_mutated():
    before = copy.deepcopy(IMAGE_CONFIG)
    config_of(spec(command=["x"], env=[{"name": "A", "value": "1"}],
                   resources={"limits": {"memory": "1Gi"}},
                   platformSpecific={"sylixos": {"cpu": {"highestPrio": 100}}}))
    assert IMAGE_CONFIG == before


def test_command_replaces_args_and_env_overrides_by_name_and_appends():
    out = config_of(spec(command=["/bin/app", "-v"], hostname="h1",
                         env=[{"name": "APP_NAME", "value": "web"}, {"name": "NEW", "value": ""}]))
    assert out["process"] == {"args": ["/bin/app", "-v"],
                              "env": ["PATH=/bin", "APP_NAME=web", "NEW="], "cwd": "/apps"}
    assert out["hostname"] == "h1"


def test_a_missing_image_config_still_gives_a_complete_process_block():
    out = config_of(spec(), base=None)
    assert out["process"] == {"args": [], "env": [], "cwd": "/"}


@pytest.mark.parametrize(("limits", "memory_mb", "disk_mb"), [
    ({"memory": "512Mi"}, 512, 1024),
    ({"memory": "1Gi", "disk": "2Gi"}, 1024, 2048),
    ({"memory": "100M"}, 96, 1024),           # rounded up, never silently lowered
    ({"disk": "1536Mi"}, 256, 1536),
])
def test_limits_become_whole_mebibytes(limits, memory_mb, disk_mb):
    res = config_of(spec(resources={"limits": limits}))["sylixos"]["resources"]
    assert res["memory"]["memoryLimitMB"] == memory_mb
    assert res["disk"]["limitMB"] == disk_mb
    assert res["memory"]["kheapLimit"] == 1024 and res["kernelObject"] == {"threadLimit": 100}


def test_a_bad_quantity_is_a_terminal_error():
    with pytest.raises(TerminalError):
        config_of(spec(resources={"limits": {"memory": "lots"}}))


def test_volume_mounts_map_to_oci_mounts_overriding_by_destination():
    out = config_of(spec(volumeMounts=[
        {"name": "logs", "hostPath": "/srv/log", "containerPath": "/var/log", "readOnly": True},
        {"name": "data", "hostPath": "/srv/data", "containerPath": "/data"}]))
    assert out["mounts"] == [
        {"destination": "/var/log", "source": "/srv/log", "options": ["ro"]},
        {"destination": "/data", "source": "/srv/data", "options": ["rw"]}]


def test_platform_specific_fields_overlay_root_platform_and_sylixos():
    out = config_of(spec(platformSpecific={
        "root": {"path": "/rootfs", "readOnly": True},
        "platform": {"arch": "x86_64"},
        "sylixos": {"devices": [{"path": "/dev/gpio", "access": "r"}],
                    "network": {"ftpd": True},
                    "cpu": {"highestPrio": 150, "lowestPrio": 250},
                    "memory": {"kheapLimit": 4096}}}))
    assert out["root"] == {"path": "/rootfs", "readonly": True}
    assert out["platform"] == {"os": "sylixos", "arch": "x86_64"}
    sylixos = out["sylixos"]
    assert sylixos["devices"] == [{"path": "/dev/gpio", "access": "r"}]
    assert sylixos["network"] == {"ftpdEnable": True, "telnetdEnable": False}
    assert sylixos["resources"]["cpu"] == {"highestPrio": 150, "lowestPrio": 250}
    assert sylixos["resources"]["memory"] == {"kheapLimit": 4096, "memoryLimitMB": 256}
    assert sylixos["commands"] == ["echo hi"]


def test_a_sylixos_block_is_created_with_all_resource_keys_when_the_image_has_none():
    out = config_of(spec(resources={"limits": {"memory": "64Mi"}}), base={})
    assert out["sylixos"]["resources"] == {"cpu": None, "memory": {"memoryLimitMB": 64},
                                           "disk": None, "kernelObject": None}


# -- vsoa, image spec, bodies --------------------------------------------------------------------

def test_vsoa_health_check_fields_are_renamed_and_empty_ones_omitted():
    vsoa = {"password": "pw", "port": 0,
            "healthCheck": {"timeoutSeconds": 3, "failureThreshold": 5,
                            "initialDelaySeconds": 10, "periodSeconds": 30}}
    assert mapping.vsoa_of({"vsoa": vsoa}) == {
        "password": "pw", "port": 0, "healthTimeout": 3, "healthRetries": 5,
        "healthStartPeriod": 10, "healthInterval": 30}
    assert mapping.vsoa_of({}) is None


def test_the_create_body_carries_every_top_level_field_and_prepull():
    s = spec(imagePullPolicy="Always", prepull=True)
    s["upgradeStrategy"] = {"type": "Larger"}
    body = mapping.create_body(s, ecsm_name="default.web.0123456789", default_hostname="web",
                               factor=2, node_names=["node-1"], base_config=IMAGE_CONFIG)
    assert set(body) == {"name", "image", "node", "factor", "policy", "prepull"}
    assert body["name"] == "default.web.0123456789"
    assert body["node"] == {"names": ["node-1"]} and body["factor"] == 2
    assert body["policy"] == "dynamic" and body["prepull"] is True
    image = body["image"]
    assert image["ref"] == "app@1.0#sylixos" and image["action"] == "run"
    assert image["pullPolicy"] == "Always" and image["autoUpgrade"] == "Larger"
    assert "vsoa" not in image


def test_the_update_body_has_the_id_and_no_prepull():
    body = mapping.update_body(service_id="s1", ecsm_name="n", image={"ref": "r"}, factor=0,
                               node_names=("node-2",), policy="static")
    assert body == {"id": "s1", "name": "n", "image": {"ref": "r"},
                    "node": {"names": ["node-2"]}, "factor": 0, "policy": "static"}
