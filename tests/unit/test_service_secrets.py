"""The VSOA password is a secret: validation never quotes it, the revision annotations never
hold it, the service controller sends it to ECSM and logs nothing of it."""

from __future__ import annotations

import json
import logging

import pytest

from ecsm_actors.api import template_hash
from ecsm_actors.api.secrets import REDACTED
from ecsm_actors.controllers.service import history
from ecsm_actors.controllers.service.actuator import rejected
from ecsm_actors.errors import EcsmApiError
from tests.unit.service_world import PASSWORD, World, causes, ecsm_vsoa, vsoa_service


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("value, kind", [(123456789, "integer"), (1.5, "number"),
                                         (True, "boolean"), (["pw"], "list")])
def test_a_password_of_the_wrong_type_is_refused_without_quoting_it(value, kind):
    [cause] = causes(vsoa_service(password=value))
    assert cause == f"spec.template.vsoa.password: expected string, got {kind} {REDACTED}"
    assert str(value) not in cause and "pw" not in cause


def test_the_placeholder_is_refused_as_a_password_so_redacted_output_cannot_be_applied_back():
    [cause] = causes(vsoa_service(password=REDACTED))
    assert cause.startswith('spec.template.vsoa.password: "<redacted>" is what ecsm-cli shows')
    assert "--show-secrets" in cause


# -- revision hash ---------------------------------------------------------------------------


def test_the_revision_hash_of_existing_templates_is_unchanged():
    # Values computed by the version before passwordFile existed.
    assert template_hash({"image": "app@1.0", "hostname": "web"}) == "2ce3d28b62"
    assert template_hash({"image": "app@1.0", "hostname": "web",
                          "vsoa": {"password": "s3cret", "port": 0}}) == "bd8154dae2"
    assert template_hash({"image": "app@1.0", "hostname": "web", "vsoa": {
        "port": 7000, "healthCheck": {"periodSeconds": 5}}}) == "8f7cd66c29"


# -- annotations ---------------------------------------------------------------------------


def test_a_recorded_template_holds_the_placeholder_never_the_password():
    value = history.encode(1, {"image": "app@1", "vsoa": {"password": PASSWORD, "port": 0}})
    assert PASSWORD not in value
    assert json.loads(value)["template"]["vsoa"] == {"password": REDACTED, "port": 0}


def test_records_of_an_older_version_are_rewritten_redacted_by_the_next_pass():
    clear = json.dumps({"revision": 1, "template": {"image": "app@1",
                                                    "vsoa": {"password": PASSWORD}}})
    before = {history.annotation_key("a" * 10): clear, "team": "ops"}
    after = history.updated_annotations(before, current="a" * 10,
                                        template={"image": "app@1"}, history_limit=2,
                                        on_ecsm=())
    assert after is not None and PASSWORD not in json.dumps(after)
    assert history.records(after)["a" * 10].template["vsoa"]["password"] == REDACTED
    assert history.records(after)["a" * 10].number == 1 and after["team"] == "ops"
    assert PASSWORD not in json.dumps(history.redacted_annotations(before))


def test_undo_restores_a_template_with_the_password_the_object_has_now():
    rec = history.RevisionRecord(revision="a" * 10, number=1, template={
        "image": "app@1.0", "hostname": "web", "vsoa": {"password": REDACTED}})
    now = {"image": "app@2.0", "hostname": "web", "vsoa": {"password": "new"}}
    assert history.restore(rec, now) == {"image": "app@1.0", "hostname": "web",
                                         "vsoa": {"password": "new"}}
    assert history.restore(rec, {"image": "app@2.0", "hostname": "web"}) is None
    assert history.restore(rec, {"image": "app@2.0", "vsoa": {"passwordFile": "/s"}}) is None
    bare = history.RevisionRecord(revision="b" * 10, number=2, template={"image": "app@1.0"})
    assert history.restore(bare, now) == {"image": "app@1.0"}


# -- the controller --------------------------------------------------------------------------


def test_the_password_reaches_ecsm_but_neither_the_annotations_nor_the_logs(caplog):
    caplog.set_level(logging.DEBUG)
    w = World()
    w.apply(vsoa_service(password=PASSWORD, port=0))
    w.settle("web")
    assert ecsm_vsoa(w) == [{"password": PASSWORD, "port": 0}]
    annotations = w.get("web")["metadata"]["annotations"]
    assert annotations and PASSWORD not in json.dumps(annotations)
    [rec] = history.records(annotations).values()
    assert rec.template["vsoa"]["password"] == REDACTED
    assert rec.revision == template_hash(w.get("web")["spec"]["template"])
    assert caplog.records and not any(PASSWORD in r.getMessage() for r in caplog.records)


def test_a_new_password_rolls_out_as_a_new_revision():
    w = World()
    w.apply(vsoa_service(password="first-password"))
    w.settle("web")
    w.apply(vsoa_service(password="second-password"))
    w.settle("web")
    live = [svc for svc in w.state.services.values() if svc.factor > 0]
    assert [svc.image["vsoa"]["password"] for svc in live] == ["second-password"]
    assert len(history.records(w.get("web")["metadata"]["annotations"])) == 2


def test_ecsm_quoting_the_password_in_a_rejection_is_redacted():
    e = EcsmApiError(400, f"bad vsoa password {PASSWORD!r}", field_errors=PASSWORD)
    error = rejected("service default.web.x", e, password=PASSWORD)
    assert PASSWORD not in str(error) and str(error).count(REDACTED) == 2
