// What the canvas offers, read from the capabilities alone (as the plug-ins do):
// modes of the same name in several engines are one entry, run by the engine of
// the chosen model. Modes that need an input this page cannot gather are left out.

export const PAGE_INPUTS = new Set(["image", "mask"]);

// The page's own server always writes ``inputs`` (the short form is for older plug-ins).
function inputsOf(spec) {
  return (spec.inputs || []).map((i) => ({ kind: i.kind, required: i.required !== false, label: i.label || "" }));
}

// [{name, label, help, order, inputs, choices: [{engine, model, label, spec, notice}]}], in order.
export function pageModes(capabilities) {
  const byName = new Map();
  for (const engine of capabilities.engines || []) {
    for (const spec of engine.modes || []) {
      const inputs = inputsOf(spec);
      if (inputs.some((i) => i.required && !PAGE_INPUTS.has(i.kind))) continue;
      let mode = byName.get(spec.name);
      if (!mode) {
        mode = { name: spec.name, label: spec.label || spec.name, help: spec.help || "", order: spec.order ?? 100, inputs, choices: [] };
        byName.set(spec.name, mode);
      }
      const kinds = spec.model_kinds || [];
      if (kinds.length) {
        const models = (capabilities.models || []).filter((m) => m.engine === engine.name && kinds.includes(m.kind) && !m.problem);
        for (const m of models) mode.choices.push({ engine: engine.name, model: m.name, label: m.label || m.name, spec, inputs, notice: "" });
        if (!models.length && engine.notice) mode.choices.push({ engine: engine.name, model: null, label: engine.label || engine.name, spec, inputs, notice: engine.notice });
      } else {
        mode.choices.push({ engine: engine.name, model: null, label: engine.label || engine.name, spec, inputs, notice: engine.notice || "" });
      }
    }
  }
  return [...byName.values()].filter((m) => m.choices.length).sort((a, b) => a.order - b.order || a.label.localeCompare(b.label));
}
