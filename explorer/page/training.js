// Watch it learn: start a training run on the server (POST /api/train), follow it through the
// event stream (/api/train/events, Server-Sent Events) and draw what each event carries: the
// loss and accuracy curves, the filters and one digit's maps as they change, and two figures
// of each layer's health. The run is the training program's own train(); see live_training.py.

import { decodeArrays, postJSON } from "./api.js";
import { element } from "./element.js";
import { filterBank, redrawFilterBank } from "./filters.js";
import { drawMapGrid, layerBlocks, mapGrid } from "./layers.js";
import { formatNumber, scaleLegend } from "./maps.js";

const COLOURS = { train: "#1f5f8b", validation: "#d9822b" };

export class TrainingView {
  /**
   * @param {HTMLElement} root  the section (#training-section)
   * @param {() => void} onRunEnded  a run finished or stopped: the server now explores the
   *   model it saved, so the page reloads /api/model
   */
  constructor(root, onRunEnded) {
    this.root = root;
    this.onRunEnded = onRunEnded;
    this.status = root.querySelector("#train-status");
    this.message = root.querySelector("#train-message");
    this.savePath = root.querySelector("#train-save-path");
    this.lossCanvas = root.querySelector("#loss-curve");
    this.accuracyCanvas = root.querySelector("#accuracy-curve");
    this.filters = root.querySelector("#train-filters");
    this.maps = root.querySelector("#train-maps");
    this.health = root.querySelector("#train-health");
    this.curves = emptyCurves();
    this.showingRun = false; // the curves show a run (kept after it ends), or the model's history
    this.eventsSeen = 0; // a status line set after a request must not hide a newer event's
    root.querySelector("#train-quick").addEventListener("click", () => this.start("quick"));
    root.querySelector("#train-full").addEventListener("click", () => this.start("full"));
    root.querySelector("#train-stop").addEventListener("click", () => this.stop());
    new ResizeObserver(() => this.drawCurves()).observe(this.lossCanvas);
  }

  /** Listen to the server's training events for as long as the page is open. */
  connect() {
    const events = new EventSource("/api/train/events");
    events.addEventListener("message", (event) =>
      this.handle(decodeArrays(JSON.parse(event.data))),
    );
  }

  /** The model the server explores (or its absence): where runs save, and its history. */
  setModel(model) {
    this.savePath.textContent = model.path;
    this.root.dataset.training = String(Boolean(model.training));
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

  async start(mode) {
    this.message.textContent = "";
    const seen = this.eventsSeen;
    const answer = await postJSON("/api/train", { mode });
    if (!answer.ok) {
      this.message.textContent = answer.body.error; // e.g. 409: a run is already running
      this.message.dataset.status = String(answer.status);
    } else if (this.eventsSeen === seen) {
      this.setStatus(`Starting a ${mode} run; it will save to ${answer.body.save_path}.`);
    }
  }

  async stop() {
    this.message.textContent = "";
    const seen = this.eventsSeen;
    const answer = await postJSON("/api/train/stop", {});
    if (!answer.ok) {
      this.message.textContent = answer.body.error;
      this.message.dataset.status = String(answer.status);
    } else if (this.eventsSeen === seen) {
      this.setStatus("Stopping after the current step; the run saves the model first.");
    }
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
      this.curves = emptyCurves();
      this.curves.epochs = c.epochs;
      this.drawCurves();
      this.root.dataset.training = "true";
      this.setStatus(
        `Training: ${c.epochs} epochs on ${images}, batches of ${c.batch_size}, filters ` +
          `${c.filters.join(",")}; saves to ${c.save_path}.`,
        "running",
      );
    } else if (event.type === "progress") {
      this.showingRun = true;
      this.root.classList.add("has-progress"); // the live pictures appear with the first one
      this.root.dataset.training = "true";
      this.showProgress(event);
    } else if (event.type === "epoch") {
      this.showingRun = true;
      this.addEpoch(event.record);
      this.drawCurves();
    } else {
      // "finished", "stopped" or "failed": the run is over; the server has loaded what it saved.
      this.root.dataset.training = "false";
      this.setStatus(event.message, event.type);
      this.onRunEnded(event);
    }
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
    const blocks = layerBlocks(this.filters, filters, (name, bank) => [
      element("h3", {}, name),
      element("div", { className: "legend-slot" }),
      filterBank(name, bank, bank.maxAbs()),
    ]);
    for (const [name, block] of blocks) {
      const scale = filters[name].maxAbs();
      block.querySelector(".legend-slot").replaceChildren(scaleLegend(scale, "this bank"));
      redrawFilterBank(block.querySelector(".filter-grid"), filters[name], scale);
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
      block.querySelector(".legend-slot").replaceChildren(scaleLegend(scale));
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
  const margin = { left: 48, right: 16, top: 28, bottom: 36 };
  const values = series.flatMap((s) => s.points.map(([, y]) => y)).filter(Number.isFinite);
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
  g.font = "12px system-ui, sans-serif";
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
  g.fillText(what, margin.left, 16);

  // The series, and a legend along the top.
  let legendX = margin.left + 70;
  for (const s of series) {
    g.strokeStyle = s.colour;
    g.fillStyle = s.colour;
    g.lineWidth = 2;
    if (s.dots || s.points.length === 1) {
      for (const [x, y] of s.points) {
        g.beginPath();
        g.arc(px(x), py(y), 3.5, 0, 2 * Math.PI);
        g.fill();
      }
    }
    if (!s.dots && s.points.length > 1) {
      g.beginPath();
      s.points.forEach(([x, y], i) => (i ? g.lineTo(px(x), py(y)) : g.moveTo(px(x), py(y))));
      g.stroke();
    }
    g.fillRect(legendX, 9, 14, 3);
    g.fillStyle = "#333";
    g.fillText(s.label, legendX + 18, 16);
    legendX += 26 + g.measureText(s.label).width;
  }
}

/** The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `value`. */
function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((nice) => nice >= value);
}
