// The explorer page: what it is showing (the state), what it asks the server, and the wiring
// between the drawing pad, the views and the server.
//
// Each view lives in its own file and only draws what it is given: draw.js (the pad),
// answer.js (the prediction and its bars), preparation.js (how a drawing became the image it
// receives), strip.js (the answer kept in view), experiments.js,
// layers.js (every layer's maps), arithmetic.js (the numbers behind a pixel), filters.js,
// why.js (gradients of a class's score), weight.js (one weight's gradient as a sum),
// step.js (one training step, stage by stage), testset.js, training.js and model.js. api.js
// talks to the server, scheduler.js decides when, maps.js draws numbers as colours and
// element.js builds elements. This file holds the state and says what to ask.

import { getJSON, postJSON } from "./api.js";
import { AnswerView } from "./answer.js";
import { ArithmeticView } from "./arithmetic.js";
import { DrawingPad } from "./draw.js";
import { ExperimentsView } from "./experiments.js";
import { FiltersView } from "./filters.js";
import { LayersView } from "./layers.js";
import { ModelView } from "./model.js";
import { PreparationView } from "./preparation.js";
import { Scheduler } from "./scheduler.js";
import { TrainingStepView } from "./step.js";
import { AnswerStrip } from "./strip.js";
import { TestSetView } from "./testset.js";
import { TrainingView } from "./training.js";
import { WeightGradientView } from "./weight.js";
import { WhyView } from "./why.js";

const $ = (id) => document.getElementById(id);

/** Everything the page is showing, in one place. */
const state = {
  model: null, // /api/model's answer, when a model is loaded
  source: { kind: "pad" }, // the image explored: the pad, or {kind: "test", index, caption}
  disabled: {}, // filters switched off, e.g. {"conv1": [2, 5]}
  cover: null, // [top, left, bottom, right] of the 28x28 image, set to 0 (bottom, right excluded)
  analysis: null, // the last /api/analyse answer shown
  baseline: null, // the analysis when the current experiment began (null: no experiment)
  whyClass: null, // the class "Why this answer" asks about; null: the network's answer
  versus: null, // the class it is compared with ("rather than"); null: none
  pixel: null, // the map pixel whose arithmetic is shown: {layer, kind, channel, row, column}
  pooledPixel: null, // the pooled pixel of the gradient view whose routing is shown
  weight: null, // the filter weight whose gradient is shown: {layer, filter, channel, row, column}
  stepLabel: null, // the class the training step is told the image is; null: the default
};

// What a new image or a new experiment changes: every view of the image.
const EVERYTHING = ["analysis", "preparation", "gradient", "arithmetic", "weight"];
// The teacher's token, when the page was opened from the teacher's address (--read-only).
const TEACHER_TOKEN = new URLSearchParams(location.search).get("teacher");

const pad = new DrawingPad($("draw"), $("source"), (finished, started) => {
  if (started) newImage(); // a new stroke: the image re-centres, so a cover no longer fits
  if (!pad.isBlank()) state.source = { kind: "pad" };
  pad.showSource(state.source);
  requests.ask(finished ? EVERYTHING : ["analysis"]);
});
const answer = new AnswerView({
  prediction: $("prediction"),
  bars: $("bars"),
  prepared: $("prepared"),
  message: $("draw-message"),
  trueClass: $("true-class"),
});
const preparation = new PreparationView($("preparation"), () => requests.ask(["preparation"]));
const strip = new AnswerStrip({
  prediction: $("strip-prediction"),
  cells: $("strip-cells"),
  note: $("strip-note"),
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
const why = new WhyView($("why"), {
  onPick: (classIndex) => {
    state.whyClass = classIndex;
    if (state.versus === classIndex) state.versus = null;
    requests.ask(["gradient", "weight"]);
  },
  onVersus: (versus) => {
    state.versus = versus === state.whyClass ? null : versus;
    requests.ask(["gradient", "weight"]);
  },
  onPooledPixel: (pixel) => {
    state.pooledPixel = pixel;
    requests.ask(["routing"]);
  },
  onWeight: (weight) => {
    state.weight = weight;
    requests.ask(["weight"]);
  },
});
const weightView = new WeightGradientView(
  { panel: $("weight-gradient"), body: $("weight-body"), close: $("weight-close") },
  () => {
    state.weight = null;
    weightView.hide();
  },
);
const step = new TrainingStepView(
  $("step"),
  (label) => {
    state.stepLabel = label;
    step.showLabel(label);
  },
  () => requests.ask(["step"]),
);
const testSet = new TestSetView($("testset"), (index, caption) => loadTestDigit(index, caption));
const training = new TrainingView($("training-section"), {
  token: TEACHER_TOKEN,
  onModelChanged: (event) => modelChanged(event),
  onRestore: () => restoreOriginal(),
});
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
  notice: $("model-notice"),
  noticeText: $("model-notice-text"),
  restore: $("restore-original"),
});
$("restore-original").addEventListener("click", () => restoreOriginal());

// The analysis, then its follow-ups, one request at a time and only the latest (scheduler.js).
const requests = new Scheduler({
  analysis: runAnalysis,
  followUps: {
    preparation: runPreparation,
    gradient: runGradient,
    arithmetic: runArithmetic,
    weight: runWeight,
    routing: runRouting,
    step: runStep,
  },
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

function hasExperiments() {
  return Object.keys(experimentRequest()).length > 0;
}

/** The class "Why this answer" asks about: the one picked, or the network's answer. */
function whyClass() {
  return state.whyClass ?? state.analysis.prediction;
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
  if (!hasExperiments()) state.baseline = analysis; // the answer an experiment starts from
  if (state.source.kind === "test" && !state.source.shown && !state.cover) {
    pad.showPicture(analysis.image); // the test digit appears on the pad, as if written there
    state.source.shown = true;
  }
  answer.show(analysis);
  strip.show(analysis, hasExperiments() ? state.baseline : null);
  layers.show(analysis, state.model, state.disabled, state.model.class_names);
  document.body.classList.remove("no-image");
  arithmetic.markPixel(state.pixel, state.model);
  if (state.stepLabel === null) step.showLabel(defaultStepLabel());
}

/** A blank pad or an unreadable drawing: no prediction, no layers, maybe the server's words. */
function showNothing(message) {
  state.analysis = null;
  requests.forget(["preparation", "gradient", "arithmetic", "weight", "routing", "step"]);
  answer.clear(message);
  preparation.clear();
  strip.clear();
  layers.clear();
  arithmetic.hide();
  weightView.hide();
  why.clear();
  step.clear();
  document.body.classList.add("no-image");
}

/** How the drawing became the 28x28 image, step by step (only while that view is open). */
async function runPreparation() {
  if (!preparation.isOpen() || !state.analysis) return;
  if (state.source.kind === "test") {
    preparation.clear("A test digit comes prepared: MNIST's makers cropped, scaled and centred it.");
    return;
  }
  const image = imageRequest();
  if (image === null) return;
  const reply = await postJSON("/api/preparation", image);
  if (reply.ok) preparation.show(reply.body);
  else preparation.clear(reply.body.error);
}

/** Why this answer: the gradient of the picked class's score (the answer's, by default). */
async function runGradient() {
  const image = imageRequest();
  if (image === null || !state.analysis) return;
  const reply = await postJSON("/api/gradient", {
    ...image,
    ...experimentRequest(),
    class: whyClass(),
    versus: state.versus,
  });
  if (!reply.ok) {
    why.showError(reply.body.error);
    return;
  }
  why.show(reply.body, state.analysis.image, state.analysis.prediction);
}

/** The server's arithmetic of one map pixel ({layer, channel, row, column}) of the image. */
function askArithmetic(image, pixel) {
  const { layer, channel, row, column } = pixel;
  const where = { layer, channel, row, column };
  return postJSON("/api/arithmetic", { ...image, ...experimentRequest(), ...where });
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
  const reply = await askArithmetic(image, pixel);
  if (!reply.ok) {
    arithmetic.showError(reply.body.error);
    return;
  }
  const layer = state.analysis.layers.find((l) => l.name === pixel.layer);
  const mapValue = layer.values.at(pixel.channel, pixel.row, pixel.column);
  arithmetic.show(pixel.kind, reply.body, mapValue);
}

/** One filter weight's gradient, as a sum over positions, for the class "Why" asks about. */
async function runWeight() {
  const weight = state.weight;
  const image = imageRequest();
  if (!weight || image === null || !state.analysis) return;
  const reply = await postJSON("/api/weight_gradient", {
    ...image,
    ...experimentRequest(),
    ...weight,
    class: whyClass(),
    versus: state.versus,
  });
  if (!reply.ok) {
    weightView.showError(reply.body.error);
    return;
  }
  const names = state.model.class_names;
  const versus = reply.body.versus === null ? null : names[reply.body.versus];
  weightView.show(reply.body, names[reply.body.class], versus);
}

/** Where a pooled pixel's gradient goes: its window, from the arithmetic of that pixel. */
async function runRouting() {
  const pixel = state.pooledPixel;
  const image = imageRequest();
  if (!pixel || image === null || !state.analysis || !why.gradient) return;
  const reply = await askArithmetic(image, pixel);
  if (reply.ok) why.showRouting(pixel, reply.body);
  else why.showError(reply.body.error);
}

/** The label a training step uses unless one is picked: a test digit's true class, or the
 * network's answer. */
function defaultStepLabel() {
  return state.analysis.true_class ?? state.analysis.prediction;
}

/** One training step on this image (and 7 test digits), stage by stage. */
async function runStep() {
  const image = imageRequest();
  if (image === null || !state.analysis) return;
  const label = state.stepLabel ?? defaultStepLabel();
  step.showLabel(label);
  const reply = await postJSON("/api/training_step", { ...image, ...experimentRequest(), label });
  if (!reply.ok) {
    step.showError(reply.body.error);
    return;
  }
  step.show(reply.body);
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

/** A new image (a stroke begun, a test digit, Clear): the class asked about follows its
 * answer again, and a cover, placed on the old image, is taken off (said in the line). */
function newImage() {
  state.whyClass = null;
  state.versus = null;
  state.stepLabel = null;
  state.pooledPixel = null;
  why.hideRouting();
  step.clear();
  if (state.cover) {
    state.cover = null;
    showExperiments();
    experiments.note("The cover was taken off: a new stroke re-centres the image under it.");
  }
}

// --------------------------------------------------------------------------------------------
// The image explored: the pad, or a digit of the test set
// --------------------------------------------------------------------------------------------

function loadTestDigit(index, caption, initial = false) {
  newImage();
  state.source = { kind: "test", index, caption, initial };
  pad.showPicture(null);
  pad.showSource(state.source);
  requests.ask(EVERYTHING);
  if (!initial) $("draw-section").scrollIntoView({ behavior: "smooth", block: "start" });
}

// --------------------------------------------------------------------------------------------
// The model: loaded at start, after every training run and when the original is restored
// --------------------------------------------------------------------------------------------

async function loadModel() {
  const reply = await getJSON("/api/model");
  if (!reply.ok) {
    modelView.showServerMessage(reply.body.error);
    return;
  }
  modelView.showServerMessage("");
  const model = reply.body;
  modelView.show(model, !model.read_only || Boolean(TEACHER_TOKEN));
  training.setModel(model);
  if (!model.ok) {
    state.model = null;
    return;
  }
  state.model = model;
  answer.setClasses(model.class_names);
  strip.setClasses(model.class_names);
  why.setClasses(model.class_names);
  step.setClasses(model.class_names);
  filters.show(model);
  // A new model may have other filters: the experiments and the pixel start afresh.
  state.disabled = {};
  state.cover = null;
  state.pixel = null;
  state.weight = null;
  state.baseline = null;
  newImage();
  arithmetic.hide();
  weightView.hide();
  layers.clear();
  showExperiments();
  loadTestSet(model);
  if (state.source.kind === "pad" && pad.isBlank()) {
    loadTestDigit(0, "test digit #0, the first of the test set", true);
  } else {
    requests.ask(["analysis", "gradient"]);
  }
}

/** The server explores another model (a run ended, or the original came back, perhaps from
 * another page): say so at the top, then load it. */
function modelChanged(event) {
  const text =
    event.type === "model"
      ? event.message
      : `The model changed: the training run ${event.type === "stopped" ? "was stopped and " : ""}` +
        `saved to ${event.model_path}, and every page now explores it.`;
  modelView.showNotice(text);
  loadModel();
}

async function restoreOriginal() {
  const reply = await postJSON(
    "/api/model/restore",
    TEACHER_TOKEN ? { teacher_token: TEACHER_TOKEN } : {},
  );
  if (!reply.ok) modelView.showNotice(reply.body.error);
  // On success the server tells every page, this one included (a "model" event).
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
  newImage();
  state.source = { kind: "pad" };
  pad.clear();
});
$("undo").addEventListener("click", () => {
  newImage();
  pad.undo();
});
$("freeze-scales").addEventListener("change", (event) => layers.freeze(event.target.checked));
pad.showSource(state.source);
training.connect();
loadModel();
