"""Weights by name: the `param_dict()` half of the two-level API of layers and flows.

A layer or parameter flow creates its weights with `self._add(name, ...)`;
`param_dict()` returns them by name, the names its `forward(params, x)` (or
`trajectory(..., params)`) takes and ES perturbs.
"""


class ParamsMixin:
    """`_add` registers a weight under its name; `param_dict()` lists the registered weights."""

    def _add(self, name, shape, initializer, constraint=None):
        weight = self.add_weight(name=name, shape=shape, initializer=initializer, constraint=constraint)
        setattr(self, name, weight)
        self._param_names = getattr(self, "_param_names", []) + [name]
        return weight

    def param_dict(self):
        """The weights registered with `_add`, by name."""
        return {name: getattr(self, name) for name in getattr(self, "_param_names", [])}
