// One filter weight's gradient, computed where a reader can follow it (/api/weight_gradient):
//
//   d score / d W[f, c, i, j] = sum over every position (y, x) of the map of
//                               input[c, y + i, x + j]  x  d score / d conv[f, y, x]
//
// the input the weight multiplies at that position (the padded image, or the pooled maps of
// the stage before), times the upstream gradient there (the pooled gradient routed back
// through max-pooling and ReLU). The panel shows both maps, their product, the sum, and the
// number SimpleCNN's own backward pass computes for the same weight: they are equal.

import { element } from "./element.js";
import { drawMap, fixed, formatNumber, markPixels } from "./maps.js";

const SHOWN_CONTRIBUTIONS = 3;

export class WeightGradientView {
  /**
   * @param {object} parts  the page's elements: panel (#weight-gradient), body (its content),
   *   close (its close button)
   * @param {() => void} onClose  the panel was closed
   */
  constructor({ panel, body, close }, onClose) {
    this.panel = panel;
    this.body = body;
    close.addEventListener("click", onClose);
  }

  hide() {
    this.panel.hidden = true;
  }

  showError(text) {
    this.panel.hidden = false;
    this.body.textContent = text;
  }

  /** Show /api/weight_gradient's answer; `className` names the class (and `versusName` the
   * class it is compared with, or null). */
  show(result, className, versusName) {
    const { layer, filter, channel, row, column } = result;
    const [height, width] = result.products.shape;
    const score = versusName ? `logit ${className} − logit ${versusName}` : `logit ${className}`;
    const source =
      result.input === "image" ? "the image (0..1)" : `map ${channel} of ${result.input}`;
    const scale = Math.max(result.products.maxAbs(), 1e-12);
    const figure = (values, what, id, valuesScale) => {
      const canvas = element("canvas", { className: "map", id });
      drawMap(canvas, values, valuesScale, Math.max(112, Math.min(196, 7 * width)));
      return element(
        "figure",
        { className: "map-figure" },
        element("div", { className: "frame" }, canvas),
        element("figcaption", {}, what),
      );
    };
    const inputs = figure(
      result.inputs,
      `what the weight multiplies at each position: ${source}, shifted by (${row}, ${column})` +
        (result.padding ? ", zeros from the padding at the edges" : ""),
      "weight-inputs",
      result.inputs.maxAbs(),
    );
    const upstream = figure(
      result.upstream,
      `× d score / d ${layer}, map ${filter}: the upstream gradient (0 where ReLU or the ` +
        "pooling stopped it)",
      "weight-upstream",
      result.upstream.maxAbs(),
    );
    const products = figure(result.products, "= their products, position by position", "weight-products", scale);
    // The positions that contribute most, marked on the products and listed.
    const order = [...result.products.values.keys()].sort(
      (a, b) => Math.abs(result.products.values[b]) - Math.abs(result.products.values[a]),
    );
    const top = order.slice(0, SHOWN_CONTRIBUTIONS).filter((i) => result.products.values[i] !== 0);
    const productsCanvas = products.querySelector("canvas");
    const inputsCanvas = inputs.querySelector("canvas");
    for (const index of top) {
      const box = { top: Math.floor(index / width), left: index % width, width: 1, height: 1 };
      markPixels(productsCanvas.parentElement, productsCanvas, box, "mark-window");
      markPixels(inputsCanvas.parentElement, inputsCanvas, box, "mark-window");
    }
    const lines = top.map((index) => {
      const y = Math.floor(index / width);
      const x = index % width;
      return element(
        "li",
        {},
        `at (${y}, ${x}): ${formatNumber(result.inputs.values[index])} × ` +
          `${formatNumber(result.upstream.values[index])} = ${formatNumber(result.products.values[index])}`,
      );
    });
    const same = Math.abs(result.sum - result.network_value) <= 1e-4 * Math.max(1e-6, Math.abs(result.network_value)) + 1e-9;
    this.body.replaceChildren(
      element(
        "h3",
        {},
        `${layer}, filter ${filter}, channel ${channel}, weight (row ${row}, column ${column}) ` +
          `= ${fixed(result.weight, 4)}: its gradient`,
      ),
      element(
        "p",
        { className: "lead" },
        `The weight is used at every one of the ${height}×${width} positions of the filter's ` +
          `map, so its gradient is a sum over them: how much ${score} would change per unit ` +
          "of this weight. Training moves the weight against this number (for the loss).",
      ),
      element("div", { className: "weight-maps" }, inputs, upstream, products),
      element("p", { className: "caption" }, "The largest contributions (marked):"),
      element("ul", { className: "contributions" }, ...lines),
      element(
        "p",
        { className: "arith-total" },
        "Sum over every position: ",
        element("strong", { className: "number", id: "weight-sum", data: { value: result.sum } }, formatNumber(result.sum)),
        "   SimpleCNN's backward pass: ",
        element(
          "strong",
          { className: "number", id: "weight-network", data: { value: result.network_value } },
          formatNumber(result.network_value),
        ),
        element("span", { className: same ? "agree" : "disagree" }, same ? "  ✓ the same number" : "  ✗ they differ"),
      ),
    );
    this.panel.hidden = false;
  }
}
