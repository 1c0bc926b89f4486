// A mode's form as the server lays it out (ModeSpec.form, docs/protocol.md section 7.3):
// its sections in order, the folded ones behind a fold with the server's title, and
// for each field the widget, range, step and slider it names. Captions, tooltips,
// choices and defaults come from the mode's ParamSpecs. The page decides nothing
// about the layout: the rule is paintwire/protocol/form.py, shared with the plug-ins.

const NUMBERS = new Set(["int", "float", "seed"]);

function numberInput(field, value) {
  const input = document.createElement("input");
  input.type = "number";
  for (const key of ["min", "max", "step"]) if (field[key] !== undefined) input[key] = field[key];
  input.value = value ?? "";
  return input;
}

// A slider beside the number, each following the other.
function slider(field, input) {
  const range = document.createElement("input");
  range.type = "range";
  range.min = field.min;
  range.max = field.max;
  range.step = field.step;
  range.value = input.value;
  range.tabIndex = -1; // the number box is the one the keyboard uses
  range.addEventListener("input", () => { input.value = range.value; });
  input.addEventListener("input", () => { range.value = input.value; });
  return range;
}

function control(field, spec, value) {
  const label = document.createElement("label");
  label.title = spec.help || "";
  label.dataset.widget = field.widget;
  const caption = spec.label || spec.name;
  let input;
  if (field.widget === "bool") {
    label.className = "check";
    input = document.createElement("input");
    input.type = "checkbox";
    input.checked = !!value;
    label.append(input, caption);
  } else if (field.widget === "choice") {
    input = document.createElement("select");
    (spec.choices || []).forEach((choice, i) => input.append(new Option((spec.choice_labels || [])[i] || choice, choice)));
    input.value = value ?? "";
    label.append(caption, input);
  } else if (NUMBERS.has(field.widget)) {
    input = numberInput(field, value);
    label.append(caption, input);
    if (field.slider) label.append(slider(field, input));
  } else {
    input = document.createElement(field.widget === "prompt" ? "textarea" : "input");
    input.value = value ?? "";
    label.append(caption, input);
  }
  input.name = spec.name;
  return label;
}

export class ParamForm {
  constructor(container) {
    this.container = container;
    this.fields = []; // the layout's fields shown now
  }

  // Values the artist already typed survive a change of mode or model.
  render(mode) {
    const kept = this.fields.length ? this.values() : {};
    const specs = new Map(((mode && mode.params) || []).map((s) => [s.name, s]));
    this.fields = [];
    this.container.replaceChildren();
    for (const section of (mode && mode.form) || []) {
      let parent = this.container;
      if (section.folded) {
        parent = document.createElement("details");
        parent.dataset.group = section.group;
        const summary = document.createElement("summary");
        summary.textContent = section.title;
        parent.append(summary);
      }
      for (const field of section.fields) {
        const spec = specs.get(field.name);
        if (!spec) continue;
        parent.append(control(field, spec, field.name in kept ? kept[field.name] : spec.default));
        this.fields.push(field);
      }
      if (parent !== this.container && parent.children.length > 1) this.container.append(parent);
    }
  }

  input(name) {
    return this.container.querySelector(`[name="${CSS.escape(name)}"]`);
  }

  // Typed values; an empty number box is left out (the server's default).
  values() {
    const out = {};
    for (const field of this.fields) {
      const input = this.input(field.name);
      if (!input) continue;
      if (field.widget === "bool") out[field.name] = input.checked;
      else if (field.widget === "int" || field.widget === "seed") { if (input.value !== "") out[field.name] = parseInt(input.value, 10); }
      else if (field.widget === "float") { if (input.value !== "") out[field.name] = parseFloat(input.value); }
      else out[field.name] = input.value;
    }
    return out;
  }
}
