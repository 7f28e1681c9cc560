"""StringList, the `wrt`/`check`/`params` field, against marshmallow's List(String): the same
values and the same errors for anything a body may hold."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError, fields, validate

from schemas.fields import StringList

items = st.one_of(st.text(max_size=4), st.sampled_from([b"x", None, 1, 2.5, True, ["a"], {}]))
values = st.one_of(
    st.lists(st.text(max_size=4), max_size=6),
    st.lists(items, max_size=6),
    st.sampled_from([None, "abc", 3, {"a": 1}, ("a", "b"), [], set()]),
)


class Fast(Schema):
    wrt = StringList(validate=validate.Length(min=1))


class Reference(Schema):
    wrt = fields.List(fields.String(), validate=validate.Length(min=1))


def outcome(schema: Schema, value: object) -> tuple:
    try:
        loaded = schema.load({"wrt": value})
    except ValidationError as error:
        return ("error", error.messages, error.valid_data)
    return ("ok", loaded, [type(item) for item in loaded["wrt"]])


@settings(max_examples=300, deadline=None)
@given(values)
def test_string_list_loads_as_a_list_of_strings(value):
    assert outcome(Fast(), value) == outcome(Reference(), value)


def test_a_list_of_strings_loads_as_a_new_list():
    given_list = ["x1", "x2", "x1"]
    loaded = Fast().load({"wrt": given_list})["wrt"]
    assert loaded == given_list and loaded is not given_list
