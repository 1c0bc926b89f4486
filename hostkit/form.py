"""A mode's settings form as plain data: for each parameter the widget, range, step,
choices with their labels, fold and the value it starts from. The layout (which
widget, which range, which fold, which order) is the server's: ``ModeSpec.form``,
made by paintwire.protocol.form and sent with the capabilities, so the plug-ins and
the server's page follow one rule. This module adds what a host knows: the labels and
help of each parameter, and the value the artist last chose. Each host turns Fields
into its own widgets (Qt in Krita, GTK in GIMP), and tests run without either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from paintwire.protocol import ModeSpec, ParamGroup, ParamSpec, ProtocolError
from paintwire.protocol.form import FormField, FormLayout, FormSection, form_field, form_layout, group_title
from paintwire.protocol.vocabulary import Widget

FieldKind = Widget  # the hosts' name for the widget kinds


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    help: str
    kind: str  # a Widget
    value: Any
    minimum: float = 0.0
    maximum: float = 0.0
    step: float = 1.0
    digits: int = 0
    choices: tuple[tuple[str, str], ...] = ()  # (value, label)
    group: str = ParamGroup.BASIC.value
    slider: bool = False  # the range is short enough to drag
    group_title: str = ""
    folded: bool = False  # behind a fold titled group_title

    @property
    def advanced(self) -> bool:
        return self.folded


def _field(spec: ParamSpec, layout: FormField, section: FormSection, value: Any) -> Field:
    return Field(
        name=spec.name, label=spec.label or spec.name, help=spec.help, kind=layout.widget, value=value,
        minimum=layout.minimum, maximum=layout.maximum, step=layout.step, digits=layout.digits, slider=layout.slider,
        choices=tuple((c, spec.choice_label(c)) for c in spec.choices) if layout.widget is Widget.CHOICE else (),
        group=section.group, group_title=section.title, folded=section.folded,
    )


def field_for(spec: ParamSpec, value: Any) -> Field:
    """One parameter's field by the layout rule, outside any mode."""
    folded = spec.group != ParamGroup.BASIC.value
    return _field(spec, form_field(spec), FormSection(spec.group, group_title(spec.group) if folded else "", folded, ()), value)


def value_of(spec: ParamSpec, values: Mapping[str, Any]) -> Any:
    """The value a form shows: the artist's if it still fits the spec, else the server's default."""
    if spec.name in values:
        try:
            return spec.check(values[spec.name], spec.name)
        except ProtocolError:
            pass
    return spec.default


def fields(mode: ModeSpec, values: Mapping[str, Any]) -> list[Field]:
    """A field per parameter the server's layout of ``mode`` shows, in its order."""
    return layout_fields(mode.form, mode.params, values)


def param_fields(specs: Sequence[ParamSpec], values: Mapping[str, Any]) -> list[Field]:
    """:func:`fields` for any list of specs (a control kind's parameters, say), laid out
    by the same rule the server uses for modes."""
    return layout_fields(form_layout(specs), specs, values)


def layout_fields(layout: FormLayout, specs: Sequence[ParamSpec], values: Mapping[str, Any]) -> list[Field]:
    by_name = {s.name: s for s in specs}
    return [_field(by_name[f.name], f, section, value_of(by_name[f.name], values)) for section, f in layout.fields() if f.name in by_name]


def coerce(field: Field, raw: Any) -> Any:
    """A widget's reading as the parameter's type (spin boxes give floats)."""
    if field.kind in (FieldKind.INT, FieldKind.SEED):
        return int(round(raw))
    if field.kind == FieldKind.FLOAT:
        return round(float(raw), max(field.digits, 2) + 2)
    if field.kind == FieldKind.BOOL:
        return bool(raw)
    return "" if raw is None else str(raw)
