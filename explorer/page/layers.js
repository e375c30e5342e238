// The network's insides: every layer's output for the current image, and every filter.
//
// Built from what the server says the model is (/api/model's stages, /api/analyse's layers),
// so any network the trainer can build (more stages, 32 or 64 filters, several hidden layers)
// is drawn the same way. Each layer gets its own colour scale and a line stating its range.

import {
  divergingCss,
  drawFilter,
  filterDrawingSize,
  drawMap,
  drawVector,
  element,
  formatNumber,
  mapDisplayWidth,
  pixelAt,
  scaleLegend,
} from "./maps.js";

/** One line saying what a layer computes, for the heading of its block. */
function describeLayer(layer, model) {
  const name = layer.name;
  const [count, height, width] = layer.values.shape;
  if (layer.kind === "conv") {
    const stage = model.stages.find((s) => s.name === name);
    const number = Number(name.slice(4));
    const input = number === 1 ? "the image" : `the ${stage.in_channels} maps of pool${number - 1}`;
    const padding = stage.padding ? `, with ${stage.padding} pixels of zeros around it` : "";
    return (
      `${count} filters of ${stage.kernel_size}×${stage.kernel_size} slide over ${input}` +
      `${padding}: ${count} maps of ${height}×${width}, before ReLU. Red where the input ` +
      "matches the filter, blue where it matches its opposite. Click a pixel for its arithmetic."
    );
  }
  if (layer.kind === "pool") {
    return (
      `ReLU (negative values become 0), then 2×2 max-pooling: each pixel keeps the largest of ` +
      `its 2×2 window, ${count} maps of ${height}×${width}. Click a pixel to see its window.`
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

/** The figure of one map: a frame (for marks drawn over it), the canvas, and its number. */
export function mapFigure(layerName, channel, caption) {
  const figure = element("figure", "map-figure");
  const frame = element("div", "frame");
  const canvas = element("canvas", "map");
  canvas.dataset.layer = layerName;
  canvas.dataset.channel = String(channel);
  frame.append(canvas);
  figure.append(frame, element("figcaption", "", caption));
  return figure;
}

/** Draw every map of a (count, height, width) layer into a grid built by mapFigure. */
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
    this.structure = ""; // names and shapes the blocks were built for
    this.blocks = new Map(); // layer name -> its block element
  }

  clear() {
    this.container.replaceChildren();
    this.blocks.clear();
    this.structure = "";
  }

  /** Build the blocks for an analysis's layers (once per network shape), then draw them. */
  show(analysis, model, disabled, classNames) {
    const structure = analysis.layers.map((l) => `${l.name}${l.values.shape}`).join(";");
    if (structure !== this.structure) this.build(analysis, model, classNames);
    for (const layer of analysis.layers) this.draw(layer, disabled, classNames);
  }

  build(analysis, model, classNames) {
    this.clear();
    this.structure = analysis.layers.map((l) => `${l.name}${l.values.shape}`).join(";");
    for (const layer of analysis.layers) {
      const block = element("section", "layer");
      block.dataset.layer = layer.name;
      const shape = layer.values.shape;
      const size =
        shape.length === 3 ? `${shape[0]} maps · ${shape[1]}×${shape[2]}` : `${shape[0]} numbers`;
      const heading = element("h3", "", layer.name);
      heading.append(element("span", "dims", size));
      block.append(heading, element("p", "layer-note", describeLayer(layer, model)));
      block.append(element("div", "legend-slot"));
      if (layer.kind === "conv" || layer.kind === "pool") {
        const grid = element("div", "map-grid");
        for (let channel = 0; channel < shape[0]; channel++) {
          grid.append(mapFigure(layer.name, channel, String(channel)));
        }
        grid.addEventListener("click", (event) => this.clicked(event, layer));
        block.append(grid);
      } else if (layer.name === "logits") {
        block.append(this.logitsTable(classNames));
      } else {
        const canvas = element("canvas", "vector");
        canvas.dataset.layer = layer.name;
        block.append(canvas);
      }
      this.blocks.set(layer.name, block);
      this.container.append(block);
    }
  }

  logitsTable(classNames) {
    const table = element("div", "logits");
    classNames.forEach((name, index) => {
      const cell = element("div", "logit");
      cell.dataset.class = String(index);
      cell.append(element("span", "logit-name", name), element("span", "logit-value"));
      table.append(cell);
    });
    return table;
  }

  draw(layer, disabled, classNames) {
    const block = this.blocks.get(layer.name);
    const scale = layer.scale;
    block.querySelector(".legend-slot").replaceChildren(scaleLegend(scale));
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

  lastPoolSize() {
    const pools = [...this.blocks.keys()].filter((name) => name.startsWith("pool"));
    const grid = this.blocks.get(pools[pools.length - 1]);
    const canvas = grid && grid.querySelector("canvas.map");
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
    return this.blocks.get(name);
  }

  /** The frame and canvas of one map, for outlining pixels on it. */
  map(name, channel) {
    const block = this.blocks.get(name);
    const canvas = block && block.querySelector(`canvas.map[data-channel="${channel}"]`);
    return canvas ? { frame: canvas.parentElement, canvas } : null;
  }
}

/**
 * A bank of filters (F, C, K, K) as buttons, one per filter, each drawn with its C channels
 * side by side. `onToggle(layer, index)` switches a filter off or on; without it (the training
 * view), the filters are pictures only.
 */
export function filterBank(layerName, bank, scale, onToggle) {
  const [count, channels, k] = bank.shape;
  const grid = element("div", "filter-grid");
  const cell = filterCellPixels(filterDrawingSize(channels, k).width);
  for (let index = 0; index < count; index++) {
    const item = element(onToggle ? "button" : "figure", "filter");
    item.dataset.layer = layerName;
    item.dataset.filter = String(index);
    const canvas = element("canvas", "filter-canvas");
    drawFilter(canvas, bank.slice(index), scale, cell);
    item.append(canvas, element("span", "filter-caption", String(index)));
    if (onToggle) {
      item.type = "button";
      item.title = `Switch filter ${index} of ${layerName} off or on`;
      item.setAttribute("aria-pressed", "false");
      item.addEventListener("click", () => onToggle(layerName, index));
    }
    grid.append(item);
  }
  return grid;
}

/** Redraw a bank built by filterBank with new values (the training view, as filters learn). */
export function redrawFilterBank(grid, bank, scale) {
  const [, channels, k] = bank.shape;
  const cell = filterCellPixels(filterDrawingSize(channels, k).width);
  grid.querySelectorAll("canvas.filter-canvas").forEach((canvas, index) => {
    drawFilter(canvas, bank.slice(index), scale, cell);
  });
}

/** Show which filters are switched off in a bank built with onToggle. */
export function markDisabled(grid, off) {
  grid.querySelectorAll(".filter").forEach((item, index) => {
    const isOff = off.has(index);
    item.classList.toggle("off", isOff);
    item.setAttribute("aria-pressed", String(isOff));
    item.querySelector(".filter-caption").textContent = isOff ? `${index} · off` : String(index);
  });
}

/** Screen pixels per filter weight: a one-channel 5x5 filter is 80 px wide, a wide one less. */
function filterCellPixels(nativeWidth) {
  return Math.max(4, Math.min(16, Math.floor(240 / nativeWidth)));
}
