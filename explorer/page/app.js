// The explorer page: what it is showing (the state), what it asks the server, and the wiring
// between the drawing pad, the views and the server.
//
// Each view lives in its own file and only draws what it is given: draw.js (the pad),
// answer.js (the prediction and its bars), experiments.js, layers.js (every layer's maps),
// arithmetic.js (the numbers behind a pixel), filters.js, why.js, testset.js, training.js and
// model.js. api.js talks to the server, scheduler.js decides when, maps.js draws numbers as
// colours and element.js builds elements. This file holds the state and says what to ask.

import { getJSON, postJSON } from "./api.js";
import { AnswerView } from "./answer.js";
import { ArithmeticView } from "./arithmetic.js";
import { DrawingPad } from "./draw.js";
import { ExperimentsView } from "./experiments.js";
import { FiltersView } from "./filters.js";
import { LayersView } from "./layers.js";
import { ModelView } from "./model.js";
import { Scheduler } from "./scheduler.js";
import { TestSetView } from "./testset.js";
import { TrainingView } from "./training.js";
import { WhyView } from "./why.js";

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

// What a new image or a new experiment changes: every view of the image.
const EVERYTHING = ["analysis", "gradient", "arithmetic"];

const pad = new DrawingPad($("draw"), $("source"), (finished) => {
  if (!pad.isBlank()) state.source = { kind: "pad" };
  pad.showSource(state.source);
  requests.ask(finished ? EVERYTHING : ["analysis"]);
});
const answer = new AnswerView({
  prediction: $("prediction"),
  bars: $("bars"),
  prepared: $("prepared"),
  message: $("draw-message"),
});
const experiments = new ExperimentsView(
  {
    root: $("experiments"),
    text: $("experiments-text"),
    allOn: $("filters-on"),
    uncover: $("uncover"),
    prepared: $("prepared"),
    coverBox: $("cover-box"),
  },
  {
    canCover: () => state.analysis !== null,
    onCover: (box) => experimentsChanged({ cover: box }),
    onUncover: () => experimentsChanged({ cover: null }),
    onAllFiltersOn: () => experimentsChanged({ disabled: {} }),
  },
);
const layers = new LayersView($("layers"), (pixel) => {
  state.pixel = pixel;
  requests.ask(["arithmetic"]);
});
const arithmetic = new ArithmeticView(
  {
    panel: $("arithmetic"),
    body: $("arithmetic-body"),
    close: $("arithmetic-close"),
    preparedFrame: $("prepared-frame"),
    prepared: $("prepared"),
  },
  layers,
  () => {
    state.pixel = null;
    arithmetic.hide();
    arithmetic.markPixel(null);
  },
);
const filters = new FiltersView($("filters"), toggleFilter);
const why = new WhyView($("why"), (classIndex) => {
  state.whyClass = classIndex;
  requests.ask(["gradient"]);
});
const testSet = new TestSetView($("testset"), (index, caption) => loadTestDigit(index, caption));
const training = new TrainingView($("training-section"), () => loadModel());
const modelView = new ModelView({
  line: $("model-line"),
  summary: $("model-summary"),
  drawHeading: $("draw-heading"),
  explorer: $("explorer"),
  noModel: $("no-model"),
  error: $("model-error"),
  advice: $("train-advice"),
  command: $("train-command"),
  serverMessage: $("server-message"),
});

// The analysis, then its follow-ups, one request at a time and only the latest (scheduler.js).
const requests = new Scheduler({
  analysis: runAnalysis,
  followUps: { gradient: runGradient, arithmetic: runArithmetic },
  penDown: () => pad.isDrawing(),
});

// --------------------------------------------------------------------------------------------
// What each request sends, and where its answer goes
// --------------------------------------------------------------------------------------------

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

/** The prediction, the prepared image and every layer. */
async function runAnalysis() {
  if (!state.model) return;
  const image = imageRequest();
  if (image === null) {
    showNothing("");
    return;
  }
  const reply = await postJSON("/api/analyse", { ...image, ...experimentRequest() });
  if (!reply.ok) {
    if (state.source.initial) {
      // The first test digit could not be loaded (no test set for this dataset): start blank.
      state.source = { kind: "pad" };
      pad.showSource(state.source);
      showNothing("");
    } else {
      showNothing(reply.body.error); // e.g. 422: the server found no digit in the drawing
    }
    return;
  }
  const analysis = reply.body;
  state.analysis = analysis;
  if (state.source.kind === "test" && !state.source.shown && !state.cover) {
    pad.showPicture(analysis.image); // the test digit appears on the pad, as if written there
    state.source.shown = true;
  }
  answer.show(analysis);
  layers.show(analysis, state.model, state.disabled, state.model.class_names);
  document.body.classList.remove("no-image");
  arithmetic.markPixel(state.pixel, state.model);
}

/** A blank pad or an unreadable drawing: no prediction, no layers, maybe the server's words. */
function showNothing(message) {
  state.analysis = null;
  requests.forget(["gradient", "arithmetic"]);
  answer.clear(message);
  layers.clear();
  arithmetic.hide();
  why.clear();
  document.body.classList.add("no-image");
}

/** Why this answer: the gradient of the picked class's score (the answer's, by default). */
async function runGradient() {
  const image = imageRequest();
  if (image === null || !state.analysis) return;
  const classIndex = state.whyClass ?? state.analysis.prediction;
  const reply = await postJSON("/api/gradient", {
    ...image,
    ...experimentRequest(),
    class: classIndex,
  });
  if (!reply.ok) {
    why.showError(reply.body.error);
    return;
  }
  why.show(reply.body, state.analysis.image, state.analysis.prediction);
}

/** The arithmetic of the pixel clicked, in a panel under its map. */
async function runArithmetic() {
  const pixel = state.pixel;
  const image = imageRequest();
  if (!pixel || image === null || !state.analysis) return;
  const block = layers.block(pixel.layer);
  if (!block) return;
  arithmetic.openUnder(block);
  arithmetic.markPixel(pixel, state.model);
  const reply = await postJSON("/api/arithmetic", {
    ...image,
    ...experimentRequest(),
    layer: pixel.layer,
    channel: pixel.channel,
    row: pixel.row,
    column: pixel.column,
  });
  if (!reply.ok) {
    arithmetic.showError(reply.body.error);
    return;
  }
  const layer = state.analysis.layers.find((l) => l.name === pixel.layer);
  const mapValue = layer.values.at(pixel.channel, pixel.row, pixel.column);
  arithmetic.show(pixel.kind, reply.body, mapValue);
}

// --------------------------------------------------------------------------------------------
// Experiments: filters off, part of the image covered
// --------------------------------------------------------------------------------------------

function toggleFilter(layerName, index) {
  const off = new Set(state.disabled[layerName] || []);
  if (off.has(index)) off.delete(index);
  else off.add(index);
  experimentsChanged({
    disabled: { ...state.disabled, [layerName]: [...off].sort((a, b) => a - b) },
  });
}

/** Take the changed experiments ({disabled}, {cover} or both), show them and ask again. */
function experimentsChanged(changes) {
  Object.assign(state, changes);
  showExperiments();
  requests.ask(EVERYTHING);
}

function showExperiments() {
  experiments.show(state.disabled, state.cover);
  filters.showDisabled(state.disabled);
}

// --------------------------------------------------------------------------------------------
// The image explored: the pad, or a digit of the test set
// --------------------------------------------------------------------------------------------

function loadTestDigit(index, caption, initial = false) {
  state.source = { kind: "test", index, caption, initial };
  pad.showPicture(null);
  pad.showSource(state.source);
  requests.ask(EVERYTHING);
  if (!initial) $("draw-section").scrollIntoView({ behavior: "smooth", block: "start" });
}

// --------------------------------------------------------------------------------------------
// The model: loaded at start and after every training run
// --------------------------------------------------------------------------------------------

async function loadModel() {
  const reply = await getJSON("/api/model");
  if (!reply.ok) {
    modelView.showServerMessage(reply.body.error);
    return;
  }
  modelView.showServerMessage("");
  const model = reply.body;
  modelView.show(model);
  training.setModel(model);
  if (!model.ok) {
    state.model = null;
    return;
  }
  state.model = model;
  answer.setClasses(model.class_names);
  why.setClasses(model.class_names);
  filters.show(model);
  // A new model may have other filters: the experiments and the pixel start afresh.
  state.disabled = {};
  state.cover = null;
  state.pixel = null;
  state.whyClass = null;
  arithmetic.hide();
  layers.clear();
  showExperiments();
  loadTestSet(model);
  if (state.source.kind === "pad" && pad.isBlank()) {
    loadTestDigit(0, "test digit #0, the first of the test set", true);
  } else {
    requests.ask(["analysis", "gradient"]);
  }
}

async function loadTestSet(model) {
  testSet.showMessage("Counting the test set's answers…");
  const reply = await getJSON("/api/testset");
  if (state.model !== model) return; // a newer model arrived meanwhile
  if (!reply.ok) {
    testSet.showMessage(reply.body.error, true);
    return;
  }
  testSet.show(reply.body, model.class_names);
}

// --------------------------------------------------------------------------------------------
// Start
// --------------------------------------------------------------------------------------------

$("clear").addEventListener("click", () => {
  state.source = { kind: "pad" };
  pad.clear();
});
$("undo").addEventListener("click", () => pad.undo());
pad.showSource(state.source);
training.connect();
loadModel();
