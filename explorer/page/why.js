// Why this answer: the gradient of one class's score (its logit) with respect to the input
// image and to each stage's pooled maps (/api/gradient). A gradient says, pixel by pixel, how
// the score would change if that pixel (or activation) grew a little: the same numbers the
// backward pass uses to train the network, asked about one class instead of the loss.

import { element } from "./element.js";
import { drawMapGrid, layerBlocks, layerHeading, mapGrid } from "./layers.js";
import { drawGrey, drawMap, scaleLegend } from "./maps.js";

export class WhyView {
  /**
   * @param {HTMLElement} root  the section's body (#why)
   * @param {(classIndex: number) => void} onPick  a class button was pressed
   */
  constructor(root, onPick) {
    this.root = root;
    this.onPick = onPick;
    this.picker = root.querySelector("#why-classes");
    this.question = root.querySelector("#why-question");
    this.message = root.querySelector("#why-message");
    this.imageCanvas = root.querySelector("#why-image");
    this.gradientCanvas = root.querySelector("#why-gradient");
    this.inputLegend = root.querySelector("#why-input-legend");
    this.stages = root.querySelector("#why-stages");
  }

  /** One button per class, named as the model names its classes. */
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
    this.stages.replaceChildren();
    delete this.stages.dataset.shape; // a new model: the stage blocks are built again
  }

  /** The server's one line when it could not answer; the pictures stay as they were. */
  showError(text) {
    this.message.textContent = text;
  }

  clear() {
    this.question.textContent = "Draw a digit, or pick one from the test set, to ask.";
    this.root.classList.add("empty");
  }

  /** Draw /api/gradient's answer; `image` is the 28x28 image it is about. */
  show(gradient, image, predicted) {
    this.message.textContent = "";
    this.root.classList.remove("empty");
    const name = this.classNames[gradient.class];
    this.question.textContent =
      `What would make this a ${name}? Its score for ${name} (the logit) is ` +
      `${gradient.logit.toFixed(2)}` +
      (gradient.class === predicted ? ", the highest: it is the network's answer." : ".");
    this.picker.querySelectorAll(".why-class").forEach((button) => {
      const picked = Number(button.dataset.class) === gradient.class;
      button.classList.toggle("picked", picked);
      button.setAttribute("aria-pressed", String(picked));
    });

    drawGrey(this.imageCanvas, image, 168);
    const inputScale = gradient.input.maxAbs();
    drawMap(this.gradientCanvas, gradient.input, inputScale, 168);
    this.inputLegend.replaceChildren(
      scaleLegend(inputScale, "change of the score per unit of ink"),
    );

    // One block per stage's pooled maps.
    const blocks = layerBlocks(this.stages, gradient.pooled, (stage, maps) => [
      layerHeading(`d score / d ${stage}`, `${maps.shape[0]} maps`),
      element("div", { className: "legend-slot" }),
      mapGrid(`why-${stage}`, maps.shape[0]),
    ]);
    for (const [stage, block] of blocks) {
      const maps = gradient.pooled[stage];
      const scale = maps.maxAbs();
      block.querySelector(".legend-slot").replaceChildren(scaleLegend(scale, "this layer"));
      drawMapGrid(block.querySelector(".map-grid"), maps, scale);
    }
  }
}
