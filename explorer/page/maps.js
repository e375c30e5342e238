// Drawing numbers as pictures: maps, filters and vectors on canvases, and their colour scales;
// and where on a canvas a pointer is, for the views that are clicked or drawn on.
//
// One convention everywhere on the page: red is positive, blue negative, white zero, and the
// strength of the colour is the size of the number relative to the scale, the largest absolute
// value of the layer (or bank, or gradient) shown. What comes out of a ReLU has no negatives:
// its scale runs from white (0) to red only, and its legend says so. Each canvas holds one
// pixel per number; CSS enlarges it with `image-rendering: pixelated`, so every number stays a
// sharp square.

import { element } from "./element.js";

/** [r, g, b] for `value` on a scale from -scale (blue) through 0 (white) to +scale (red). */
export function divergingColour(value, scale) {
  const t = scale > 0 ? Math.max(-1, Math.min(1, value / scale)) : 0;
  const fade = Math.round(255 * (1 - Math.abs(t))); // how much of the other two channels is left
  return t >= 0 ? [255, fade, fade] : [fade, fade, 255];
}

/** A CSS colour for a table cell or a chart, on the same scale. */
export function divergingCss(value, scale) {
  const [r, g, b] = divergingColour(value, scale);
  return `rgb(${r}, ${g}, ${b})`;
}

/**
 * Draw a (height, width) Tensor of numbers on `canvas`, one canvas pixel per number.
 * `cssWidth` is the size it is shown at (pixels on screen); the height follows.
 */
export function drawMap(canvas, map, scale, cssWidth) {
  const [height, width] = map.shape;
  setCanvas(canvas, divergingPixels(map.values, scale, width, height), cssWidth);
  canvas.dataset.maxAbs = String(map.maxAbs()); // a test hook: a switched-off map is all 0
}

/** Draw a (28, 28) uint8 Tensor as MNIST shows it: 0 black, 255 white. */
export function drawGrey(canvas, image, cssWidth) {
  setCanvas(canvas, greyPixels(image), cssWidth);
  // A test hook: the sum of the grey levels changes when the image does.
  canvas.dataset.sum = String(image.values.reduce((sum, level) => sum + level, 0));
}

/** The pixels of a uint8 (height, width) Tensor as grey levels; `inverted`: 255 - level. */
export function greyPixels(image, inverted = false) {
  const [height, width] = image.shape;
  const pixels = new ImageData(width, height);
  image.values.forEach((level, i) => {
    const grey = inverted ? 255 - level : level;
    pixels.data.set([grey, grey, grey, 255], 4 * i);
  });
  return pixels;
}

/** `width` x `height` pixels showing `values` in reading order on the diverging scale; any
 * pixels beyond the values (a short last row) stay white. */
function divergingPixels(values, scale, width, height) {
  const pixels = new ImageData(width, height);
  pixels.data.fill(255);
  values.forEach((value, i) => {
    const [r, g, b] = divergingColour(value, scale);
    pixels.data.set([r, g, b, 255], 4 * i);
  });
  return pixels;
}

// A filter's channels are drawn as tiles, at most this many in a row (then the next row).
export const FILTER_TILES_PER_ROW = 8;

/** The size in weights (with one pixel of paper between tiles) of a filter drawn as tiles. */
export function filterDrawingSize(channels, k) {
  const across = Math.min(channels, FILTER_TILES_PER_ROW);
  const down = Math.ceil(channels / FILTER_TILES_PER_ROW);
  return { width: across * (k + 1) - 1, height: down * (k + 1) - 1 };
}

/**
 * Draw a filter of shape (channels, K, K): one K x K tile per input channel, in reading order,
 * one pixel of paper between tiles. A first-layer filter is one tile; a later layer's filter
 * has one tile per map of the layer before.
 */
export function drawFilter(canvas, filter, scale, cellPixels) {
  const [channels, k] = filter.shape;
  const { width, height } = filterDrawingSize(channels, k);
  const pixels = new ImageData(width, height);
  pixels.data.fill(255); // the gaps stay white
  for (let c = 0; c < channels; c++) {
    const top = Math.floor(c / FILTER_TILES_PER_ROW) * (k + 1);
    const left = (c % FILTER_TILES_PER_ROW) * (k + 1);
    for (let row = 0; row < k; row++) {
      for (let column = 0; column < k; column++) {
        const [r, g, b] = divergingColour(filter.at(c, row, column), scale);
        pixels.data.set([r, g, b, 255], 4 * ((top + row) * width + left + column));
      }
    }
  }
  setCanvas(canvas, pixels, width * cellPixels);
}

/** Draw a vector of numbers as a grid of `columns` cells per row (the last row may be short). */
export function drawVector(canvas, vector, scale, columns, cellPixels) {
  const rows = Math.ceil(vector.values.length / columns);
  setCanvas(canvas, divergingPixels(vector.values, scale, columns, rows), columns * cellPixels);
}

function setCanvas(canvas, pixels, cssWidth) {
  if (canvas.width !== pixels.width || canvas.height !== pixels.height) {
    canvas.width = pixels.width;
    canvas.height = pixels.height;
  }
  canvas.getContext("2d").putImageData(pixels, 0, 0);
  // Only the width: CSS (height: auto) keeps the proportions, and max-width may shrink it.
  if (cssWidth) canvas.style.width = `${Math.round(cssWidth)}px`;
}

/**
 * The key to a colour scale, as one line a reader can check against the picture:
 * [gradient strip] "this layer: -3.2 (blue) .. 0 (white) .. +3.2 (red)", or, for what comes
 * out of a ReLU (`afterRelu`), "this layer: 0 (white) .. +3.2 (red)". `note` is added after
 * (e.g. that the scale is frozen).
 */
export function scaleLegend(scale, what = "this layer", afterRelu = false, note = "") {
  const steps = 64;
  const strip = element("canvas", { className: "legend-strip" });
  const low = afterRelu ? 0 : -1;
  const from = Array.from({ length: steps }, (_, i) => (low + ((1 - low) * i) / (steps - 1)) * scale);
  setCanvas(strip, divergingPixels(from, scale, steps, 1));
  const range = formatNumber(scale);
  let text = `${what}: all zero (white)`;
  if (scale > 0) {
    text = afterRelu
      ? `${what}: 0 (white) .. +${range} (red), nothing negative after ReLU`
      : `${what}: -${range} (blue) .. 0 (white) .. +${range} (red)`;
  }
  return element(
    "p",
    { className: "legend", data: { scale, afterRelu: afterRelu ? "true" : "false" } },
    strip,
    element("span", { className: "legend-text" }, text + note),
  );
}

/** `value` with `digits` decimals, never "-0.00": a tiny negative number shows as 0.00. */
export function fixed(value, digits) {
  const text = value.toFixed(digits);
  return Number(text) === 0 ? (0).toFixed(digits) : text;
}

/** Text colour for a number written on its colour (diverging scale): black or white,
 * whichever stands out more (WCAG contrast), so every number stays readable. */
export function textOnColour(value, scale) {
  const linear = (c) => ((c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
  const [r, g, b] = divergingColour(value, scale).map(linear);
  const luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  const onBlack = (luminance + 0.05) / 0.05;
  const onWhite = 1.05 / (luminance + 0.05);
  return onBlack >= onWhite ? "#000" : "#fff";
}

/** A number short enough for a label: 3 significant digits, no exponent for everyday sizes. */
export function formatNumber(value) {
  const size = Math.abs(value);
  if (size === 0) return "0";
  if (size >= 100) return value.toFixed(0);
  if (size >= 0.001) return String(Number(value.toPrecision(3)));
  return value.toExponential(1);
}

/** Where a pointer event fell on a canvas: [x, y] as fractions (0..1) of its shown size. */
export function pointerPosition(event, canvas) {
  // Measured inside the canvas's border (clientLeft/Top), over its shown content size.
  const box = canvas.getBoundingClientRect();
  return [
    (event.clientX - box.left - canvas.clientLeft) / canvas.clientWidth,
    (event.clientY - box.top - canvas.clientTop) / canvas.clientHeight,
  ];
}

/** Where on a map (row, column) a click fell, from the canvas's shown size. */
export function pixelAt(event, canvas) {
  const [x, y] = pointerPosition(event, canvas);
  const column = Math.floor(x * canvas.width);
  const row = Math.floor(y * canvas.height);
  return {
    row: Math.max(0, Math.min(canvas.height - 1, row)),
    column: Math.max(0, Math.min(canvas.width - 1, column)),
  };
}

/**
 * Outline a rectangle of a map's pixels (top, left, height, width, in the map's own pixels) on
 * the frame around its canvas, e.g. the pixel clicked or the window it came from.
 */
export function markPixels(frame, canvas, box, className) {
  const mark = element("div", {
    className: `mark ${className}`,
    style: {
      left: `${(100 * box.left) / canvas.width}%`,
      top: `${(100 * box.top) / canvas.height}%`,
      width: `${(100 * box.width) / canvas.width}%`,
      height: `${(100 * box.height) / canvas.height}%`,
    },
  });
  frame.append(mark);
  return mark;
}

/** How large to show each map of a layer: fewer maps get more room. */
export function mapDisplayWidth(count) {
  if (count <= 8) return 112;
  if (count <= 16) return 84;
  if (count <= 32) return 64;
  return 52;
}
