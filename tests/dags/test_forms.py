"""The trigger forms of the two request workflows as staff get them: each DAG's params as Airflow's API
gives them to the form (the serialized DAG, dumped as `GET /api/v2/dags/{id}/details` does), read the
way the form reads them; and runs of forms that miss what a request needs."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from include.demo.shop import SHOP_CONTROLLER
from include.vault.schema import rights_request
from include.vault.store import Vault
from tests.dags.conftest import ACCESS_FORM, task_states

RUN_DAY = datetime(2026, 11, 24, 10, tzinfo=UTC)
EMAIL = "form.check@example.org"
RIGHTS_FORM = dict.fromkeys(("phone", "received_on", "rectify_field", "corrected_value", "objection_ground",
                             "person_told_on"))
CONTROLLER_NAMES = ["Fenland Cycles Ltd", "Glencoe Outdoor Supplies Ltd", "Jigowatt Ltd (own enquiries)",
                    "Lagan Valley Bakery Ltd", "Oak Home Interiors Ltd"]


def form_of(dag) -> dict[str, dict]:
    """{field: {"value", "schema", "description"}}, in the form's order, as the API server sends them."""
    from airflow.api_fastapi.core_api.datamodels.dags import DAGDetailsResponse
    from airflow.serialization.serialized_objects import DagSerialization

    serialized = DagSerialization.from_dict(json.loads(json.dumps(DagSerialization.to_dict(dag))))
    return json.loads(json.dumps(DAGDetailsResponse.get_params(serialized.params)))


def choices_shown(field: dict) -> list[str]:
    """A drop-down's choices as the form labels them (Airflow's FieldDropdown: the value's entry in
    values_display, else the entry of None, else the value itself, None written "null")."""
    labels = field["schema"].get("values_display") or {}
    shown = []
    for value in field["schema"]["enum"]:
        written = "null" if value is None else str(value)
        shown.append(labels.get(written, labels.get("None", written)))
    return shown


def required(field: dict) -> bool:
    """As the form decides (isParamRequired): a type is given, and it does not allow null."""
    kind = field["schema"].get("type")
    return bool(kind) and not (isinstance(kind, list) and "null" in kind)


def validated(dag, conf: dict) -> dict:
    """The run's params, checked as the API server checks a trigger's conf."""
    params = copy.deepcopy(dag.params)
    params.update(conf)
    return params.validate()


def test_the_controller_is_chosen_by_name_and_an_empty_choice_is_never_shown_as_null(dagbag):
    rights = form_of(dagbag.get_dag("subject_rights"))["controller"]
    assert required(rights) and rights["value"] is None
    assert choices_shown(rights) == CONTROLLER_NAMES

    access = form_of(dagbag.get_dag("dsar_fulfilment"))["controller"]
    assert not required(access) and access["value"] is None
    empty, *named = choices_shown(access)
    assert named == CONTROLLER_NAMES
    assert empty == "(none: work every open request)"


def test_the_right_must_be_chosen_and_nothing_is_chosen_in_advance(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.get_dag("subject_rights")
    right = form_of(dag)["right"]
    assert required(right) and right["value"] is None and not dag.params.get_param("right").has_value
    assert choices_shown(right) == ["Rectification", "Erasure", "Restriction", "Lift a restriction", "Objection"]
    with pytest.raises(ParamValidationError):
        validated(dag, {"controller": SHOP_CONTROLLER, "email": EMAIL})
    assert validated(dag, {"controller": SHOP_CONTROLLER, "email": EMAIL, "right": "erase"})["right"] == "erase"


def test_each_rights_own_fields_are_in_its_section_and_required_of_none(dagbag):
    form = form_of(dagbag.get_dag("subject_rights"))
    sections = {name: field["schema"].get("section") for name, field in form.items()}
    # Fields without a section are in the form's first section, the one open when the form opens.
    assert sections == {"controller": None, "email": None, "phone": None, "right": None, "received_on": None,
                        "rectify_field": "Only for a rectification", "corrected_value": "Only for a rectification",
                        "objection_ground": "Only for an objection", "person_told_on": "Only for lifting a restriction"}
    assert {name for name, field in form.items() if required(field)} == {"controller", "email", "right"}
    assert all(field["schema"].get("title") and field["description"] for field in form.values())
    assert "null" not in choices_shown(form["rectify_field"]) + choices_shown(form["objection_ground"])
    assert {name for name, field in form.items() if field["value"] is not None} == set()


def test_the_email_field_says_what_is_expected_and_a_malformed_address_is_still_refused(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    for dag_id in ("subject_rights", "dsar_fulfilment"):
        dag = dagbag.get_dag(dag_id)
        assert "such as jane.smith@example.com" in form_of(dag)["email"]["description"]
        form = {"controller": SHOP_CONTROLLER, "right": "erase"} if dag_id == "subject_rights" else {
            "controller": SHOP_CONTROLLER}
        for bad in ("not-an-address", "two@@example.org", "Ada Lovelace <ada@example.org>"):
            with pytest.raises(ParamValidationError):
                validated(dag, {**form, "email": bad})


def registered_from_forms(settings) -> int:
    with Vault.open(settings) as vault, vault.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(rights_request)
                            .where(rights_request.c.reference.like("airflow:%"))).scalar_one()


@pytest.mark.airflow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_access_form_with_only_a_controller_or_only_an_email_fails_naming_the_missing_field(
        dagbag, shop_world, capfd):
    dag = dagbag.get_dag("dsar_fulfilment")
    for hour, given, missing in ((10, {"controller": SHOP_CONTROLLER}, "'The person's email address'"),
                                 (11, {"email": EMAIL}, "'Controller'")):
        run = dag.test(logical_date=RUN_DAY.replace(hour=hour), run_conf={**ACCESS_FORM, **given})
        assert run.state == "failed"
        # Failed, not up for retry: a retry would get the same answer; nothing after it ran.
        states = task_states(run.run_id)
        assert states[("register_or_select_requests", -1)] == "failed"
        assert states[("package_and_deliver", -1)] == "upstream_failed"
        printed = capfd.readouterr()
        assert f"the form has no {missing}: a request needs 'Controller' and 'The person's email address' " \
               "together" in printed.out + printed.err
    assert registered_from_forms(shop_world) == 0


@pytest.mark.airflow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_objection_without_its_ground_fails_naming_the_field_and_its_section(dagbag, shop_world, capfd):
    run = dagbag.get_dag("subject_rights").test(logical_date=RUN_DAY, run_conf={
        **RIGHTS_FORM, "controller": SHOP_CONTROLLER, "email": EMAIL, "right": "object"})
    assert run.state == "failed"
    assert task_states(run.run_id)[("register_request", -1)] == "failed"
    printed = capfd.readouterr()
    assert "the right 'Objection' needs 'Ground' (section 'Only for an objection'), which the form left empty" \
        in printed.out + printed.err
    assert registered_from_forms(shop_world) == 0
