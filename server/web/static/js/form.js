// A form built from a mode's ParamSpecs (docs/protocol.md section 7): one control
// per parameter, label and tooltip from the spec, groups other than "basic" folded.

const KNOWN = new Set(["int", "float", "bool", "string", "choice", "seed"]);

function control(spec, value) {
  const label = document.createElement("label");
  label.title = spec.help || "";
  const caption = spec.label || spec.name;
  let input;
  if (spec.type === "bool") {
    label.className = "check";
    input = document.createElement("input");
    input.type = "checkbox";
    input.checked = !!value;
    label.append(input, caption);
  } else {
    if (spec.type === "choice") {
      input = document.createElement("select");
      (spec.choices || []).forEach((choice, i) => {
        const option = new Option((spec.choice_labels || [])[i] || choice, choice);
        input.append(option);
      });
      input.value = value ?? "";
    } else if (spec.type === "string") {
      input = document.createElement(/prompt/.test(spec.name) ? "textarea" : "input");
      input.value = value ?? "";
    } else {
      input = document.createElement("input");
      input.type = "number";
      if (spec.type === "float") input.step = "any";
      if (spec.type === "seed") { input.min = -1; input.max = 4294967295; }
      else {
        if (spec.min !== undefined && spec.min !== null) input.min = spec.min;
        if (spec.max !== undefined && spec.max !== null) input.max = spec.max;
      }
      input.value = value ?? "";
    }
    label.append(caption, input);
  }
  input.name = spec.name;
  input.dataset.type = spec.type;
  return label;
}

export class ParamForm {
  constructor(container) {
    this.container = container;
    this.specs = [];
  }

  // Values the artist already typed survive a change of mode or model.
  render(specs) {
    const kept = this.specs.length ? this.values() : {};
    this.specs = specs.filter((s) => KNOWN.has(s.type)); // unknown types: left out, the server uses the default
    this.container.replaceChildren();
    const folds = new Map();
    for (const spec of this.specs) {
      const value = spec.name in kept ? kept[spec.name] : spec.default;
      const element = control(spec, value);
      const group = spec.group || "basic";
      if (group === "basic") { this.container.append(element); continue; }
      if (!folds.has(group)) {
        const details = document.createElement("details");
        const summary = document.createElement("summary");
        summary.textContent = group[0].toUpperCase() + group.slice(1);
        details.append(summary);
        folds.set(group, details);
      }
      folds.get(group).append(element);
    }
    this.container.append(...folds.values());
  }

  input(name) {
    return this.container.querySelector(`[name="${CSS.escape(name)}"]`);
  }

  // Typed values; an empty number box is left out (the server's default).
  values() {
    const out = {};
    for (const spec of this.specs) {
      const input = this.input(spec.name);
      if (!input) continue;
      if (spec.type === "bool") out[spec.name] = input.checked;
      else if (spec.type === "int" || spec.type === "seed") { if (input.value !== "") out[spec.name] = parseInt(input.value, 10); }
      else if (spec.type === "float") { if (input.value !== "") out[spec.name] = parseFloat(input.value); }
      else out[spec.name] = input.value;
    }
    return out;
  }
}
