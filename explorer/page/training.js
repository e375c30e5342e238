// Watch it learn: start a training run on the server (POST /api/train, with the epochs, the
// learning rate and the filters per stage the learner chose), pace it (pause, one step at a
// time, slow, full speed: /api/train/pace), follow it through the event stream
// (/api/train/events, Server-Sent Events) and draw what each event carries: the loss and
// accuracy curves, the filters and one digit's maps as they change, two figures of each
// layer's health, and, when paced, the last step's gradients. The run is the training
// program's own train(); see live_training.py. Every page sees every run: a run started,
// paced or stopped from another page shows here too.

import { decodeArrays, postJSON } from "./api.js";
import { element } from "./element.js";
import { filterBank, redrawFilterBank } from "./filters.js";
import { drawMapGrid, layerBlocks, mapGrid } from "./layers.js";
import { formatNumber, scaleLegend } from "./maps.js";

const COLOURS = { train: "#1f5f8b", validation: "#d9822b" };

export class TrainingView {
  /**
   * @param {HTMLElement} root  the section (#training-section)
   * @param {object} options
   * @param {string|null} options.token  the teacher's token (from ?teacher= in the address),
   *   sent with every request that controls the run; null: none
   * @param {(event: object) => void} options.onModelChanged  a run finished or stopped, or the
   *   original was restored: the server now explores another model, so the page reloads it
   * @param {() => void} options.onRestore  "Restore the original" was pressed
   */
  constructor(root, { token, onModelChanged, onRestore }) {
    this.root = root;
    this.token = token;
    this.onModelChanged = onModelChanged;
    this.status = root.querySelector("#train-status");
    this.message = root.querySelector("#train-message");
    this.savePath = root.querySelector("#train-save-path");
    this.originalPath = root.querySelector("#train-original-path");
    this.refusal = root.querySelector("#train-refusal");
    this.readOnlyNote = root.querySelector("#read-only-note");
    this.lossCanvas = root.querySelector("#loss-curve");
    this.accuracyCanvas = root.querySelector("#accuracy-curve");
    this.filters = root.querySelector("#train-filters");
    this.gradients = root.querySelector("#train-gradients");
    this.stepLoss = root.querySelector("#train-step-loss");
    this.maps = root.querySelector("#train-maps");
    this.health = root.querySelector("#train-health");
    this.epochs = root.querySelector("#train-epochs");
    this.learningRate = root.querySelector("#train-learning-rate");
    this.filterControls = root.querySelector("#train-filters-controls");
    this.buttons = {
      quick: root.querySelector("#train-quick"),
      full: root.querySelector("#train-full"),
      stop: root.querySelector("#train-stop"),
      restore: root.querySelector("#restore-original-here"),
      pause: root.querySelector("#train-pause"),
      step: root.querySelector("#train-step"),
      slow: root.querySelector("#train-slow"),
      resume: root.querySelector("#train-resume"),
    };
    this.curves = emptyCurves();
    this.showingRun = false; // the curves show a run (kept after it ends), or the model's history
    this.eventsSeen = 0; // a status line set after a request must not hide a newer event's
    this.training = false;
    this.pace = "run";
    this.model = null;
    this.buttons.quick.addEventListener("click", () => this.start("quick"));
    this.buttons.full.addEventListener("click", () => this.start("full"));
    this.buttons.stop.addEventListener("click", () => this.stop());
    this.buttons.restore.addEventListener("click", onRestore);
    this.buttons.pause.addEventListener("click", () => this.setPace("pause"));
    this.buttons.step.addEventListener("click", () => this.setPace("step"));
    this.buttons.slow.addEventListener("click", () => this.setPace("slow"));
    this.buttons.resume.addEventListener("click", () => this.setPace("run"));
    new ResizeObserver(() => this.drawCurves()).observe(this.lossCanvas);
  }

  /** Listen to the server's training events for as long as the page is open. */
  connect() {
    const events = new EventSource("/api/train/events");
    events.addEventListener("message", (event) =>
      this.handle(decodeArrays(JSON.parse(event.data))),
    );
  }

  /** Whether this page may control runs: any page, unless the server is read-only (then only
   * the teacher's page, which has the token; the server checks it). */
  maySteer() {
    return !this.model?.read_only || Boolean(this.token);
  }

  /** The model the server explores (or its absence): where runs save, and its history. */
  setModel(model) {
    this.model = model;
    this.savePath.textContent = model.run_path || "(nowhere: see below)";
    this.originalPath.textContent = model.original_path;
    this.refusal.hidden = !model.run_refusal;
    this.refusal.textContent = model.run_refusal
      ? `No run can be started: it could not save (${model.run_refusal}).`
      : "";
    this.readOnlyNote.hidden = !model.read_only || Boolean(this.token);
    this.root.dataset.canTrain = String(Boolean(model.run_path) && this.maySteer());
    this.buttons.restore.hidden = !(model.path !== model.original_path && this.maySteer());
    this.showFilterControls(model);
    this.training = Boolean(model.training);
    this.updateButtons();
    if (model.training) {
      this.setStatus("A run is in progress; its next events will appear here.");
    }
    if (!this.showingRun) {
      // Until a run starts, the curves show how the loaded model was trained, epoch by epoch.
      this.curves = emptyCurves();
      for (const record of model.history || []) this.addEpoch(record);
      this.curves.epochs = (model.history || []).length;
      this.drawCurves();
    }
  }

  /** One number per conv stage: the filters a run trains (the model's, unless changed). */
  showFilterControls(model) {
    const counts = model.ok ? model.stages.map((stage) => stage.filters) : [6, 16];
    const label = (count, index) =>
      element(
        "label",
        {},
        `conv${index + 1} filters `,
        element("input", {
          type: "number",
          min: 1,
          max: model.limits.filters,
          step: 1,
          value: String(count),
          className: "train-filters",
          data: { stage: index, model: count },
        }),
      );
    this.filterControls.replaceChildren(...counts.map(label));
  }

  /** What the controls ask of a run: only what differs from the model's own settings. */
  settings() {
    const body = {};
    if (this.epochs.value !== "") body.epochs = Number(this.epochs.value);
    if (this.learningRate.value !== "") body.learning_rate = Number(this.learningRate.value);
    const inputs = [...this.filterControls.querySelectorAll("input")];
    if (inputs.some((input) => input.value !== input.dataset.model)) {
      body.num_filters = inputs.map((input) => Number(input.value));
    }
    return body;
  }

  /** Only what can be done now is enabled: starting without a run, Stop and the pace with one. */
  updateButtons() {
    const steer = this.maySteer() && Boolean(this.model?.run_path);
    for (const name of ["quick", "full"]) {
      this.buttons[name].hidden = !steer;
      this.buttons[name].disabled = this.training;
    }
    for (const name of ["stop", "pause", "step", "slow", "resume"]) {
      this.buttons[name].hidden = !this.maySteer();
      this.buttons[name].disabled = !this.training;
    }
    if (this.training) {
      this.buttons.pause.disabled = this.pace === "pause";
      this.buttons.slow.disabled = this.pace === "slow";
      this.buttons.resume.disabled = this.pace === "run";
    }
    this.root.querySelector(".train-controls").hidden = !steer;
    this.root.dataset.training = String(this.training);
    this.root.dataset.pace = this.pace;
  }

  /** A request that controls the run, with the teacher's token when there is one. */
  async control(path, body) {
    this.message.textContent = "";
    const answer = await postJSON(path, this.token ? { ...body, teacher_token: this.token } : body);
    if (!answer.ok) {
      this.message.textContent = answer.body.error; // e.g. 409: a run is already running
      this.message.dataset.status = String(answer.status);
    }
    return answer;
  }

  async start(mode) {
    const seen = this.eventsSeen;
    const answer = await this.control("/api/train", { mode, ...this.settings() });
    if (answer.ok && this.eventsSeen === seen) {
      this.setStatus(`Starting a ${mode} run; it will save to ${answer.body.save_path}.`);
    }
  }

  async stop() {
    const seen = this.eventsSeen;
    const answer = await this.control("/api/train/stop", {});
    if (answer.ok && this.eventsSeen === seen) {
      this.setStatus("Stopping after the current step; the run saves the model first.");
    }
  }

  async setPace(pace) {
    await this.control("/api/train/pace", { pace });
  }

  setStatus(text, state) {
    this.status.textContent = text;
    if (state) this.status.dataset.state = state;
  }

  handle(event) {
    this.eventsSeen += 1;
    if (event.type === "started") {
      const c = event.settings;
      const images = c.limit ? `${c.limit.toLocaleString("en")} images` : "all training images";
      this.showingRun = true;
      this.training = true;
      this.pace = "run";
      this.curves = emptyCurves();
      this.curves.epochs = c.epochs;
      this.drawCurves();
      this.root.classList.remove("has-gradients");
      this.setStatus(
        `Training: ${c.epochs} epochs on ${images}, batches of ${c.batch_size}, learning rate ` +
          `${c.learning_rate}, filters ${c.filters.join(",")}; saves to ${c.save_path}.`,
        "running",
      );
    } else if (event.type === "progress") {
      this.showingRun = true;
      this.training = true;
      this.root.classList.add("has-progress"); // the live pictures appear with the first one
      this.showProgress(event);
    } else if (event.type === "epoch") {
      this.showingRun = true;
      this.addEpoch(event.record);
      this.drawCurves();
    } else if (event.type === "pace") {
      this.pace = event.pace;
      const said = { pause: "Paused between two steps.", slow: "Slow: two steps a second.", run: "Full speed." };
      if (!event.stepping) this.setStatus(said[event.pace] ?? "", "running");
    } else if (event.type === "model") {
      this.onModelChanged(event); // the original was restored (from this page or another)
    } else {
      // "finished", "stopped" or "failed": the run is over; the server has loaded what it saved.
      this.training = false;
      this.pace = "run";
      this.setStatus(event.message, event.type);
      if (event.type !== "failed") this.onModelChanged(event);
    }
    this.updateButtons();
  }

  showProgress(event) {
    const x = event.epoch - 1 + event.step / event.steps; // epochs done, as a fraction
    this.curves.epochs = event.epochs;
    this.curves.trainLoss.push([x, event.loss]);
    this.curves.trainAccuracy.push([x, event.accuracy]);
    this.drawCurves();
    const speed = event.images_per_second
      ? `, ${Math.round(event.images_per_second).toLocaleString("en")} images/s`
      : "";
    this.setStatus(
      `Training: epoch ${event.epoch} of ${event.epochs}, step ${event.step} of ${event.steps}` +
        `${speed}. Loss ${event.loss.toFixed(3)}, accuracy ${(100 * event.accuracy).toFixed(1)}% ` +
        "(this epoch so far).",
      "running",
    );
    this.showFilters(event.filters);
    this.showMaps(event.maps);
    this.showHealth(event.dead_fraction, event.update_ratio);
    if (event.conv_gradients) {
      this.pace = event.pace;
      this.root.classList.add("has-gradients");
      this.stepLoss.textContent = `step ${event.step}: loss ${formatNumber(event.step_loss)}`;
      this.showBanks(this.gradients, event.conv_gradients, "d loss / d");
    }
  }

  addEpoch(record) {
    this.curves.epochPoints.push([record.epoch, record.loss, record.accuracy]);
    if (record.val_loss !== undefined) {
      this.curves.valLoss.push([record.epoch, record.val_loss]);
      this.curves.valAccuracy.push([record.epoch, record.val_accuracy]);
    }
  }

  drawCurves() {
    const c = this.curves;
    // Between runs the history has one point per epoch (its end); during a run, many.
    const trainLoss = c.trainLoss.length ? c.trainLoss : c.epochPoints.map(([x, l]) => [x, l]);
    const trainAccuracy = c.trainAccuracy.length
      ? c.trainAccuracy
      : c.epochPoints.map(([x, , a]) => [x, a]);
    const xMax = Math.max(1, c.epochs, ...trainLoss.map(([x]) => x));
    // During a run each point is the mean of the epoch so far; between runs, of a whole epoch.
    const training = c.trainLoss.length ? "training (this epoch so far)" : "training (epoch mean)";
    drawChart(this.lossCanvas, xMax, "loss", [
      { label: training, colour: COLOURS.train, points: trainLoss },
      {
        label: "validation (end of epoch)",
        colour: COLOURS.validation,
        points: c.valLoss,
        dots: true,
      },
    ]);
    drawChart(this.accuracyCanvas, xMax, "accuracy", [
      { label: "training", colour: COLOURS.train, points: trainAccuracy },
      { label: "validation", colour: COLOURS.validation, points: c.valAccuracy, dots: true },
    ]);
    // A test hook: the number of points drawn on the loss curve.
    this.lossCanvas.dataset.points = String(trainLoss.length + c.valLoss.length);
  }

  /** The filters as they learn: built once per network shape, redrawn on every event. */
  showFilters(filters) {
    this.showBanks(this.filters, filters, "");
  }

  /** Banks of filters (or of their gradients), one per layer, in `container`. */
  showBanks(container, banks, prefix) {
    const blocks = layerBlocks(container, banks, (name, bank) => [
      element("h3", {}, prefix ? `${prefix} ${name}` : name),
      element("div", { className: "legend-slot" }),
      filterBank(name, bank, bank.maxAbs()),
    ]);
    for (const [name, block] of blocks) {
      const scale = banks[name].maxAbs();
      block.querySelector(".legend-slot").replaceChildren(scaleLegend(scale, "this bank"));
      redrawFilterBank(block.querySelector(".filter-grid"), banks[name], scale);
    }
  }

  /** One test digit's maps at every conv and pool layer, as the network sees it right now. */
  showMaps(maps) {
    const blocks = layerBlocks(this.maps, maps, (name, layerMaps) => [
      element("h3", {}, name),
      element("div", { className: "legend-slot" }),
      mapGrid(`train-${name}`, layerMaps.shape[0]),
    ]);
    for (const [name, block] of blocks) {
      const scale = maps[name].maxAbs();
      const relu = name.startsWith("pool"); // pooled maps come after ReLU: no negatives
      block.querySelector(".legend-slot").replaceChildren(scaleLegend(scale, "this layer", relu));
      drawMapGrid(block.querySelector(".map-grid"), maps[name], scale);
    }
  }

  showHealth(deadFraction, updateRatio) {
    const names = [...new Set([...Object.keys(deadFraction), ...Object.keys(updateRatio)])];
    const head = element(
      "tr",
      {},
      element("th", {}, "layer"),
      element("th", {}, "dead ReLUs"),
      element("th", {}, "update / weight per step"),
    );
    const rows = names.map((name) => {
      const dead = deadFraction[name];
      const ratio = updateRatio[name];
      const deadCell = element(
        "td",
        { className: "dead" },
        dead === undefined ? "–" : `${(100 * dead).toFixed(1)}%`,
      );
      // The figures the event carries, kept exact for a reader (and tests) to check.
      if (dead !== undefined) deadCell.dataset.value = String(dead);
      const ratioCell = element(
        "td",
        { className: "ratio" },
        ratio === undefined ? "–" : formatNumber(ratio),
      );
      if (ratio !== undefined) {
        ratioCell.dataset.value = String(ratio);
        // Far from 1e-3 either way is worth a look: say so beside the number.
        const hint = ratio < 1e-5 ? " barely moving" : ratio > 1e-2 ? " moving fast" : null;
        if (hint) ratioCell.append(element("span", { className: "hint" }, hint));
      }
      return element("tr", { data: { layer: name } }, element("th", {}, name), deadCell, ratioCell);
    });
    this.health.replaceChildren(head, ...rows);
  }
}

function emptyCurves() {
  return {
    epochs: 0,
    trainLoss: [], // [epochs done, running mean of the epoch's loss so far]
    trainAccuracy: [],
    epochPoints: [], // [epoch, loss, accuracy] from the history's records
    valLoss: [], // [epoch, validation loss at its end]
    valAccuracy: [],
  };
}

/**
 * A line chart on a canvas: x from 0 to xMax epochs, y from 0 (loss) or the lowest value
 * (accuracy) to the highest; each series a line (or dots), with a legend.
 */
function drawChart(canvas, xMax, what, series) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (!width || !height) return;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  g.font = "12px system-ui, sans-serif";
  // The legend first: its entries wrap onto as many rows as the width needs (a phone's chart
  // is narrow), and the plot starts below them.
  const legend = [];
  let row = 0;
  let legendX = 8 + g.measureText(what).width + 16;
  for (const s of series) {
    const entryWidth = 18 + g.measureText(s.label).width;
    if (legendX + entryWidth > width - 8 && legendX > 8 + g.measureText(what).width + 16) {
      row += 1;
      legendX = 8 + g.measureText(what).width + 16;
    }
    legend.push({ s, x: legendX, y: 16 + 16 * row });
    legendX += entryWidth + 12;
  }
  const dot = 3.5; // the radius of a validation dot: the plot keeps that much room inside
  const margin = { left: 48, right: 16 + dot, top: 28 + 16 * row, bottom: 36 };
  const values = series.flatMap((s) => s.points.map(([, y]) => y)).filter(Number.isFinite);
  xMax = Math.max(xMax, ...series.flatMap((s) => s.points.map(([x]) => x)));
  // Grid lines on round numbers: a step of 1, 2, 2.5 or 5 times a power of ten, about 4 of them.
  const top = what === "accuracy" ? 1 : values.length ? Math.max(...values) : 1;
  const bottom = what === "accuracy" && values.length ? Math.min(...values) : 0;
  const yStep = niceCeiling((top - bottom) / 4 || 0.25);
  const yMin = Math.floor(bottom / yStep) * yStep;
  const yMax = Math.max(yMin + yStep, Math.ceil(top / yStep - 1e-9) * yStep);
  const px = (x) => margin.left + (x / xMax) * (width - margin.left - margin.right);
  const py = (y) =>
    height - margin.bottom - ((y - yMin) / (yMax - yMin)) * (height - margin.top - margin.bottom);

  // Axes and grid lines, with their numbers.
  g.fillStyle = "#555";
  g.strokeStyle = "#ddd";
  g.lineWidth = 1;
  for (let y = yMin; y <= yMax + yStep / 2; y += yStep) {
    g.beginPath();
    g.moveTo(margin.left, py(y));
    g.lineTo(width - margin.right, py(y));
    g.stroke();
    g.textAlign = "right";
    const label = what === "accuracy" ? `${Math.round(100 * y)}%` : String(Number(y.toFixed(3)));
    g.fillText(label, margin.left - 6, py(y) + 4);
  }
  const xStep = Math.max(1, Math.ceil(xMax / 10));
  g.textAlign = "center";
  for (let x = 0; x <= xMax; x += xStep) g.fillText(String(x), px(x), height - margin.bottom + 15);
  g.fillText("epochs", (margin.left + width - margin.right) / 2, height - 2);
  g.textAlign = "left";
  g.fillStyle = "#222";
  g.fillText(what, 8, 16);

  // The series, and their legend.
  let outside = 0; // a test hook: points or legend entries drawn beyond the canvas
  for (const { s, x: entryX, y: entryY } of legend) {
    g.strokeStyle = s.colour;
    g.fillStyle = s.colour;
    g.lineWidth = 2;
    for (const [x, y] of s.points) {
      const [cx, cy] = [px(x), py(y)];
      if (cx - dot < 0 || cx + dot > width || cy - dot < 0 || cy + dot > height) outside += 1;
    }
    if (s.dots || s.points.length === 1) {
      for (const [x, y] of s.points) {
        g.beginPath();
        g.arc(px(x), py(y), dot, 0, 2 * Math.PI);
        g.fill();
      }
    }
    if (!s.dots && s.points.length > 1) {
      g.beginPath();
      s.points.forEach(([x, y], i) => (i ? g.lineTo(px(x), py(y)) : g.moveTo(px(x), py(y))));
      g.stroke();
    }
    g.fillRect(entryX, entryY - 7, 14, 3);
    g.fillStyle = "#333";
    g.fillText(s.label, entryX + 18, entryY);
    if (entryX + 18 + g.measureText(s.label).width > width) outside += 1;
  }
  canvas.dataset.outside = String(outside);
}

/** The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `value`. */
function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((nice) => nice >= value);
}
