// The network's insides: every layer's output for the current image (/api/analyse).
//
// Built from what the server says the model is (/api/model's stages, /api/analyse's layers),
// so any network the trainer can build (more stages, 32 or 64 filters, several hidden layers)
// is drawn the same way. Each layer gets its own colour scale and a line stating its range
// (white to red after a ReLU); the scales can be frozen, so that colours before and after an
// experiment compare. The blocks and grids of maps here are the ones the "why" and training
// views draw too.

import { element } from "./element.js";
import {
  divergingCss,
  drawMap,
  drawVector,
  formatNumber,
  mapDisplayWidth,
  pixelAt,
  scaleLegend,
  textOnColour,
} from "./maps.js";

/** "1 pixel", "2 pixels". */
export function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

/** Whether a layer's values come out of a ReLU (no negatives): pooled maps, the features
 * (the last pool, flattened) and the hidden layers. */
export function afterRelu(layer) {
  return layer.kind === "pool" || layer.name === "features" || layer.name.startsWith("hidden");
}

/** One line saying what a layer computes, for the heading of its block. */
function describeLayer(layer, model) {
  const name = layer.name;
  const [count, height, width] = layer.values.shape;
  if (layer.kind === "conv") {
    const stage = model.stages.find((s) => s.name === name);
    const number = Number(name.slice(4));
    const input = number === 1 ? "the image" : `the ${stage.in_channels} maps of pool${number - 1}`;
    const padding = stage.padding
      ? `, with ${plural(stage.padding, "pixel")} of zeros around it`
      : "";
    return (
      `${count} filters of ${stage.kernel_size}×${stage.kernel_size} slide over ${input}` +
      `${padding}: ${count} maps of ${height}×${width}, before ReLU (no bias is added). Red ` +
      "where the input matches the filter, blue where it matches its opposite. Click a pixel " +
      "for its arithmetic."
    );
  }
  if (layer.kind === "pool") {
    const number = Number(name.slice(4));
    const [rows, columns] = model.stages[number - 1].conv_size;
    const dropped = [rows % 2 ? "row" : null, columns % 2 ? "column" : null].filter(Boolean);
    const odd = dropped.length
      ? ` conv${number}'s ${rows}×${columns} is odd: its last ${dropped.join(" and ")} ` +
        `fall${dropped.length === 1 ? "s" : ""} in no window and ` +
        `${dropped.length === 1 ? "is" : "are"} dropped.`
      : "";
    return (
      `ReLU (negative values become 0), then 2×2 max-pooling: each pixel keeps the largest of ` +
      `its 2×2 window, ${count} maps of ${height}×${width}.${odd} Click a pixel to see its ` +
      "window."
    );
  }
  if (name === "features") {
    const last = model.stages.length;
    return (
      `The ${layer.values.shape[0]} numbers the dense head reads: pool${last}'s maps flattened, ` +
      "one map per row below, read row by row."
    );
  }
  if (name.startsWith("hidden")) {
    const units = layer.values.shape[0];
    return `A dense layer of ${units} units after ReLU: each unit weighs all of the layer before.`;
  }
  return "One score per class; softmax turns the scores into the probabilities at the top.";
}

/**
 * One <section class="layer" data-layer="name"> per entry of `arrays` (name -> Tensor) in
 * `container`, with the children `contents(name, array)` returns. Built again only when the
 * names or shapes change (a new network); each update redraws into the same blocks.
 * @returns {[string, HTMLElement][]}  each name and its block
 */
export function layerBlocks(container, arrays, contents) {
  const names = Object.keys(arrays);
  const shape = names.map((name) => `${name}:${arrays[name].shape.join("x")}`).join(";");
  if (container.dataset.shape !== shape) {
    container.dataset.shape = shape;
    container.replaceChildren(
      ...names.map((name) =>
        element(
          "section",
          { className: "layer", data: { layer: name } },
          ...contents(name, arrays[name]),
        ),
      ),
    );
  }
  return names.map((name) => [name, container.querySelector(`section[data-layer="${name}"]`)]);
}

/** A layer's heading: its name, then its size in small print. */
export function layerHeading(name, size) {
  return element("h3", {}, name, element("span", { className: "dims" }, size));
}

/** A grid of `count` empty maps, each a canvas[data-layer][data-channel] in a frame (for marks
 * drawn over it) above its number; drawMapGrid draws them. */
export function mapGrid(layerName, count) {
  const figures = Array.from({ length: count }, (_, channel) =>
    element(
      "figure",
      { className: "map-figure" },
      element(
        "div",
        { className: "frame" },
        element("canvas", { className: "map", data: { layer: layerName, channel } }),
      ),
      element("figcaption", {}, String(channel)),
    ),
  );
  return element("div", { className: "map-grid" }, ...figures);
}

/** Draw every map of a (count, height, width) layer into a grid built by mapGrid. */
export function drawMapGrid(grid, maps, scale) {
  const width = mapDisplayWidth(maps.shape[0]);
  grid.querySelectorAll("canvas.map").forEach((canvas, channel) => {
    drawMap(canvas, maps.slice(channel), scale, width);
  });
}

export class LayersView {
  /**
   * @param {HTMLElement} container  where the layer blocks go
   * @param {(pixel: object) => void} onPixel  a pixel of a conv or pool map was clicked:
   *   {layer, kind, channel, row, column}
   */
  constructor(container, onPixel) {
    this.container = container;
    this.onPixel = onPixel;
    this.frozen = null; // layer name -> the scale kept while frozen; null: each answer's own
    this.last = null; // the arguments of the last show(), to redraw on (un)freezing
  }

  /** Keep each layer's scale as it is now (on), or give each answer its own again (off). */
  freeze(on) {
    this.frozen = null;
    if (on && this.last) {
      this.frozen = new Map(this.last[0].layers.map((layer) => [layer.name, layer.scale]));
    }
    if (this.last) this.show(...this.last);
  }

  scaleOf(layer) {
    return this.frozen?.get(layer.name) ?? layer.scale;
  }

  clear() {
    this.container.replaceChildren();
    delete this.container.dataset.shape; // the next analysis builds the blocks again
    this.last = null;
  }

  /** Draw an analysis's layers, building their blocks first when the network's shape is new. */
  show(analysis, model, disabled, classNames) {
    this.last = [analysis, model, disabled, classNames];
    const layers = new Map(analysis.layers.map((layer) => [layer.name, layer]));
    const values = Object.fromEntries(analysis.layers.map((layer) => [layer.name, layer.values]));
    const blocks = layerBlocks(this.container, values, (name) =>
      this.blockContents(layers.get(name), model, classNames),
    );
    for (const [name, block] of blocks) this.draw(block, layers.get(name), disabled, classNames);
  }

  blockContents(layer, model, classNames) {
    const shape = layer.values.shape;
    const size =
      shape.length === 3 ? `${shape[0]} maps · ${shape[1]}×${shape[2]}` : `${shape[0]} numbers`;
    const parts = [
      layerHeading(layer.name, size),
      element("p", { className: "layer-note" }, describeLayer(layer, model)),
      element("div", { className: "legend-slot" }),
    ];
    if (layer.kind === "conv" || layer.kind === "pool") {
      const grid = mapGrid(layer.name, shape[0]);
      grid.addEventListener("click", (event) => this.clicked(event, layer));
      parts.push(grid);
    } else if (layer.name === "logits") {
      parts.push(logitsTable(classNames));
    } else {
      parts.push(element("canvas", { className: "vector", data: { layer: layer.name } }));
    }
    return parts;
  }

  draw(block, layer, disabled, classNames) {
    const scale = this.scaleOf(layer);
    const note = this.frozen ? " (frozen)" : "";
    block
      .querySelector(".legend-slot")
      .replaceChildren(scaleLegend(scale, "this layer", afterRelu(layer), note));
    if (layer.kind === "conv" || layer.kind === "pool") {
      drawMapGrid(block.querySelector(".map-grid"), layer.values, scale);
      // A switched-off filter's maps are all zero: say why, on the map itself.
      const off = new Set(disabled[`conv${layer.name.slice(4)}`] || []);
      block.querySelectorAll(".map-figure").forEach((figure, channel) => {
        figure.classList.toggle("off", off.has(channel));
        figure.querySelector("figcaption").textContent = off.has(channel)
          ? `${channel} · off`
          : String(channel);
      });
    } else if (layer.name === "logits") {
      block.querySelectorAll(".logit").forEach((cell, index) => {
        const value = layer.values.values[index];
        const swatch = cell.querySelector(".logit-value");
        swatch.textContent = formatNumber(value);
        swatch.dataset.value = String(value);
        swatch.style.background = divergingCss(value, scale);
        swatch.style.color = textOnColour(value, scale); // readable on a strong colour
        cell.title = `${classNames[index]}: score ${value}`;
      });
    } else {
      const count = layer.values.shape[0];
      // Features: one row per map of the last pool layer; other vectors: rows of 32.
      const features = layer.name === "features" && this.lastPoolSize();
      const columns = features || Math.min(count, 32);
      const rows = Math.ceil(count / columns);
      const cell = Math.max(4, Math.min(16, Math.floor(640 / columns), Math.floor(400 / rows)));
      drawVector(block.querySelector("canvas.vector"), layer.values, scale, columns, cell);
    }
  }

  /** Pixels per map of the last pool layer (the features are its maps, one after another). */
  lastPoolSize() {
    const pools = this.container.querySelectorAll('section[data-layer^="pool"]');
    const canvas = pools.length && pools[pools.length - 1].querySelector("canvas.map");
    return canvas ? canvas.width * canvas.height : 0;
  }

  clicked(event, layer) {
    const canvas = event.target.closest("canvas.map");
    if (!canvas) return;
    const { row, column } = pixelAt(event, canvas);
    this.onPixel({
      layer: layer.name,
      kind: layer.kind,
      channel: Number(canvas.dataset.channel),
      row,
      column,
    });
  }

  /** The block of a layer (the arithmetic panel is placed right below the one clicked). */
  block(name) {
    return this.container.querySelector(`section[data-layer="${name}"]`);
  }

  /** The frame and canvas of one map, for outlining pixels on it. */
  map(name, channel) {
    const block = this.block(name);
    const canvas = block && block.querySelector(`canvas.map[data-channel="${channel}"]`);
    return canvas ? { frame: canvas.parentElement, canvas } : null;
  }
}

/** One cell per class, its score (the logit) written on its colour. */
function logitsTable(classNames) {
  const cells = classNames.map((name, index) =>
    element(
      "div",
      { className: "logit", data: { class: index } },
      element("span", { className: "logit-name" }, name),
      element("span", { className: "logit-value" }),
    ),
  );
  return element("div", { className: "logits" }, ...cells);
}
