"""The parts of a /v1/optimize request (CONTRACT section 6): optimizer, schedule, stop rule.

Each nested object loads into its canonical form, every option with its default filled in, so
that the request hash reads an absent option and its default alike.
"""

from __future__ import annotations

from marshmallow import ValidationError, fields, post_load, validate

from schemas.fields import JsonNumber, StrictBoolean, StrictSchema

OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("constant", "linear", "cosine")
GOALS = ("minimize", "maximize")


def number(minimum: float | None = None, maximum: float | None = None, *,
           min_inclusive: bool = True, max_inclusive: bool = True, **kwargs) -> JsonNumber:
    """A JSON number within [minimum, maximum] (ends open where said)."""
    return JsonNumber(validate=validate.Range(minimum, maximum, min_inclusive=min_inclusive,
                                              max_inclusive=max_inclusive), **kwargs)


def count(minimum: int, **kwargs) -> fields.Integer:
    """A JSON integer (not 2.0) of at least `minimum`."""
    return fields.Integer(strict=True, validate=validate.Range(min=minimum), **kwargs)


# Each optimizer's options besides name and lr, with their defaults (torch.optim's).
OPTIMIZER_OPTIONS = {
    "sgd": {"momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
    "adam": {"betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0},
}


class OptimizerSchema(StrictSchema):
    """SGD or Adam with torch.optim's options; loaded as a dict holding every option."""

    name = fields.String(required=True, validate=validate.OneOf(OPTIMIZERS))
    lr = number(0, min_inclusive=False, required=True)
    momentum = number(0, metadata={"description": "sgd only (default 0)"})
    nesterov = StrictBoolean(metadata={"description": "sgd only (default false)"})
    weight_decay = number(0, metadata={"description": "L2 added to the gradient (default 0)"})
    betas = fields.List(number(0, 1, max_inclusive=False), validate=validate.Length(equal=2),
                        metadata={"description": "adam only (default [0.9, 0.999])"})
    eps = number(0, metadata={"description": "adam only (default 1e-8)"})

    @post_load
    def _with_defaults(self, data: dict, **kwargs) -> dict:
        options = OPTIMIZER_OPTIONS[data["name"]]
        foreign = sorted(set(data) - {"name", "lr", *options})
        if foreign:
            raise ValidationError({key: [f"not an option of {data['name']}"] for key in foreign})
        if data.get("nesterov") and not data.get("momentum"):
            raise ValidationError({"nesterov": ["nesterov momentum needs a momentum > 0"]})
        return {**options, **data}


class LrScheduleSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.OneOf(LR_SCHEDULES))
    end = number(0, 1, metadata={"description": "the final lr as a factor of lr (default 0)"})

    @post_load
    def _canonical(self, data: dict, **kwargs) -> dict:
        # a constant rate has no end: requests that differ only there are the same request
        return {"name": data["name"], "end": 0.0 if data["name"] == "constant"
                else data.get("end", 0.0)}


class StopSchema(StrictSchema):
    grad_norm_below = JsonNumber()
    value_below = JsonNumber()
    value_above = JsonNumber()


__all__ = [
    "GOALS",
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "OPTIMIZER_OPTIONS",
    "LrScheduleSchema",
    "OptimizerSchema",
    "StopSchema",
    "count",
    "number",
]
