// chainrule playground: edit a request body, run it against v1/gradients and v1/diagram, and
// show the circuit and a node table. Plain script, no build step, relative URLs only.
"use strict";

(function () {
  const CIRCUITS = [
    {
      name: "(x + y) · z",
      body: {
        graph: {
          nodes: [
            { id: "x", op: "input", value: -2 },
            { id: "y", op: "input", value: 5 },
            { id: "z", op: "input", value: -4 },
            { id: "q", op: "add", inputs: ["x", "y"] },
            { id: "f", op: "mul", inputs: ["q", "z"] },
          ],
          output: "f",
        },
      },
    },
    {
      name: "sigmoid neuron, gate by gate",
      body: {
        graph: {
          nodes: [
            { id: "w0", op: "input", value: 2 },
            { id: "x0", op: "input", value: -1 },
            { id: "w1", op: "input", value: -3 },
            { id: "x1", op: "input", value: -2 },
            { id: "w2", op: "input", value: -3 },
            { id: "w0x0", op: "mul", inputs: ["w0", "x0"] },
            { id: "w1x1", op: "mul", inputs: ["w1", "x1"] },
            { id: "dot", op: "add", inputs: ["w0x0", "w1x1"] },
            { id: "z", op: "add", inputs: ["dot", "w2"] },
            { id: "negz", op: "scale", inputs: ["z"], attrs: { a: -1 } },
            { id: "expz", op: "exp", inputs: ["negz"] },
            { id: "den", op: "add_const", inputs: ["expz"], attrs: { c: 1 } },
            { id: "f", op: "inv", inputs: ["den"] },
          ],
          output: "f",
        },
      },
    },
    {
      name: "staged f(x, y) = (x + σ(y)) / (σ(x) + (x + y)²)",
      body: {
        graph: {
          nodes: [
            { id: "x", op: "input", value: 3 },
            { id: "y", op: "input", value: -4 },
            { id: "sigy", op: "sigmoid", inputs: ["y"] },
            { id: "num", op: "add", inputs: ["x", "sigy"] },
            { id: "sigx", op: "sigmoid", inputs: ["x"] },
            { id: "xpy", op: "add", inputs: ["x", "y"] },
            { id: "xpysqr", op: "pow", inputs: ["xpy"], attrs: { exponent: 2 } },
            { id: "den", op: "add", inputs: ["sigx", "xpysqr"] },
            { id: "invden", op: "inv", inputs: ["den"] },
            { id: "f", op: "mul", inputs: ["num", "invden"] },
          ],
          output: "f",
        },
      },
    },
    {
      name: "routing: 2(xy + max(z, w))",
      body: {
        graph: {
          nodes: [
            { id: "x", op: "input", value: 3 },
            { id: "y", op: "input", value: -4 },
            { id: "z", op: "input", value: 2 },
            { id: "w", op: "input", value: -1 },
            { id: "xy", op: "mul", inputs: ["x", "y"] },
            { id: "m", op: "max", inputs: ["z", "w"] },
            { id: "s", op: "add", inputs: ["xy", "m"] },
            { id: "f", op: "scale", inputs: ["s"], attrs: { a: 2 } },
          ],
          output: "f",
        },
      },
    },
    {
      name: "tensors: sum(relu(W x + b))",
      body: {
        graph: {
          nodes: [
            { id: "W", op: "input", value: [[0.5, -1, 2], [1.5, 0.25, -0.5]] },
            { id: "x", op: "input", value: [1, 2, -1] },
            { id: "b", op: "const", value: [0.1, -0.2] },
            { id: "Wx", op: "matmul", inputs: ["W", "x"] },
            { id: "h", op: "add", inputs: ["Wx", "b"] },
            { id: "r", op: "relu", inputs: ["h"] },
            { id: "loss", op: "sum", inputs: ["r"] },
          ],
          output: "loss",
        },
      },
    },
  ];

  const INDENT = "  ";
  const EDITED = "edited"; // the menu's entry while the editor holds no classic circuit as given
  const $ = (id) => document.getElementById(id);
  const editor = $("editor");
  const menu = $("circuit");
  const runButton = $("run");
  const formatButton = $("format");
  const results = $("results");
  const staleNote = $("stale-note");
  const diagram = $("diagram");
  const tableBody = document.querySelector("#nodes tbody");
  const editorError = $("editor-error");
  const status = $("status");
  const outputSummary = $("output-summary");
  let runCount = 0;
  let shownText = null; // the editor text whose results the pane shows, null before any

  // ---------------------------------------------------------------- JSON layout

  // One graph node per line reads far better than JSON.stringify's one value per line.
  function inline(value) {
    if (Array.isArray(value)) return "[" + value.map(inline).join(", ") + "]";
    if (value !== null && typeof value === "object") {
      return "{" + Object.entries(value)
        .map(([k, v]) => JSON.stringify(k) + ": " + inline(v)).join(", ") + "}";
    }
    return JSON.stringify(value);
  }

  function formatBody(body) {
    const lines = ["{"];
    const keys = Object.keys(body);
    keys.forEach((key, i) => {
      const comma = i < keys.length - 1 ? "," : "";
      const value = body[key];
      if (key === "graph" && value && Array.isArray(value.nodes)) {
        lines.push(INDENT + '"graph": {');
        lines.push(INDENT.repeat(2) + '"nodes": [');
        value.nodes.forEach((node, j) => {
          lines.push(INDENT.repeat(3) + inline(node) + (j < value.nodes.length - 1 ? "," : ""));
        });
        const rest = Object.keys(value).filter((k) => k !== "nodes");
        lines.push(INDENT.repeat(2) + "]" + (rest.length ? "," : ""));
        rest.forEach((k, j) => {
          lines.push(INDENT.repeat(2) + JSON.stringify(k) + ": " + inline(value[k]) +
            (j < rest.length - 1 ? "," : ""));
        });
        lines.push(INDENT + "}" + comma);
      } else {
        lines.push(INDENT + JSON.stringify(key) + ": " + inline(value) + comma);
      }
    });
    lines.push("}");
    return lines.join("\n");
  }

  // ---------------------------------------------------------------- numbers

  function formatNumber(x) {
    if (typeof x === "string") return x === "NaN" ? "nan" : x === "Infinity" ? "inf" : "-inf";
    if (Number.isInteger(x)) return String(x);
    return String(parseFloat(x.toPrecision(4)));
  }

  function decodeB64(tensor) {
    const bytes = Uint8Array.from(atob(tensor.b64), (c) => c.charCodeAt(0));
    const view = new DataView(bytes.buffer);
    const wide = tensor.dtype !== "float32";
    const step = wide ? 8 : 4;
    const flat = [];
    for (let i = 0; i + step <= bytes.length; i += step) {
      flat.push(wide ? view.getFloat64(i, true) : view.getFloat32(i, true));
    }
    return { shape: tensor.shape, flat };
  }

  function flatten(value, shape, flat) {
    if (Array.isArray(value)) {
      if (shape.length <= flat.depth) shape.push(value.length);
      flat.depth += 1;
      value.forEach((v) => flatten(v, shape, flat));
      flat.depth -= 1;
    } else {
      flat.items.push(value);
    }
  }

  function describeTensor(value) {
    if (value === undefined || value === null) return { text: "—", title: "" };
    if (typeof value === "number" || typeof value === "string") {
      return { text: formatNumber(value), title: String(value) };
    }
    let shape;
    let items;
    if (Array.isArray(value)) {
      shape = [];
      const flat = { items: [], depth: 0 };
      flatten(value, shape, flat);
      items = flat.items;
    } else if (value.b64 !== undefined) {
      const decoded = decodeB64(value);
      shape = decoded.shape;
      items = decoded.flat;
      if (shape.length === 0) return { text: formatNumber(items[0]), title: String(items[0]) };
    } else {
      return { text: JSON.stringify(value), title: "" };
    }
    const head = "[" + shape.join("×") + "]";
    const full = JSON.stringify(items.slice(0, 200)) + (items.length > 200 ? " …" : "");
    if (items.length <= 6) {
      return { text: head + " " + items.map(formatNumber).join(", "), title: full };
    }
    const numbers = items.map((v) => (typeof v === "number" ? v : Number(v)));
    const finite = numbers.filter((v) => !Number.isNaN(v));
    const low = finite.length ? formatNumber(Math.min(...finite)) : "nan";
    const high = finite.length ? formatNumber(Math.max(...finite)) : "nan";
    return { text: head + " " + (low === high ? low : low + "…" + high), title: full };
  }

  // ---------------------------------------------------------------- editor

  function loadCircuit(index) {
    editor.value = formatBody(CIRCUITS[index].body);
    clearErrors();
    syncMenu();
  }

  // The menu names the circuit the editor holds, or says it was edited.
  function syncMenu() {
    const index = CIRCUITS.findIndex((c) => formatBody(c.body) === editor.value);
    menu.value = index >= 0 ? String(index) : EDITED;
  }

  // Results that no longer match the editor are greyed and labelled, never shown as current.
  function markStale() {
    const stale = shownText !== null && editor.value !== shownText;
    results.classList.toggle("stale", stale);
    staleNote.hidden = !stale;
  }

  function showingResultsOf(text) {
    shownText = text;
    markStale();
  }

  function formatEditor() {
    let body;
    try {
      body = JSON.parse(editor.value);
    } catch (err) {
      showEditorError("The editor does not hold valid JSON", err.message, null, null);
      markStale();
      return;
    }
    clearErrors();
    editor.value = body !== null && typeof body === "object" && !Array.isArray(body)
      ? formatBody(body) : JSON.stringify(body, null, 2);
    syncMenu();
    markStale();
  }

  function insertText(text) {
    // execCommand keeps the browser's undo history; setRangeText is the fallback.
    if (!document.execCommand || !document.execCommand("insertText", false, text)) {
      editor.setRangeText(text, editor.selectionStart, editor.selectionEnd, "end");
    }
  }

  let tabLeaves = false;
  editor.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      run();
      return;
    }
    if (event.key === "Escape") {
      tabLeaves = true; // the keyboard way out of a textarea that keeps Tab
      return;
    }
    if (event.key !== "Tab" || tabLeaves) {
      tabLeaves = false;
      return;
    }
    event.preventDefault();
    const start = editor.value.lastIndexOf("\n", editor.selectionStart - 1) + 1;
    if (event.shiftKey) {
      const removable = editor.value.slice(start, start + INDENT.length).match(/^ */)[0].length;
      if (removable) {
        const caret = editor.selectionStart;
        editor.setSelectionRange(start, start + removable);
        insertText("");
        editor.setSelectionRange(Math.max(start, caret - removable), Math.max(start, caret - removable));
      }
    } else {
      insertText(INDENT);
    }
  });

  function lineOfNode(text, nodeId) {
    const pattern = new RegExp('"id"\\s*:\\s*' + JSON.stringify(nodeId).replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    const match = pattern.exec(text);
    return match ? text.slice(0, match.index).split("\n").length : null;
  }

  // ---------------------------------------------------------------- errors

  function clearErrors() {
    editorError.hidden = true;
    editorError.replaceChildren();
    for (const row of tableBody.querySelectorAll("tr.has-error")) {
      row.classList.remove("has-error");
      row.querySelector(".row-error")?.remove();
    }
  }

  function showEditorError(title, message, nodeId, extra) {
    const head = document.createElement("div");
    head.className = "error-title";
    head.textContent = title;
    if (nodeId !== null && nodeId !== undefined) {
      const badge = document.createElement("code");
      badge.className = "node-badge";
      badge.textContent = nodeId;
      head.append(" at node ", badge);
      const line = lineOfNode(editor.value, nodeId);
      if (line !== null) head.append(` (line ${line})`);
    }
    const body = document.createElement("div");
    body.className = "error-message";
    body.textContent = message;
    editorError.replaceChildren(head, body);
    if (extra) {
      const details = document.createElement("pre");
      details.className = "error-details";
      details.textContent = extra;
      editorError.append(details);
    }
    editorError.hidden = false;
  }

  function markRow(nodeId, code, message) {
    const row = [...tableBody.rows].find((r) => r.dataset.node === nodeId);
    if (!row) return false;
    row.classList.add("has-error");
    const note = document.createElement("div");
    note.className = "row-error";
    note.textContent = code + ": " + message;
    row.cells[0].append(note);
    return true;
  }

  // ---------------------------------------------------------------- results

  function renderTable(rows) {
    tableBody.replaceChildren(...rows.map((r) => {
      const tr = document.createElement("tr");
      tr.dataset.node = r.id;
      const cells = [
        { text: r.id, cls: "node-id" },
        { text: r.op, cls: "op" },
        { ...describeTensor(r.value), cls: "value num" },
        { ...describeTensor(r.grad), cls: "grad num" },
      ];
      for (const c of cells) {
        const td = document.createElement("td");
        td.className = c.cls;
        if (c.cls === "node-id") {
          const code = document.createElement("code");
          code.textContent = c.text;
          td.append(code);
        } else {
          td.textContent = c.text;
        }
        if (c.title) td.title = c.title;
        tr.append(td);
      }
      return tr;
    }));
  }

  function graphNodes(body) {
    const nodes = body && body.graph && Array.isArray(body.graph.nodes) ? body.graph.nodes : [];
    return nodes.filter((n) => n && typeof n === "object" && typeof n.id === "string");
  }

  function showDiagram(svgText) {
    const doc = new DOMParser().parseFromString(svgText, "image/svg+xml");
    const svg = doc.documentElement;
    if (svg.nodeName !== "svg") throw new Error("the diagram is not an SVG image");
    // Graphviz sizes in points; a little larger reads better. CSS caps it at the pane width,
    // but a wide circuit scrolls rather than shrinking its numbers below legibility.
    const box = (svg.getAttribute("viewBox") || "").split(/\s+/).map(Number);
    if (box.length === 4 && box[2] > 0) {
      svg.style.width = `${Math.round(box[2] * 1.6)}px`;
      svg.style.minWidth = `${Math.round(box[2] * 0.9)}px`;
      svg.removeAttribute("width");
      svg.removeAttribute("height");
    }
    // inline in HTML an SVG needs no namespace declarations: the page names no other site
    const XMLNS = "http://www.w3.org/2000/xmlns/";
    svg.removeAttributeNS(XMLNS, "xmlns"); // xmlns="…/svg"
    svg.removeAttributeNS(XMLNS, "xlink"); // xmlns:xlink="…/xlink"
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "circuit diagram");
    diagram.replaceChildren(document.importNode(svg, true));
  }

  function showDiagramMessage(text, isError) {
    const p = document.createElement("p");
    p.className = isError ? "placeholder diagram-error" : "placeholder";
    p.textContent = text;
    diagram.replaceChildren(p);
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (response.ok) return { ok: true, response };
    let error;
    try {
      error = (await response.json()).error;
    } catch (_) {
      error = null;
    }
    return {
      ok: false,
      status: response.status,
      error: error || { code: "http_" + response.status, message: response.statusText, node: null },
    };
  }

  function describeError(error) {
    return error.details ? JSON.stringify(error.details, null, 2) : null;
  }

  async function run() {
    const token = ++runCount;
    clearErrors();
    const text = editor.value;
    let body;
    try {
      body = JSON.parse(text);
    } catch (err) {
      showEditorError("The editor does not hold valid JSON", err.message, null, null);
      markStale();
      return;
    }
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      showEditorError("The request body must be a JSON object", 'e.g. {"graph": {...}}', null, null);
      markStale();
      return;
    }
    runButton.disabled = true;
    status.textContent = "running…";
    try {
      const [grads, picture] = await Promise.all([
        post("v1/gradients", body),
        post("v1/diagram", { ...body, format: "svg" }),
      ]);
      if (token !== runCount) return;
      const ops = new Map(graphNodes(body).map((n) => [n.id, n.op]));
      if (!grads.ok) {
        const error = grads.error;
        renderTable(graphNodes(body).map((n) => ({ id: n.id, op: n.op })));
        const title = `${grads.status} ${error.code}`;
        showEditorError(title, error.message, error.node, describeError(error));
        if (error.node !== null && error.node !== undefined) markRow(error.node, error.code, error.message);
        showDiagramMessage("No diagram: fix the error and run again.", false);
        status.textContent = "error";
        outputSummary.textContent = "";
        showingResultsOf(text);
        return;
      }
      const result = await grads.response.json();
      renderTable(Object.entries(result.nodes).map(([id, n]) => ({
        id, op: ops.get(id) || "", value: n.value, grad: n.grad,
      })));
      const out = describeTensor(result.value).text;
      outputSummary.textContent = `${result.output} = ${out}` + (result.cached ? " (cached)" : "");
      if (picture.ok) {
        showDiagram(await picture.response.text());
      } else {
        showDiagramMessage(`${picture.status} ${picture.error.code}: ${picture.error.message}`, true);
      }
      status.textContent = "";
      showingResultsOf(text);
    } catch (err) {
      if (token !== runCount) return;
      showEditorError("The request failed", String(err.message || err), null, null);
      status.textContent = "error";
      markStale();
    } finally {
      if (token === runCount) runButton.disabled = false;
    }
  }

  // ---------------------------------------------------------------- wiring

  CIRCUITS.forEach((circuit, i) => menu.add(new Option(circuit.name, String(i))));
  const edited = new Option("(edited)", EDITED);
  edited.disabled = true;
  menu.add(edited);
  menu.addEventListener("change", () => {
    if (menu.value === EDITED) return;
    loadCircuit(Number(menu.value));
    run();
  });
  editor.addEventListener("input", () => {
    syncMenu();
    markStale();
  });
  runButton.addEventListener("click", run);
  formatButton.addEventListener("click", formatEditor);
  loadCircuit(0);
  run(); // the page opens on a drawn circuit, not an empty pane
})();
