// The filters: each convolution's learned weights (/api/model), one bank per layer, each filter
// a button that switches it off or on. The training view draws the same banks, as pictures
// only, while they learn.

import { element } from "./element.js";
import { layerHeading } from "./layers.js";
import {
  drawFilter,
  FILTER_TILES_PER_ROW,
  filterDrawingSize,
  pointerPosition,
  scaleLegend,
} from "./maps.js";

export class FiltersView {
  /**
   * @param {HTMLElement} container  where the banks go (#filters)
   * @param {(layerName: string, index: number) => void} onToggle  a filter was clicked
   */
  constructor(container, onToggle) {
    this.container = container;
    this.onToggle = onToggle;
  }

  /** One bank per convolution of the model (/api/model's stages and filters). */
  show(model) {
    this.container.replaceChildren(
      ...model.stages.map((stage) => {
        const bank = model.filters[stage.name];
        const channels =
          stage.in_channels === 1 ? "one channel" : `${stage.in_channels} channels side by side`;
        const k = stage.kernel_size;
        const grid = filterBank(stage.name, bank.values, bank.scale, this.onToggle);
        grid.dataset.layer = stage.name;
        return element(
          "section",
          { className: "layer", data: { layer: stage.name } },
          layerHeading(stage.name, `${stage.filters} filters · ${k}×${k}, ${channels}`),
          scaleLegend(bank.scale, "this bank"),
          grid,
        );
      }),
    );
  }

  /** Show which filters are switched off: `disabled` is e.g. {"conv1": [2, 5]}. */
  showDisabled(disabled) {
    for (const grid of this.container.querySelectorAll(".filter-grid")) {
      const off = new Set(disabled[grid.dataset.layer] || []);
      grid.querySelectorAll(".filter").forEach((item, index) => {
        const isOff = off.has(index);
        item.classList.toggle("off", isOff);
        item.setAttribute("aria-pressed", String(isOff));
        const caption = item.querySelector(".filter-caption");
        caption.textContent = isOff ? `${index} · off` : String(index);
      });
    }
  }
}

/**
 * A bank of filters (F, C, K, K) as buttons, one per filter, each drawn with its C channels
 * side by side. `onToggle(layer, index)` switches a filter off or on; without it (the training
 * view), the filters are pictures only.
 */
export function filterBank(layerName, bank, scale, onToggle) {
  const [count, channels, k] = bank.shape;
  const cell = filterCellPixels(filterDrawingSize(channels, k).width);
  const grid = element("div", { className: "filter-grid" });
  for (let index = 0; index < count; index++) {
    const canvas = element("canvas", { className: "filter-canvas" });
    drawFilter(canvas, bank.slice(index), scale, cell);
    const caption = element("span", { className: "filter-caption" }, String(index));
    const data = { layer: layerName, filter: index };
    const item = onToggle
      ? element(
          "button",
          {
            className: "filter",
            data,
            type: "button",
            title: `Switch filter ${index} of ${layerName} off or on`,
            "aria-pressed": "false",
          },
          canvas,
          caption,
        )
      : element("figure", { className: "filter", data }, canvas, caption);
    if (onToggle) item.addEventListener("click", () => onToggle(layerName, index));
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

/** Screen pixels per filter weight: a one-channel 5x5 filter is 80 px wide, a wide one less. */
function filterCellPixels(nativeWidth) {
  return Math.max(4, Math.min(16, Math.floor(240 / nativeWidth)));
}

/**
 * Which weight of a bank (F, C, K, K) drawn by filterBank a click fell on: {filter, channel,
 * row, column}, or null for a click beside the filters or on the paper between two tiles.
 */
export function weightAt(event, shape) {
  const canvas = event.target.closest("canvas.filter-canvas");
  const item = canvas && canvas.closest(".filter");
  if (!item) return null;
  const [, channels, k] = shape;
  const [x, y] = pointerPosition(event, canvas);
  const left = Math.floor(x * canvas.width);
  const top = Math.floor(y * canvas.height);
  const tileColumn = Math.floor(left / (k + 1));
  const tileRow = Math.floor(top / (k + 1));
  const row = top % (k + 1);
  const column = left % (k + 1);
  const channel = tileRow * FILTER_TILES_PER_ROW + tileColumn;
  if (row >= k || column >= k || channel >= channels || tileColumn >= FILTER_TILES_PER_ROW) {
    return null; // the paper between two tiles
  }
  return { filter: Number(item.dataset.filter), channel, row, column };
}
