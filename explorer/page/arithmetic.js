// The arithmetic behind one pixel, as the server computed it (/api/arithmetic):
// a convolution pixel is the sum of a window of its input times the filter, channel by channel;
// a pooled pixel is the largest of a 2x2 window of the ReLU'd convolution.

import { divergingColour, element, formatNumber } from "./maps.js";

/** A K x K Tensor as a table of numbers, each cell coloured on the table's own scale. */
function numberTable(values, scale, caption) {
  const [rows, columns] = values.shape;
  const table = element("table", "numbers");
  if (caption) table.append(element("caption", "", caption));
  for (let row = 0; row < rows; row++) {
    const tr = element("tr");
    for (let column = 0; column < columns; column++) {
      const value = values.at(row, column);
      const td = element("td", "", value.toFixed(2));
      const [r, g, b] = divergingColour(value, scale);
      td.style.background = `rgb(${r}, ${g}, ${b})`;
      // Dark text on pale cells, white on strong ones: every number stays readable.
      if (scale > 0 && Math.abs(value) / scale > 0.6) td.classList.add("strong");
      td.title = String(value);
      td.dataset.row = String(row);
      td.dataset.column = String(column);
      td.dataset.value = String(value);
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
  const span = element("strong", "number", value.toFixed(4));
  span.id = id;
  span.dataset.value = String(value);
  return span;
}

function heading(result, what) {
  const pixel = `pixel (row ${result.row}, column ${result.column})`;
  return element("h3", "", `${result.layer}, map ${result.channel}, ${pixel}: ${what}`);
}

/**
 * Show a convolution pixel's arithmetic in `panel`.
 * @param result  /api/arithmetic's answer for a conv layer
 * @param mapValue  the pixel's value in the map the page shows (from /api/analyse)
 * @param experimentNote  a sentence when switched-off filters or a cover change the map, or ""
 */
export function showConvArithmetic(panel, result, mapValue, experimentNote) {
  const [channels, k] = result.window.shape;
  const source = result.input === "image" ? "the image (grey levels 0..1)" : result.input;
  const parts = [
    heading(result, "a window times a filter"),
    element(
      "p",
      "lead",
      `The filter's ${k}×${k} window over ${source}` +
        (channels > 1 ? `, for each of its ${channels} channels` : "") +
        ": each number of the window times the filter's number at the same place, then all " +
        "the products added up." +
        (result.padding
          ? ` The input has ${result.padding} pixels of zeros around it (padding): a window at ` +
            "the edge reads some of them."
          : ""),
    ),
    element(
      "p",
      "legend-text",
      "Colours: each table on its own scale; red positive, blue negative, white zero.",
    ),
  ];
  const windowScale = result.window.maxAbs();
  const filterScale = result.filter.maxAbs();
  const productScale = result.products.maxAbs();
  const list = element("div", "arith-channels");
  for (let c = 0; c < channels; c++) {
    const row = element("div", "arith-channel");
    row.dataset.channel = String(c);
    row.append(
      element("span", "arith-label", channels > 1 ? `channel ${c}` : ""),
      numberTable(result.window.slice(c), windowScale, "window"),
      element("span", "operator", "×"),
      numberTable(result.filter.slice(c), filterScale, "filter"),
      element("span", "operator", "="),
      numberTable(result.products.slice(c), productScale, "products"),
    );
    const channelSum = result.channel_sums.values[c];
    const sum = element("span", "arith-channel-sum", `sum ${formatNumber(channelSum)}`);
    sum.dataset.value = String(channelSum);
    row.append(sum);
    list.append(row);
  }
  if (channels > 6) list.classList.add("scroll"); // many channels scroll inside the panel
  parts.push(list);

  const total = element("p", "arith-total");
  total.append(
    channels > 1 ? "Sum of all channels' products: " : "Sum of the products: ",
    numberSpan("arith-sum", result.sum),
    "   The map's pixel: ",
    numberSpan("arith-value", mapValue),
    element(
      "span",
      agree(result.sum, mapValue) ? "agree" : "disagree",
      agree(result.sum, mapValue) ? "  ✓ the same number" : "  ✗ they differ",
    ),
  );
  parts.push(total);
  if (experimentNote && !agree(result.sum, mapValue)) {
    parts.push(element("p", "message", experimentNote));
  }
  panel.replaceChildren(...parts);
}

/** Show a pooled pixel's 2x2 window and its winner, the window's first maximum. */
export function showPoolArithmetic(panel, result, mapValue) {
  const [winnerRow, winnerColumn] = result.winner;
  const size = result.window.shape[0];
  const table = numberTable(result.window, result.window.maxAbs(), result.source);
  table.classList.add("pool-window");
  const winnerCell = table.querySelector(
    `td[data-row="${winnerRow}"][data-column="${winnerColumn}"]`,
  );
  winnerCell.classList.add("winner");
  winnerCell.id = "arith-winner";

  const explanation = element(
    "p",
    "lead",
    `Its ${size}×${size} window of ${result.source} (conv${result.layer.slice(4)} after ReLU), ` +
      `rows ${result.top}–${result.top + size - 1}, columns ${result.left}–` +
      `${result.left + size - 1}. The largest number wins; when several are equal the first ` +
      "one, reading row by row, wins: it is the pixel the gradient flows back to in training.",
  );
  const total = element("p", "arith-total");
  total.append(
    `Winner: row ${winnerRow}, column ${winnerColumn} of the window, `,
    numberSpan("arith-max", result.window.at(winnerRow, winnerColumn)),
    "   The pooled map's pixel: ",
    numberSpan("arith-value", mapValue),
  );
  const body = element("div", "arith-pool");
  body.append(table, total);
  panel.replaceChildren(heading(result, "the largest of a window"), explanation, body);
}
