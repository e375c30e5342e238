// The arithmetic behind one pixel, as the server computed it (/api/arithmetic):
// a convolution pixel is the sum of a window of its input times the filter, channel by channel;
// a pooled pixel is the largest of a 2x2 window of the ReLU'd convolution.
//
// The panel opens right under the map clicked, and outlines the pixel there and the window of
// the layer before that it was computed from.

import { element } from "./element.js";
import { divergingCss, fixed, formatNumber, markPixels, textOnColour } from "./maps.js";

export class ArithmeticView {
  /**
   * @param {object} parts  the page's elements: panel (#arithmetic), body (where the numbers
   *   go), close (its close button), preparedFrame and prepared (the 28x28 image, the input of
   *   conv1, outlined too)
   * @param {LayersView} layers  the maps clicked, and outlined
   * @param {() => void} onClose  the panel was closed
   */
  constructor({ panel, body, close, preparedFrame, prepared }, layers, onClose) {
    this.panel = panel;
    this.body = body;
    this.preparedFrame = preparedFrame;
    this.prepared = prepared;
    this.layers = layers;
    close.addEventListener("click", onClose);
  }

  /** Open the panel right under a layer's block, for the pixel clicked in it. */
  openUnder(block) {
    block.after(this.panel);
    this.panel.hidden = false;
  }

  hide() {
    this.panel.hidden = true;
  }

  showError(text) {
    this.body.textContent = text;
  }

  /**
   * Show the server's answer for a pixel of kind "conv" or "pool".
   * @param mapValue  the pixel's value in the map the page shows (from /api/analyse)
   */
  show(kind, result, mapValue) {
    if (kind === "conv") this.showConv(result, mapValue);
    else this.showPool(result, mapValue);
  }

  showConv(result, mapValue) {
    const [channels, k] = result.window.shape;
    const source = result.input === "image" ? "the image (grey levels 0..1)" : result.input;
    const lead =
      `The filter's ${k}×${k} window over ${source}` +
      (channels > 1 ? `, for each of its ${channels} channels` : "") +
      ": each number of the window times the filter's number at the same place, then all " +
      "the products added up." +
      (result.padding
        ? ` The input has ${result.padding} pixel${result.padding === 1 ? "" : "s"} of zeros ` +
          "around it (padding): a window at the edge reads some of them (hatched)."
        : "");
    const windowScale = result.window.maxAbs();
    const filterScale = result.filter.maxAbs();
    const productScale = result.products.maxAbs();
    const rows = [];
    for (let c = 0; c < channels; c++) {
      const channelSum = result.channel_sums.values[c];
      rows.push(
        element(
          "div",
          { className: "arith-channel", data: { channel: c } },
          element("span", { className: "arith-label" }, channels > 1 ? `channel ${c}` : ""),
          numberTable(result.window.slice(c), windowScale, "window", result.padding_cells),
          element("span", { className: "operator" }, "×"),
          numberTable(result.filter.slice(c), filterScale, "filter"),
          element("span", { className: "operator" }, "="),
          numberTable(result.products.slice(c), productScale, "products"),
          element(
            "span",
            { className: "arith-channel-sum", data: { value: channelSum } },
            `sum ${formatNumber(channelSum)}`,
          ),
        ),
      );
    }
    const list = element("div", { className: "arith-channels" }, ...rows);
    if (channels > 6) list.classList.add("scroll"); // many channels scroll inside the panel
    const same = agree(result.sum, mapValue);
    this.body.replaceChildren(
      heading(result, "a window times a filter"),
      element("p", { className: "lead" }, lead),
      element(
        "p",
        { className: "legend-text" },
        "Colours: red positive, blue negative, white zero, on three scales: the windows share " +
          `one (±${formatNumber(windowScale)}), the filter another ` +
          `(±${formatNumber(filterScale)}), the products a third (±${formatNumber(productScale)}).`,
      ),
      list,
      element(
        "p",
        { className: "arith-total" },
        channels > 1 ? "Sum of all channels' products: " : "Sum of the products: ",
        numberSpan("arith-sum", result.sum),
        "   The map's pixel: ",
        numberSpan("arith-value", mapValue),
        element(
          "span",
          { className: same ? "agree" : "disagree" },
          same ? "  ✓ the same number" : "  ✗ they differ",
        ),
      ),
    );
  }

  /** A pooled pixel's 2x2 window and its winner, the window's first maximum. */
  showPool(result, mapValue) {
    const [winnerRow, winnerColumn] = result.winner;
    const size = result.window.shape[0];
    const table = numberTable(result.window, result.window.maxAbs(), result.source);
    table.classList.add("pool-window");
    const winnerCell = table.querySelector(
      `td[data-row="${winnerRow}"][data-column="${winnerColumn}"]`,
    );
    winnerCell.classList.add("winner");
    winnerCell.id = "arith-winner";
    this.body.replaceChildren(
      heading(result, "the largest of a window"),
      element(
        "p",
        { className: "lead" },
        `Its ${size}×${size} window of ${result.source} (conv${result.layer.slice(4)} after ` +
          `ReLU), rows ${result.top}–${result.top + size - 1}, columns ${result.left}–` +
          `${result.left + size - 1}. The largest number wins; when several are equal the ` +
          "first one, reading row by row, wins: it is the pixel the gradient flows back to in " +
          "training.",
      ),
      element(
        "div",
        { className: "arith-pool" },
        table,
        element(
          "p",
          { className: "arith-total" },
          `Winner: row ${winnerRow}, column ${winnerColumn} of the window, `,
          numberSpan("arith-max", result.window.at(winnerRow, winnerColumn)),
          "   The pooled map's pixel: ",
          numberSpan("arith-value", mapValue),
        ),
      ),
    );
  }

  /**
   * Outline the pixel clicked, and the window of the layer before that it was computed from;
   * `pixel` null: no outline. `model` gives each conv's kernel size and padding.
   */
  markPixel(pixel, model) {
    document.querySelectorAll(".mark").forEach((mark) => mark.remove());
    if (!pixel || !model) return;
    const clicked = this.layers.map(pixel.layer, pixel.channel);
    if (!clicked) return;
    const one = { top: pixel.row, left: pixel.column, width: 1, height: 1 };
    markPixels(clicked.frame, clicked.canvas, one, "mark-pixel");
    const number = Number(pixel.layer.slice(4));
    if (pixel.kind === "pool") {
      const source = this.layers.map(`conv${number}`, pixel.channel);
      const window = { top: 2 * pixel.row, left: 2 * pixel.column, width: 2, height: 2 };
      if (source) markPixels(source.frame, source.canvas, window, "mark-window");
      return;
    }
    const stage = model.stages[number - 1];
    const k = stage.kernel_size;
    const window = {
      top: pixel.row - stage.padding,
      left: pixel.column - stage.padding,
      width: k,
      height: k,
    };
    if (number === 1) {
      markPixels(this.preparedFrame, this.prepared, window, "mark-window");
      return;
    }
    for (let channel = 0; channel < stage.in_channels; channel++) {
      const source = this.layers.map(`pool${number - 1}`, channel);
      if (source) markPixels(source.frame, source.canvas, window, "mark-window");
    }
  }
}

/** A K x K Tensor as a table of numbers, each cell coloured on `scale`; `padding` (a K x K
 * uint8 Tensor, optional) marks the cells that read the zeros around the input (hatched). */
export function numberTable(values, scale, caption, padding = null) {
  const [rows, columns] = values.shape;
  const table = element("table", { className: "numbers" }, element("caption", {}, caption));
  for (let row = 0; row < rows; row++) {
    const tr = element("tr");
    for (let column = 0; column < columns; column++) {
      const value = values.at(row, column);
      const isPadding = padding !== null && padding.at(row, column) === 1;
      const td = element(
        "td",
        {
          title: isPadding ? "padding: a zero around the input" : String(value),
          className: isPadding ? "padding" : "",
          data: { row, column, value },
          style: { backgroundColor: divergingCss(value, scale), color: textOnColour(value, scale) },
        },
        fixed(value, 2),
      );
      tr.append(td);
    }
    table.append(tr);
  }
  return table;
}

/** Two sums agree when they differ only by float32 rounding (the server adds in another order). */
function agree(a, b) {
  return Math.abs(a - b) <= 1e-4 * Math.max(1, Math.abs(b));
}

function numberSpan(id, value) {
  return element("strong", { className: "number", id, data: { value } }, fixed(value, 4));
}

function heading(result, what) {
  const pixel = `pixel (row ${result.row}, column ${result.column})`;
  return element("h3", {}, `${result.layer}, map ${result.channel}, ${pixel}: ${what}`);
}
