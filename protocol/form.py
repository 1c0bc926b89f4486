"""A mode's settings form as the server lays it out (``ModeSpec.form``): which widget
each parameter gets, the range, step and decimals it offers, whether a slider goes
beside it, and the sections it sits in.

The rule is made here, once, from the ParamSpecs. The server sends its result with
every mode (docs/protocol.md, object ``FormLayout``); the plug-ins
(paintwire.hostkit.form) and the server's web page render what it says and decide
nothing again. A layout from a server says which parameters show: one it leaves
out is not shown, and the server uses its default.

The sections: "basic" first (the prompts at its top), then one folded section per
other group, in the order the groups first appear in the parameters; within each,
the server's order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from .vocabulary import MAX_SEED, ParamGroup, ParamType, Widget, known

if TYPE_CHECKING:
    from .params import ParamSpec

# Parameter names shown as text boxes of their own (and used to name result layers).
PROMPT = "prompt"
NEGATIVE_PROMPT = "negative_prompt"
PROMPT_PARAMS = (PROMPT, NEGATIVE_PROMPT)

INT_LIMIT = 2**31 - 1  # Qt and GTK spin boxes: ints beyond this do not fit (seeds use a float spin box)
FLOAT_LIMIT = 1e9
MAX_SLIDER_RANGE = 200  # an int range wider than this gets no slider: it would jump too far per pixel
# Titles of the folds for groups other than "basic"; unknown groups get their name.
GROUP_TITLES = {ParamGroup.ADVANCED.value: "Advanced", "soft": "Soft inpainting settings"}
NUMBER_WIDGETS = (Widget.INT, Widget.FLOAT, Widget.SEED)


@dataclass(frozen=True)
class FormField:
    """One parameter's widget. ``minimum`` to ``maximum`` in steps of ``step`` shown
    with ``digits`` decimals, and ``slider``, apply to the number widgets only."""

    name: str
    widget: Widget | str  # a str only for a widget this side does not know
    minimum: float = 0.0
    maximum: float = 0.0
    step: float = 1.0
    digits: int = 0
    slider: bool = False  # the range is short enough to drag

    def to_wire(self) -> dict:
        out: dict[str, Any] = {"name": self.name, "widget": getattr(self.widget, "value", self.widget)}
        if self.widget in NUMBER_WIDGETS:
            out.update(min=self.minimum, max=self.maximum, step=self.step, digits=self.digits, slider=self.slider)
        return out

    @classmethod
    def from_wire(cls, obj: Any) -> "FormField":
        numbers = {k: obj[w] for k, w in (("minimum", "min"), ("maximum", "max"), ("step", "step"))
                   if isinstance(obj.get(w), (int, float)) and not isinstance(obj.get(w), bool)}
        return cls(str(obj["name"]), known(Widget, obj.get("widget")), digits=int(obj.get("digits", 0)), slider=bool(obj.get("slider", False)),
                   **numbers)


@dataclass(frozen=True)
class FormSection:
    """Fields shown together: ``folded`` ones behind a fold titled ``title``."""

    group: str
    title: str
    folded: bool
    fields: tuple[FormField, ...]

    def to_wire(self) -> dict:
        return {"group": self.group, "title": self.title, "folded": self.folded, "fields": [f.to_wire() for f in self.fields]}


@dataclass(frozen=True)
class FormLayout:
    sections: tuple[FormSection, ...] = ()

    def fields(self) -> list[tuple[FormSection, FormField]]:
        """Every field with its section, in display order."""
        return [(section, f) for section in self.sections for f in section.fields]

    def names(self) -> list[str]:
        return [f.name for _, f in self.fields()]

    def to_wire(self) -> list:
        return [s.to_wire() for s in self.sections]

    @classmethod
    def from_wire(cls, obj: Any, specs: Sequence["ParamSpec"]) -> "FormLayout":
        """A server's layout, read leniently (the version rule): fields of parameters this
        side left out (an unknown type) are dropped, and a widget it does not know is
        replaced by the widget this rule gives the parameter. Unreadable: the rule's own."""
        by_name = {s.name: s for s in specs}
        try:
            sections, seen = [], set()
            for section in obj:
                fields = []
                for item in section["fields"]:
                    f = FormField.from_wire(item)
                    if f.name not in by_name or f.name in seen:
                        continue
                    seen.add(f.name)
                    fields.append(f if isinstance(f.widget, Widget) else form_field(by_name[f.name]))
                group = str(section.get("group", ParamGroup.BASIC.value))
                if fields:
                    sections.append(FormSection(group, str(section.get("title", group_title(group))), bool(section.get("folded", group != ParamGroup.BASIC.value)),
                                                tuple(fields)))
            return cls(tuple(sections))
        except (TypeError, KeyError, ValueError, AttributeError):
            return form_layout(specs)


def float_step(lo: float, hi: float) -> tuple[float, int]:
    """A spin box's step and decimals for a float range."""
    span = hi - lo
    if span <= 2:
        return 0.01, 2
    if span <= 20:
        return 0.1, 1
    return 1.0, 1


def group_title(group: str) -> str:
    return GROUP_TITLES.get(group, group.replace("_", " ").capitalize())


def form_field(spec: "ParamSpec") -> FormField:
    """The widget a parameter gets."""
    t = spec.type
    if spec.name in PROMPT_PARAMS:
        return FormField(spec.name, Widget.PROMPT)
    if t is ParamType.SEED:
        return FormField(spec.name, Widget.SEED, minimum=-1, maximum=MAX_SEED, step=1)
    bounded = spec.minimum is not None and spec.maximum is not None
    if t is ParamType.INT:
        lo = max(spec.minimum, -INT_LIMIT) if spec.minimum is not None else -INT_LIMIT
        hi = min(spec.maximum, INT_LIMIT) if spec.maximum is not None else INT_LIMIT
        return FormField(spec.name, Widget.INT, minimum=lo, maximum=hi, step=1, slider=bounded and hi - lo <= MAX_SLIDER_RANGE)
    if t is ParamType.FLOAT:
        lo = spec.minimum if spec.minimum is not None else -FLOAT_LIMIT
        hi = spec.maximum if spec.maximum is not None else FLOAT_LIMIT
        step, digits = float_step(lo, hi)
        return FormField(spec.name, Widget.FLOAT, minimum=lo, maximum=hi, step=step, digits=digits, slider=bounded)
    if t is ParamType.BOOL:
        return FormField(spec.name, Widget.BOOL)
    if t is ParamType.CHOICE:
        return FormField(spec.name, Widget.CHOICE)
    return FormField(spec.name, Widget.STRING)


def form_layout(specs: Sequence["ParamSpec"]) -> FormLayout:
    """The form for ``specs`` (a mode's parameters, or a control kind's)."""
    basic = ParamGroup.BASIC.value
    groups: dict[str, list[FormField]] = {basic: []}
    prompts: list[FormField] = []
    for spec in specs:
        f = form_field(spec)
        if f.widget is Widget.PROMPT:
            prompts.append(f)
        else:
            groups.setdefault(spec.group, []).append(f)
    groups[basic][:0] = prompts
    return FormLayout(tuple(FormSection(group, "" if group == basic else group_title(group), group != basic, tuple(fields))
                            for group, fields in groups.items() if fields))
