"""Load long lists of small objects fast, with checks derived from a marshmallow schema.

marshmallow spends tens of microseconds per object: a 100,000-node graph would take seconds.
`ColumnLoader` reads a schema's declared fields once (data keys, required, load defaults, the
field classes and their Length validators) and then checks a list of objects column by column
with C-speed passes such as `set(map(type, column))` and `max(map(len, column))`. The schema
stays the single definition: objects that pass are built by the same function as the schema's
post_load, and any object that does not pass is loaded by the schema itself, so every error
message is marshmallow's own. `ObjectList` is the marshmallow field that uses it.

Supported field classes: String, List (or TupleList) of String, Dict with String keys, and
any other field loaded value by value through its own `deserialize` (a field may offer
`load_numbers(column)` to decode a column of plain numbers at once). An absent optional field
takes its load_default, else the default of `build`'s parameter of that name; the schema must
have no load hooks besides a post_load that calls `build(**data)`. `build` may refuse an
object by raising ValidationError (a rule across fields): that object is then loaded by the
schema, whose post_load raises the same error. The test comparing the two paths holds the
loader to this.

`ObjectList` may also take `build_columns`: it is handed the loaded columns chunk by chunk
(`ColumnLoader.column_chunks`: one call, no object per item, and each chunk still in cache
when it reads it; the graph's nodes become an engine NodeTable this way). When some object
fails the column checks the iteration raises `Rejected`; build_columns may also refuse the
columns by raising ValidationError. Either sends the list down the object path above.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterator
from itertools import chain, compress, count, repeat
from operator import is_not

from marshmallow import RAISE, Schema, ValidationError, fields, missing, validate

_MissingType = type(missing)


# Rows are checked a chunk of this many at a time: a chunk's dicts and values stay in the
# processor's cache through all the column passes, which over a whole list of 100,000 rows
# would each fetch them from memory again (measured: the passes take half the time).
CHUNK = 2048


class _Reject(Exception):
    """Some object in the chunk fails a column check; split the chunk to find which."""


class Rejected(Exception):
    """Some object of a list fails the column checks: the list is loaded object by object."""


def _length_bounds(validators: list) -> tuple[int, float] | None:
    """The (min, max) of a list of Length validators; None if any validator is something else."""
    low, high = 0, float("inf")
    for validator in validators:
        if type(validator) is not validate.Length:
            return None
        if validator.equal is not None:
            low, high = max(low, validator.equal), min(high, validator.equal)
        else:
            low = max(low, validator.min or 0)
            high = min(high, validator.max if validator.max is not None else float("inf"))
    return low, high


def _check_lengths(values, bounds: tuple[int, float]) -> None:
    low, high = bounds
    if low <= 0 and high == float("inf"):
        return
    if values:
        lengths = list(map(len, values))  # one pass over the strings, then over small ints
        if min(lengths) < low or max(lengths) > high:
            raise _Reject


def _plain(field: fields.Field) -> bool:
    return not field.pre_load and not field.post_load


def _strings_check(field: fields.Field) -> Callable | None:
    """Check for a column of str values (String's own accepts bytes too: those go the slow way)."""
    bounds = _length_bounds(field.validators)
    if type(field) is not fields.String or not _plain(field) or bounds is None:
        return None

    def check(values, kinds: set | None = None):
        if not (set(map(type, values)) if kinds is None else kinds) <= {str}:
            raise _Reject
        _check_lengths(values, bounds)
        return values

    check.needs_values = bounds != (0, float("inf"))  # given the kinds, only lengths read them
    return check


class TupleList(fields.List):
    """A List field that loads as a tuple."""

    def _deserialize(self, value, attr, data, **kwargs) -> tuple:
        return tuple(super()._deserialize(value, attr, data, **kwargs))


def _list_check(field: fields.Field) -> Callable | None:
    if type(field) not in (fields.List, TupleList) or not _plain(field) or field.validators:
        return None
    items = _strings_check(field.inner)
    if items is None:
        return None
    sequence = tuple if type(field) is TupleList else list

    def check(values, kinds: set | None = None):
        if not (set(map(type, values)) if kinds is None else kinds) <= {list}:
            raise _Reject
        if items.needs_values:
            items(list(chain.from_iterable(values)))
        else:  # the items' types alone, without a list of them all
            items((), set(map(type, chain.from_iterable(values))))
        return list(map(sequence, values))

    return check


def _dict_check(field: fields.Field) -> Callable | None:
    if type(field) is not fields.Dict or not _plain(field) or field.validators:
        return None
    if field.value_field is not None:
        return None
    keys = _strings_check(field.key_field) if field.key_field is not None else None
    if field.key_field is not None and keys is None:
        return None

    def check(values, kinds: set | None = None):
        if not (set(map(type, values)) if kinds is None else kinds) <= {dict}:
            raise _Reject
        if keys is not None:  # checking each distinct key checks them all
            keys(list(set(chain.from_iterable(values))))
        # The dicts are the parsed body's own, not copies: nothing modifies loaded attrs.
        return values

    return check


class _Column:
    """One field of the schema: how to read, check and convert its values across objects."""

    def __init__(self, name: str, field: fields.Field, absent: object):
        self.key = field.data_key if field.data_key is not None else name
        self.field = field
        # An absent field takes its load_default, else (left out of the loaded dict) the
        # default of build's parameter, as post_load's `build(**data)` would.
        self.absent = field.load_default if field.load_default is not missing else absent
        if not field.required and self.absent is inspect.Parameter.empty:
            raise TypeError(f"field '{name}' needs a load_default or a default in build")
        self.check = _strings_check(field) or _list_check(field) or _dict_check(field)
        numbers = getattr(field, "load_numbers", None)
        self.load_numbers = numbers if _plain(field) and not field.validators else None
        # A list or dict column whose absent value is an empty one (tuple(), list(), dict()):
        # an absent field reads as an empty container, which converts to just that, so the
        # column needs no separate pass for its absent rows. `empty` is the type of that
        # container: a list column shares one empty list (converted row by row), a dict
        # column gets a fresh dict a row (loaded dicts are not copied).
        self.empty = (
            list if self.check is not None and self.absent in (tuple, list) and
            type(field) in (fields.List, TupleList)
            else dict if self.check is not None and self.absent is dict
            and type(field) is fields.Dict
            else missing
        )

    def default(self):
        return self.absent() if callable(self.absent) else self.absent

    def _with_defaults(self, raw: list, present_loaded: list) -> list:
        absent = self.absent
        if callable(absent):
            values = iter(present_loaded)
            return [absent() if v is missing else next(values) for v in raw]
        column = [absent] * len(raw)
        present = compress(count(), map(is_not, raw, repeat(missing)))
        for i, value in zip(present, present_loaded, strict=True):
            column[i] = value  # a loop over the present values only (few in a sparse column)
        return column

    def load(self, rows: list, failed: set[int]) -> list:
        """This field's loaded value for every row; rows whose value fails go into `failed`."""
        if self.empty is not missing:  # the check refuses null (its type check) and converts
            fill = repeat([]) if self.empty is list else iter(dict, None)  # endless fresh dicts
            return self.check(list(map(dict.get, rows, repeat(self.key), fill)))
        raw = list(map(dict.get, rows, repeat(self.key), repeat(missing)))
        kinds = set(map(type, raw))
        has_missing = _MissingType in kinds
        if has_missing and self.field.required:
            raise _Reject
        if type(None) in kinds:
            raise _Reject  # null: let marshmallow word the error (or apply allow_none)
        present = list(compress(raw, map(is_not, raw, repeat(missing)))) if has_missing else raw
        if self.check is not None:  # told the types of the values present, known already
            loaded = self.check(present, kinds - {_MissingType})
        elif self.load_numbers is not None and (numbers := self.load_numbers(present)) is not None:
            loaded = numbers
        else:
            return self._load_each(rows, raw, failed)
        return self._with_defaults(raw, loaded) if has_missing else loaded

    def _load_each(self, rows: list, raw: list, failed: set[int]) -> list:
        loaded = []
        for i, (row, value) in enumerate(zip(rows, raw, strict=True)):
            if value is missing:
                loaded.append(self.default())
                continue
            try:
                loaded.append(self.field.deserialize(value, self.key, row))
            except ValidationError:
                failed.add(i)
                loaded.append(None)
        return loaded


def _parameter_defaults(build: Callable) -> dict[str, object]:
    """build's parameters with their defaults; a dataclass's default_factory stands as itself."""
    if dataclasses.is_dataclass(build):
        return {
            f.name: f.default_factory if f.default_factory is not dataclasses.MISSING
            else f.default if f.default is not dataclasses.MISSING
            else inspect.Parameter.empty
            for f in dataclasses.fields(build)
            if f.init
        }
    return {name: p.default for name, p in inspect.signature(build).parameters.items()}


class ColumnLoader:
    """Builds objects from a list of dicts column by column, as `schema.load` + `build` would."""

    def __init__(self, schema: Schema, build: Callable[..., object]):
        if schema.unknown != RAISE:
            raise TypeError("ColumnLoader supports schemas that raise on unknown fields")
        names = list(schema.load_fields)
        defaults = _parameter_defaults(build)
        if list(defaults) != names:
            raise TypeError(f"build takes {list(defaults)}; the schema's fields are {names}")
        self.columns = [
            _Column(name, field, defaults[name]) for name, field in schema.load_fields.items()
        ]
        # Columns that convert value by value go last, so a chunk rejected by a cheap check
        # has not decoded them yet.
        self.order = sorted(range(len(self.columns)), key=lambda i: self.columns[i].check is None)
        self.allowed_keys = frozenset(column.key for column in self.columns)
        self.build = build

    def load(self, rows: list, fallback: Callable[[int], object]) -> list:
        """The objects built from `rows`; `fallback(i)` builds row i where the checks fail.

        Rows go CHUNK at a time; chunks that fail a column check are halved until the failing
        rows stand alone, so a few bad rows cost a few extra passes, not a slow path for all.
        Rows are settled in order, fallbacks included, so an error raised part-way (TooLarge)
        is the one that loading row by row would raise.
        """
        results: list = [None] * len(rows)
        pending = [(start, min(start + CHUNK, len(rows)))  # a stack: the first chunk on top
                   for start in reversed(range(0, len(rows), CHUNK))]
        while pending:
            start, stop = pending.pop()
            try:
                built, bad = self._load_chunk(rows[start:stop])
            except _Reject:
                if stop - start == 1:
                    results[start] = fallback(start)
                else:
                    middle = (start + stop) // 2
                    pending += [(middle, stop), (start, middle)]
                continue
            results[start:stop] = built
            for i in sorted(bad):
                results[start + i] = fallback(start + i)
        return results

    def column_chunks(self, rows: list) -> Iterator[list[list]]:
        """Every field's loaded column (in the schema's field order, as `build` takes them) of
        CHUNK rows at a time, each chunk handed on as soon as its rows pass the checks. The
        iteration raises `Rejected` at the first chunk with a row that does not: `load` then
        settles the rows, the failing ones by the schema."""
        for start in range(0, len(rows), CHUNK):
            try:
                loaded, failed = self._columns(rows[start:start + CHUNK])
            except _Reject:
                raise Rejected from None
            if failed:
                raise Rejected
            yield loaded

    def _columns(self, rows: list) -> tuple[list[list], set[int]]:
        if not set(map(type, rows)) <= {dict}:
            raise _Reject
        if not self.allowed_keys.issuperset(chain.from_iterable(rows)):  # every row's keys
            raise _Reject
        failed: set[int] = set()
        loaded: list = [None] * len(self.columns)
        for i in self.order:
            loaded[i] = self.columns[i].load(rows, failed)
        return loaded, failed

    def _load_chunk(self, rows: list) -> tuple[list, set[int]]:
        loaded, failed = self._columns(rows)
        try:
            return list(map(self.build, *loaded)), failed
        except ValidationError:
            raise _Reject from None  # build refused an object; halving finds which


class ObjectList(fields.List):
    """A List of Nested(schema) whose well-formed items skip marshmallow's per-object work.

    Loads exactly as `fields.List(fields.Nested(schema))` does, errors included; set the class
    attribute `fast` to False to load through marshmallow alone (the tests compare the two).
    """

    fast = True

    def __init__(self, schema: type[Schema], build: Callable[..., object],
                 build_columns: Callable[[Iterator[list[list]]], object] | None = None,
                 **kwargs):
        super().__init__(fields.Nested(schema), **kwargs)
        self.loader = ColumnLoader(schema(), build)
        self.build_columns = build_columns

    def _deserialize(self, value, attr, data, **kwargs) -> object:
        if not self.fast or type(value) is not list:
            return super()._deserialize(value, attr, data, **kwargs)
        if self.build_columns is not None and (table := self._table(value)) is not None:
            return table
        return self._objects(value, kwargs)

    def _table(self, value: list) -> object | None:
        """`build_columns` of the loaded columns, when every item passes the column checks and
        it accepts them (else None: the items are settled one by one)."""
        try:
            return self.build_columns(self.loader.column_chunks(value))
        except (Rejected, ValidationError):
            return None

    def _objects(self, value: list, kwargs: dict) -> list:
        errors = {}
        partial = {}

        def by_marshmallow(i: int) -> object:
            try:
                return self.inner.deserialize(value[i], **kwargs)
            except ValidationError as error:
                errors[i] = error.messages
                partial[i] = error.valid_data
                return None

        results = self.loader.load(value, by_marshmallow)
        if errors:
            valid = [
                partial[i] if i in errors else item
                for i, item in enumerate(results)
                if i not in errors or partial[i] is not None
            ]
            raise ValidationError(errors, valid_data=valid)
        return results
