// Why this answer: the gradient of one class's score (its logit; or, "rather than" another
// class, the difference of the two logits) with respect to the input image, to each stage's
// pooled maps and to every filter weight (/api/gradient). A gradient says, pixel by pixel, how
// the score would change if that pixel (or activation, or weight) grew a little: the same
// numbers the backward pass uses to train the network, asked about one class instead of the
// loss. Clicking a pooled pixel shows where max-pooling sends its gradient; clicking a filter
// weight opens its gradient as a sum over positions (weight.js).

import { element } from "./element.js";
import { filterBank, redrawFilterBank, weightAt } from "./filters.js";
import { drawMapGrid, layerBlocks, layerHeading, mapGrid } from "./layers.js";
import { drawGrey, drawMap, fixed, formatNumber, pixelAt, scaleLegend } from "./maps.js";

export class WhyView {
  /**
   * @param {HTMLElement} root  the section's body (#why)
   * @param {object} actions
   * @param {(classIndex: number) => void} actions.onPick  a class button was pressed
   * @param {(versus: number|null) => void} actions.onVersus  "rather than" was chosen
   * @param {(pixel: object) => void} actions.onPooledPixel  a pixel of a d score / d pool map
   *   was clicked: {layer, channel, row, column}
   * @param {(weight: object) => void} actions.onWeight  a filter weight was clicked:
   *   {layer, filter, channel, row, column}
   */
  constructor(root, { onPick, onVersus, onPooledPixel, onWeight }) {
    this.root = root;
    this.onPick = onPick;
    this.onPooledPixel = onPooledPixel;
    this.onWeight = onWeight;
    this.picker = root.querySelector("#why-classes");
    this.versus = root.querySelector("#why-versus");
    this.question = root.querySelector("#why-question");
    this.message = root.querySelector("#why-message");
    this.imageCanvas = root.querySelector("#why-image");
    this.gradientCanvas = root.querySelector("#why-gradient");
    this.timesInputCanvas = root.querySelector("#why-times-input");
    this.inputLegend = root.querySelector("#why-input-legend");
    this.stages = root.querySelector("#why-stages");
    this.filters = root.querySelector("#why-filters");
    this.routing = root.querySelector("#routing");
    this.routingBody = root.querySelector("#routing-body");
    root.querySelector("#routing-close").addEventListener("click", () => this.hideRouting());
    this.versus.addEventListener("change", () =>
      onVersus(this.versus.value === "" ? null : Number(this.versus.value)),
    );
    this.gradient = null;
  }

  /** One button per class, named as the model names its classes, and the "rather than" list. */
  setClasses(classNames) {
    this.classNames = classNames;
    this.picker.replaceChildren(
      ...classNames.map((name, index) => {
        const button = element(
          "button",
          { className: "why-class", type: "button", data: { class: index } },
          name,
        );
        button.addEventListener("click", () => this.onPick(index));
        return button;
      }),
    );
    this.versus.replaceChildren(
      element("option", { value: "" }, "(no other class)"),
      ...classNames.map((name, index) => element("option", { value: String(index) }, name)),
    );
    for (const container of [this.stages, this.filters]) {
      container.replaceChildren();
      delete container.dataset.shape; // a new model: the blocks are built again
    }
    this.hideRouting();
  }

  /** The server's one line when it could not answer; the pictures stay as they were. */
  showError(text) {
    this.message.textContent = text;
  }

  clear() {
    this.question.textContent = "Draw a digit, or pick one from the test set, to ask.";
    this.root.classList.add("empty");
    this.gradient = null;
    this.hideRouting();
  }

  hideRouting() {
    this.routing.hidden = true;
  }

  /** Draw /api/gradient's answer; `image` is the 28x28 image it is about. */
  show(gradient, image, predicted) {
    this.gradient = gradient;
    this.message.textContent = "";
    this.root.classList.remove("empty");
    const name = this.classNames[gradient.class];
    if (gradient.versus === null || gradient.versus === undefined) {
      this.question.textContent =
        `What would make this a ${name}? Its score for ${name} (the logit) is ` +
        `${fixed(gradient.logit, 2)}` +
        (gradient.class === predicted ? ", the highest: it is the network's answer." : ".");
    } else {
      const other = this.classNames[gradient.versus];
      this.question.textContent =
        `What makes this a ${name} rather than a ${other}? The score is the logit of ${name} ` +
        `minus the logit of ${other}: ${fixed(gradient.score, 2)}` +
        (gradient.score > 0 ? ` (the network prefers ${name}).` : ` (it prefers ${other}).`);
    }
    this.picker.querySelectorAll(".why-class").forEach((button) => {
      const picked = Number(button.dataset.class) === gradient.class;
      button.classList.toggle("picked", picked);
      button.setAttribute("aria-pressed", String(picked));
    });
    this.versus.value = gradient.versus === null ? "" : String(gradient.versus);

    drawGrey(this.imageCanvas, image, 168);
    const inputScale = gradient.input.maxAbs();
    drawMap(this.gradientCanvas, gradient.input, inputScale, 168);
    drawMap(this.timesInputCanvas, gradient.gradient_x_input, inputScale, 168);
    this.inputLegend.replaceChildren(
      scaleLegend(inputScale, "change of the score per unit of ink (both pictures)"),
    );

    // One block per stage's pooled maps; a click shows where a pixel's gradient goes.
    const blocks = layerBlocks(this.stages, gradient.pooled, (stage, maps) => {
      const grid = mapGrid(`why-${stage}`, maps.shape[0]);
      grid.addEventListener("click", (event) => this.clickedPooled(event, stage));
      return [
        layerHeading(`d score / d ${stage}`, `${maps.shape[0]} maps`),
        element("div", { className: "legend-slot" }),
        grid,
      ];
    });
    for (const [stage, block] of blocks) {
      const maps = gradient.pooled[stage];
      const scale = maps.maxAbs();
      block.querySelector(".legend-slot").replaceChildren(scaleLegend(scale, "this layer"));
      drawMapGrid(block.querySelector(".map-grid"), maps, scale);
    }

    // The filters' gradients, one bank per convolution; a click opens one weight's sum.
    const banks = layerBlocks(this.filters, gradient.filters, (layer, bank) => {
      const grid = filterBank(`why-${layer}`, bank, bank.maxAbs());
      grid.addEventListener("click", (event) => this.clickedWeight(event, layer, bank));
      return [
        layerHeading(`d score / d ${layer} filters`, `${bank.shape[0]} filters`),
        element("div", { className: "legend-slot" }),
        grid,
      ];
    });
    for (const [layer, block] of banks) {
      const bank = gradient.filters[layer];
      const scale = bank.maxAbs();
      block.querySelector(".legend-slot").replaceChildren(scaleLegend(scale, "this bank"));
      redrawFilterBank(block.querySelector(".filter-grid"), bank, scale);
    }
  }

  clickedPooled(event, stage) {
    const canvas = event.target.closest("canvas.map");
    if (!canvas) return;
    const { row, column } = pixelAt(event, canvas);
    this.onPooledPixel({ layer: stage, channel: Number(canvas.dataset.channel), row, column });
  }

  clickedWeight(event, layer, bank) {
    const weight = weightAt(event, bank.shape);
    if (weight) this.onWeight({ layer, ...weight });
  }

  /** Where the gradient of one pooled pixel goes: /api/arithmetic's window of the pixel. */
  showRouting(pixel, window) {
    const gradient = this.gradient.pooled[pixel.layer].at(pixel.channel, pixel.row, pixel.column);
    const [winnerRow, winnerColumn] = window.winner;
    const winnerValue = window.window.at(winnerRow, winnerColumn);
    const number = pixel.layer.slice(4);
    const table = element("table", { className: "numbers pool-window routing-table" });
    table.append(element("caption", {}, `the gradient each pixel of the window gets`));
    for (let r = 0; r < 2; r++) {
      const tr = element("tr");
      for (let c = 0; c < 2; c++) {
        const won = r === winnerRow && c === winnerColumn;
        tr.append(
          element(
            "td",
            { className: won ? "winner" : "", data: { row: r, column: c, value: won ? gradient : 0 } },
            won ? formatNumber(gradient) : "0",
          ),
        );
      }
      table.append(tr);
    }
    const relu =
      winnerValue > 0
        ? `Its value, ${formatNumber(winnerValue)}, is positive: ReLU passed it, so its ` +
          `derivative is 1 and conv${number}'s pixel there gets the gradient unchanged.`
        : `Its value is 0: conv${number} was negative or zero there and ReLU cut it, so ` +
          "ReLU's derivative is 0: the gradient stops here, and nothing before it learns " +
          "from this pixel.";
    this.routingBody.replaceChildren(
      element(
        "h3",
        {},
        `${pixel.layer}, map ${pixel.channel}, pixel (row ${pixel.row}, column ${pixel.column}): ` +
          `d score = ${formatNumber(gradient)}`,
      ),
      element(
        "p",
        { className: "lead" },
        `Max-pooling kept the largest of its 2×2 window of conv${number} after ReLU (rows ` +
          `${window.top}–${window.top + 1}, columns ${window.left}–${window.left + 1}): the ` +
          `pixel at row ${winnerRow}, column ${winnerColumn} of the window (the first maximum, ` +
          "reading row by row, when several are equal). Only that pixel changed the output, so " +
          "the backward pass sends it the whole gradient and the other three get 0: nudging " +
          "them would not change the maximum.",
      ),
      element("div", { className: "arith-pool" }, table, element("p", { className: "lead" }, relu)),
    );
    this.routing.hidden = false;
    this.routing.dataset.winner = `${winnerRow},${winnerColumn}`;
  }
}
