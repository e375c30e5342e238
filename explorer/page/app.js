// The explorer page: what it is showing (the state), the requests that keep the views up to
// date, and the wiring between the drawing pad, the views and the server.
//
// Each view lives in its own file: draw.js (the pad), layers.js (maps and filters),
// arithmetic.js, why.js, testset.js, training.js; api.js talks to the server, maps.js draws
// numbers as colours. This file only decides what to ask the server, and when.

import { getJSON, postJSON } from "./api.js";
import { showConvArithmetic, showPoolArithmetic } from "./arithmetic.js";
import { DrawingPad } from "./draw.js";
import { LayersView, filterBank, markDisabled } from "./layers.js";
import { drawGrey, markPixels, pixelAt, scaleLegend } from "./maps.js";
import { TestSetView } from "./testset.js";
import { TrainingView } from "./training.js";
import { WhyView } from "./why.js";

// While a stroke is drawn, at most one analysis every 100 ms (about 10 a second) and never two
// requests at once: a slow server gets the newest drawing, never a queue of old ones.
const MIN_ANALYSIS_INTERVAL_MS = 100;

const $ = (id) => document.getElementById(id);

/** Everything the page is showing, in one place. */
const state = {
  model: null, // /api/model's answer, when a model is loaded
  source: { kind: "pad" }, // the image explored: the pad, or {kind: "test", index, caption}
  disabled: {}, // filters switched off, e.g. {"conv1": [2, 5]}
  cover: null, // [top, left, bottom, right] of the 28x28 image, set to 0 (bottom, right excluded)
  analysis: null, // the last /api/analyse answer shown
  whyClass: null, // the class "Why this answer" asks about; null: the network's answer
  pixel: null, // the map pixel whose arithmetic is shown: {layer, kind, channel, row, column}
};

const pad = new DrawingPad($("draw"), (finished) => {
  if (!pad.isBlank()) state.source = { kind: "pad" };
  showSource();
  ask(finished ? ["analysis", "gradient", "arithmetic"] : ["analysis"]);
});
const layers = new LayersView($("layers"), (pixel) => {
  state.pixel = pixel;
  ask(["arithmetic"]);
});
const why = new WhyView($("why"), (classIndex) => {
  state.whyClass = classIndex;
  ask(["gradient"]);
});
const testSet = new TestSetView($("testset"), (index, caption) => loadTestDigit(index, caption));
const training = new TrainingView($("training-section"), () => loadModel());

// --------------------------------------------------------------------------------------------
// Requests: one at a time, newest first
// --------------------------------------------------------------------------------------------

// What needs asking. A change sets flags; pump() sends one request at a time, the analysis
// first (the follow-ups are about the image it returns), and only the newest state is sent.
const needs = { analysis: false, gradient: false, arithmetic: false };
const work = { busy: false, timer: null, lastAnalysis: 0 };

function ask(what) {
  for (const item of what) needs[item] = true;
  pump();
}

function nextJob() {
  if (needs.analysis) return "analysis";
  if (pad.current !== null) return null; // mid-stroke: the follow-ups wait for the pen to lift
  if (needs.gradient) return "gradient";
  if (needs.arithmetic) return "arithmetic";
  return null;
}

async function pump() {
  if (work.busy || work.timer) return;
  const job = nextJob();
  setBusy();
  if (!job) return;
  if (job === "analysis") {
    const wait = work.lastAnalysis + MIN_ANALYSIS_INTERVAL_MS - performance.now();
    if (wait > 0) {
      work.timer = setTimeout(() => {
        work.timer = null;
        pump();
      }, wait);
      return;
    }
    work.lastAnalysis = performance.now();
  }
  needs[job] = false;
  work.busy = true;
  try {
    await { analysis: runAnalysis, gradient: runGradient, arithmetic: runArithmetic }[job]();
  } finally {
    work.busy = false;
    pump();
  }
}

/** A test hook and a courtesy: body[data-busy] is "true" while anything is asked or awaited. */
function setBusy() {
  const busy = work.busy || work.timer !== null || Object.values(needs).some(Boolean);
  document.body.dataset.busy = String(busy);
}

/** The image part of a request: the drawing (downsampled) or a test digit; null if blank. */
function imageRequest() {
  if (state.source.kind === "test") return { test_index: state.source.index };
  return pad.isBlank() ? null : { drawing: pad.inkGrid() };
}

/** The experiments part of a request: switched-off filters and the covered box. */
function experimentRequest() {
  const request = {};
  const disabled = Object.entries(state.disabled).filter(([, list]) => list.length);
  if (disabled.length) request.disabled = Object.fromEntries(disabled);
  if (state.cover) request.cover = state.cover;
  return request;
}

function experimentsActive() {
  return Object.keys(experimentRequest()).length > 0;
}

// --------------------------------------------------------------------------------------------
// The analysis: prediction, prepared image, every layer
// --------------------------------------------------------------------------------------------

async function runAnalysis() {
  if (!state.model) return;
  const image = imageRequest();
  if (image === null) {
    showNothing("");
    return;
  }
  const answer = await postJSON("/api/analyse", { ...image, ...experimentRequest() });
  if (!answer.ok) {
    if (state.source.initial) {
      // The first test digit could not be loaded (no test set for this dataset): start blank.
      state.source = { kind: "pad" };
      showSource();
      showNothing("");
    } else {
      showNothing(answer.body.error); // e.g. 422: the server found no digit in the drawing
    }
    return;
  }
  const analysis = answer.body;
  state.analysis = analysis;
  if (state.source.kind === "test" && !state.source.shown && !state.cover) {
    pad.showPicture(analysis.image); // the test digit appears on the pad, as if written there
    state.source.shown = true;
  }
  $("draw-message").textContent = "";
  $("prediction").textContent = analysis.label;
  $("prediction").dataset.class = String(analysis.prediction);
  showBars(analysis.probabilities.values, analysis.prediction);
  drawGrey($("prepared"), analysis.image);
  layers.show(analysis, state.model, state.disabled, state.model.class_names);
  document.body.classList.remove("no-image");
  markArithmeticPixel();
}

/** A blank pad or an unreadable drawing: no prediction, no layers, maybe the server's words. */
function showNothing(message) {
  state.analysis = null;
  needs.gradient = needs.arithmetic = false;
  $("draw-message").textContent = message;
  $("prediction").textContent = "";
  delete $("prediction").dataset.class;
  showBars(null, -1);
  const prepared = $("prepared");
  prepared.getContext("2d").clearRect(0, 0, prepared.width, prepared.height);
  prepared.dataset.sum = "0";
  layers.clear();
  $("arithmetic").hidden = true;
  why.clear();
  document.body.classList.add("no-image");
}

function buildBars(classNames) {
  $("bars").replaceChildren(
    ...classNames.map((name, index) => {
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.dataset.class = String(index);
      bar.dataset.probability = "0";
      const label = document.createElement("span");
      label.className = "bar-label";
      label.textContent = name;
      const track = document.createElement("span");
      track.className = "bar-track";
      const fill = document.createElement("span");
      fill.className = "bar-fill";
      track.append(fill);
      const value = document.createElement("span");
      value.className = "bar-value";
      bar.append(label, track, value);
      return bar;
    }),
  );
}

function showBars(probabilities, winner) {
  $("bars")
    .querySelectorAll(".bar")
    .forEach((bar, index) => {
      const p = probabilities ? probabilities[index] : 0;
      bar.dataset.probability = String(p);
      bar.classList.toggle("winner", index === winner);
      bar.querySelector(".bar-fill").style.width = `${(100 * p).toFixed(1)}%`;
      bar.querySelector(".bar-value").textContent = probabilities ? `${(100 * p).toFixed(1)}%` : "";
    });
}

// --------------------------------------------------------------------------------------------
// The follow-ups: the gradient of a class, the arithmetic of a pixel
// --------------------------------------------------------------------------------------------

// explore.py does not yet apply the experiments to the arithmetic and the gradients (it
// would answer with an "experiments" field if it did): say so rather than show a mismatch.
const EXPERIMENT_NOTE =
  "The server computed this for the network as trained, without your switched-off filters " +
  "or cover; undo the experiments to see the two numbers agree.";
const GRADIENT_EXPERIMENT_NOTE =
  "These gradients are of the network as trained: the server does not apply your " +
  "switched-off filters or cover to them.";

async function runGradient() {
  const image = imageRequest();
  if (image === null || !state.analysis) return;
  const classIndex = state.whyClass ?? state.analysis.prediction;
  const answer = await postJSON("/api/gradient", {
    ...image,
    ...experimentRequest(),
    class: classIndex,
  });
  if (!answer.ok) {
    $("why-message").textContent = answer.body.error;
    return;
  }
  $("why-message").textContent =
    experimentsActive() && !("experiments" in answer.body) ? GRADIENT_EXPERIMENT_NOTE : "";
  why.show(answer.body, state.analysis.image, state.analysis.prediction);
}

async function runArithmetic() {
  const pixel = state.pixel;
  const image = imageRequest();
  if (!pixel || image === null || !state.analysis) return;
  const panel = $("arithmetic");
  const layerBlock = layers.block(pixel.layer);
  if (!layerBlock) return;
  layerBlock.after(panel); // the numbers appear right under the map clicked
  panel.hidden = false;
  markArithmeticPixel();
  const answer = await postJSON("/api/arithmetic", {
    ...image,
    ...experimentRequest(),
    layer: pixel.layer,
    channel: pixel.channel,
    row: pixel.row,
    column: pixel.column,
  });
  const body = $("arithmetic-body");
  if (!answer.ok) {
    body.textContent = answer.body.error;
    return;
  }
  const layer = state.analysis.layers.find((l) => l.name === pixel.layer);
  const mapValue = layer.values.at(pixel.channel, pixel.row, pixel.column);
  if (pixel.kind === "conv") {
    const note = experimentsActive() && !("experiments" in answer.body) ? EXPERIMENT_NOTE : "";
    showConvArithmetic(body, answer.body, mapValue, note);
  } else {
    showPoolArithmetic(body, answer.body, mapValue);
  }
}

/** Outline the pixel clicked, and the window of the layer before that it was computed from. */
function markArithmeticPixel() {
  document.querySelectorAll(".mark").forEach((mark) => mark.remove());
  const pixel = state.pixel;
  if (!pixel || !state.model) return;
  const clicked = layers.map(pixel.layer, pixel.channel);
  if (!clicked) return;
  markPixels(
    clicked.frame,
    clicked.canvas,
    { top: pixel.row, left: pixel.column, width: 1, height: 1 },
    "mark-pixel",
  );
  const number = Number(pixel.layer.slice(4));
  if (pixel.kind === "pool") {
    const source = layers.map(`conv${number}`, pixel.channel);
    const window = { top: 2 * pixel.row, left: 2 * pixel.column, width: 2, height: 2 };
    if (source) markPixels(source.frame, source.canvas, window, "mark-window");
    return;
  }
  const stage = state.model.stages[number - 1];
  const k = stage.kernel_size;
  const window = {
    top: pixel.row - stage.padding,
    left: pixel.column - stage.padding,
    width: k,
    height: k,
  };
  if (number === 1) {
    markPixels($("prepared-frame"), $("prepared"), window, "mark-window");
    return;
  }
  for (let channel = 0; channel < stage.in_channels; channel++) {
    const source = layers.map(`pool${number - 1}`, channel);
    if (source) markPixels(source.frame, source.canvas, window, "mark-window");
  }
}

// --------------------------------------------------------------------------------------------
// Experiments: filters off, part of the image covered
// --------------------------------------------------------------------------------------------

function toggleFilter(layerName, index) {
  const off = new Set(state.disabled[layerName] || []);
  if (off.has(index)) off.delete(index);
  else off.add(index);
  state.disabled[layerName] = [...off].sort((a, b) => a - b);
  showExperiments();
  ask(["analysis", "gradient", "arithmetic"]);
}

function showExperiments() {
  const parts = [];
  for (const [layerName, list] of Object.entries(state.disabled)) {
    if (list.length)
      parts.push(`${layerName} filter${list.length > 1 ? "s" : ""} ${list.join(", ")} off`);
  }
  for (const bank of document.querySelectorAll("#filters .filter-grid")) {
    markDisabled(bank, new Set(state.disabled[bank.dataset.layer] || []));
  }
  if (state.cover) {
    const [top, left, bottom, right] = state.cover;
    parts.push(`rows ${top}–${bottom - 1}, columns ${left}–${right - 1} covered`);
  }
  $("experiments-text").textContent = parts.length
    ? `Experiments: ${parts.join("; ")}.`
    : "No experiments: every filter on, nothing covered. Click a filter below to switch it " +
      "off; drag across the 28×28 image to cover part of it.";
  $("experiments").classList.toggle("active", parts.length > 0);
  $("filters-on").disabled = !Object.values(state.disabled).some((list) => list.length);
  $("uncover").disabled = !state.cover;
  const box = $("cover-box");
  box.hidden = !state.cover;
  if (state.cover) placeCoverBox(...state.cover);
}

function placeCoverBox(top, left, bottom, right) {
  const box = $("cover-box");
  box.style.top = `${(100 * top) / 28}%`;
  box.style.left = `${(100 * left) / 28}%`;
  box.style.height = `${(100 * (bottom - top)) / 28}%`;
  box.style.width = `${(100 * (right - left)) / 28}%`;
}

/** Drag across the prepared image to cover a rectangle of it (in its 28x28 pixels). */
function setUpCovering() {
  const canvas = $("prepared");
  let start = null;
  const boxFrom = (a, b) => [
    Math.min(a.row, b.row),
    Math.min(a.column, b.column),
    Math.max(a.row, b.row) + 1,
    Math.max(a.column, b.column) + 1,
  ];
  canvas.addEventListener("pointerdown", (event) => {
    if (!state.analysis) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    start = pixelAt(event, canvas);
    $("cover-box").hidden = false;
    placeCoverBox(...boxFrom(start, start));
  });
  canvas.addEventListener("pointermove", (event) => {
    if (start) placeCoverBox(...boxFrom(start, pixelAt(event, canvas)));
  });
  const end = (event) => {
    if (!start) return;
    state.cover = boxFrom(start, pixelAt(event, canvas));
    start = null;
    showExperiments();
    ask(["analysis", "gradient", "arithmetic"]);
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
}

// --------------------------------------------------------------------------------------------
// The image explored: the pad, or a digit of the test set
// --------------------------------------------------------------------------------------------

function loadTestDigit(index, caption, initial = false) {
  state.source = { kind: "test", index, caption, initial };
  pad.showPicture(null);
  showSource();
  ask(["analysis", "gradient", "arithmetic"]);
  if (!initial) $("draw-section").scrollIntoView({ behavior: "smooth", block: "start" });
}

function showSource() {
  const source = state.source;
  $("source").textContent =
    source.kind === "test"
      ? `Showing ${source.caption}. Draw on the pad to try your own.`
      : pad.isBlank()
        ? "Draw a digit on the pad."
        : "Your drawing.";
  $("source").dataset.testIndex = source.kind === "test" ? String(source.index) : "";
  $("draw").classList.toggle("showing-test", source.kind === "test");
}

// --------------------------------------------------------------------------------------------
// The model: loaded at start and after every training run
// --------------------------------------------------------------------------------------------

let modelGeneration = 0;

async function loadModel() {
  const answer = await getJSON("/api/model");
  if (!answer.ok) {
    showServerMessage(answer.body.error);
    return;
  }
  showServerMessage("");
  const model = answer.body;
  modelGeneration += 1;
  $("model-line").dataset.generation = String(modelGeneration);
  training.setModel(model);
  $("no-model").hidden = model.ok;
  $("explorer").hidden = !model.ok;
  if (!model.ok) {
    state.model = null;
    $("model-line").textContent = `No model loaded from ${model.path}.`;
    $("model-error").textContent = model.error;
    // No command where a model cannot be saved at that path: the error then says why.
    $("train-advice").hidden = !model.train_command;
    $("train-command").textContent = model.train_command || "";
    return;
  }
  state.model = model;
  $("model-line").textContent = describeModel(model);
  $("draw-heading").textContent =
    model.dataset === "fashion" ? "Draw a piece of clothing" : "Draw a digit";
  const head = [
    ...model.hidden.map((units) => `Dense(${units}, relu)`),
    `Dense(${model.class_names.length})`,
  ];
  $("model-summary").textContent =
    `${model.summary}\nhead           ${head.join(" -> ")} -> softmax`;
  buildBars(model.class_names);
  why.setClasses(model.class_names);
  showFilters(model);
  // A new model may have other filters: the experiments and the pixel start afresh.
  state.disabled = {};
  state.cover = null;
  state.pixel = null;
  state.whyClass = null;
  $("arithmetic").hidden = true;
  layers.clear();
  showExperiments();
  loadTestSet(model);
  if (state.source.kind === "pad" && pad.isBlank()) {
    loadTestDigit(0, "test digit #0, the first of the test set", true);
  } else {
    ask(["analysis", "gradient"]);
  }
}

function describeModel(model) {
  const history = model.history || [];
  const last = history[history.length - 1];
  const dataset = model.dataset === "fashion" ? "Fashion-MNIST clothes" : "MNIST digits";
  const filters = model.stages.map((s) => `${s.filters}`).join(", ");
  const hidden = model.hidden.length ? `, dense ${model.hidden.join(", ")}` : "";
  const trained = history.length
    ? ` · trained ${history.length} epoch${history.length > 1 ? "s" : ""}`
    : "";
  const accuracy =
    last && last.val_accuracy !== undefined
      ? `, validation accuracy ${(100 * last.val_accuracy).toFixed(1)}%`
      : "";
  return `${model.path} · ${dataset} · conv filters ${filters}${hidden}${trained}${accuracy}`;
}

function showFilters(model) {
  const container = $("filters");
  container.replaceChildren(
    ...model.stages.map((stage) => {
      const bank = model.filters[stage.name];
      const block = document.createElement("section");
      block.className = "layer";
      block.dataset.layer = stage.name;
      const heading = document.createElement("h3");
      heading.textContent = stage.name;
      const dims = document.createElement("span");
      dims.className = "dims";
      const channels =
        stage.in_channels === 1 ? "one channel" : `${stage.in_channels} channels side by side`;
      const k = stage.kernel_size;
      dims.textContent = `${stage.filters} filters · ${k}×${k}, ${channels}`;
      heading.append(dims);
      const grid = filterBank(stage.name, bank.values, bank.scale, toggleFilter);
      grid.dataset.layer = stage.name;
      block.append(heading, scaleLegend(bank.scale, "this bank"), grid);
      return block;
    }),
  );
}

async function loadTestSet(model) {
  testSet.showMessage("Counting the test set's answers…");
  const answer = await getJSON("/api/testset");
  if (state.model !== model) return; // a newer model arrived meanwhile
  if (!answer.ok) {
    testSet.showMessage(answer.body.error, true);
    return;
  }
  testSet.show(answer.body, model.class_names);
}

function showServerMessage(text) {
  $("server-message").textContent = text;
  $("server-message").hidden = !text;
}

// --------------------------------------------------------------------------------------------
// Start
// --------------------------------------------------------------------------------------------

$("clear").addEventListener("click", () => {
  state.source = { kind: "pad" };
  pad.clear();
});
$("undo").addEventListener("click", () => pad.undo());
$("uncover").addEventListener("click", () => {
  state.cover = null;
  showExperiments();
  ask(["analysis", "gradient", "arithmetic"]);
});
$("filters-on").addEventListener("click", () => {
  state.disabled = {};
  showExperiments();
  ask(["analysis", "gradient", "arithmetic"]);
});
$("arithmetic-close").addEventListener("click", () => {
  state.pixel = null;
  $("arithmetic").hidden = true;
  markArithmeticPixel();
});
setUpCovering();
showSource();
training.connect();
loadModel();
