// One training step, stage by stage (/api/training_step): the learner says what the image is,
// and the page follows the step a trainer would take on a small batch (this image and 7 test
// digits), from the forward pass and the loss back through the network to the filters'
// gradients and Adam's update. Each stage is revealed in turn ("Next stage"), in the order the
// backward pass computes them. Nothing is changed on the server.

import { element } from "./element.js";
import { filterBank } from "./filters.js";
import { drawMapGrid, layerBlocks, mapGrid } from "./layers.js";
import { divergingCss, drawVector, fixed, formatNumber, scaleLegend, textOnColour } from "./maps.js";

export class TrainingStepView {
  /**
   * @param {HTMLElement} root  the section's body (#step)
   * @param {(label: number) => void} onLabel  a class was picked as the image's label
   * @param {() => void} onGo  "Show the step" was pressed
   */
  constructor(root, onLabel, onGo) {
    this.root = root;
    this.onLabel = onLabel;
    this.labels = root.querySelector("#step-labels");
    this.message = root.querySelector("#step-message");
    this.parts = root.querySelector("#step-parts");
    this.nav = root.querySelector(".step-nav");
    root.querySelector("#step-go").addEventListener("click", onGo);
    root.querySelector("#step-next").addEventListener("click", () => this.reveal(1));
    root.querySelector("#step-all").addEventListener("click", () => this.reveal(Infinity));
  }

  setClasses(classNames) {
    this.classNames = classNames;
    this.labels.replaceChildren(
      ...classNames.map((name, index) => {
        const button = element(
          "button",
          { className: "step-label", type: "button", data: { class: index } },
          name,
        );
        button.addEventListener("click", () => this.onLabel(index));
        return button;
      }),
    );
    this.clear();
  }

  /** Mark the label picked (the true class of a test digit, or the answer, by default). */
  showLabel(label) {
    this.labels.querySelectorAll(".step-label").forEach((button) => {
      const picked = Number(button.dataset.class) === label;
      button.classList.toggle("picked", picked);
      button.setAttribute("aria-pressed", String(picked));
    });
  }

  clear() {
    this.parts.replaceChildren();
    this.nav.hidden = true;
    this.message.textContent = "";
  }

  showError(text) {
    this.message.textContent = text;
  }

  /** Reveal `count` more stages (Infinity: all). */
  reveal(count) {
    const hidden = [...this.parts.querySelectorAll(".step-part[hidden]")];
    hidden.slice(0, count).forEach((part) => {
      part.hidden = false;
    });
    this.nav.hidden = hidden.length <= count;
    this.root.dataset.shown = String(this.parts.querySelectorAll(".step-part:not([hidden])").length);
  }

  show(step) {
    this.message.textContent = "";
    const names = this.classNames;
    const label = step.labels[0];
    const predicted = step.predictions[0];
    const p = step.probabilities.values;
    const parts = [];
    const part = (title, ...children) =>
      parts.push(element("li", { className: "step-part", hidden: true }, element("h3", {}, title), ...children));

    part(
      "Forward: the image goes through every layer",
      element(
        "p",
        { className: "lead" },
        `The network answers ${names[predicted]} with ${(100 * p[predicted]).toFixed(1)}%; ` +
          `it gives the true class, ${names[label]}, ${(100 * p[label]).toFixed(1)}%.`,
      ),
      valueRow(p, names, (v) => `${(100 * v).toFixed(1)}%`, 1, "step-probabilities"),
    );
    const losses = step.losses.values;
    part(
      "The loss: how wrong it is",
      element(
        "p",
        { className: "lead" },
        `Cross-entropy: −log(probability of the true class). For this image −log(` +
          `${fixed(p[label], 4)}) = ${formatNumber(losses[0])}; the step uses the mean over ` +
          `the batch of ${step.count}: ${formatNumber(step.loss)}.`,
      ),
      element(
        "ul",
        { className: "contributions" },
        ...[...losses].map((loss, i) =>
          element(
            "li",
            {},
            `${i === 0 ? "this image" : `test digit #${i - 1}`}: true ${names[step.labels[i]]}, ` +
              `answered ${names[step.predictions[i]]}, loss ${formatNumber(loss)}`,
          ),
        ),
      ),
    );
    const dLogits = step.d_logits.values;
    part(
      "d loss / d logits: softmax minus the one-hot label",
      element(
        "p",
        { className: "lead" },
        `For each class, its probability minus 1 for the true class (0 for the others), over ` +
          `the batch size ${step.count}: negative for ${names[label]} (raise its score), ` +
          "positive for the others (lower theirs), most for the classes the network wrongly likes.",
      ),
      valueRow(dLogits, names, formatNumber, Math.max(...dLogits.map(Math.abs)), "step-d-logits", true),
    );
    const features = element("canvas", { className: "vector" });
    const featureScale = step.d_features.maxAbs();
    drawVector(features, step.d_features, featureScale, Math.min(32, step.d_features.shape[0]), 10);
    part(
      "d loss / d features: back through the dense head",
      element(
        "p",
        { className: "lead" },
        "Each feature's share of the blame: the dense layers' weights carry d logits back, and " +
          "a hidden unit's ReLU passes it only where the unit was positive.",
      ),
      scaleLegend(featureScale, "d loss / d feature"),
      features,
    );
    for (const stage of [...step.stages].reverse()) {
      const number = stage.name.slice(4);
      const holder = element("div");
      const blocks = layerBlocks(holder, { [`pool${number}`]: stage.d_pooled }, (name, maps) => [
        element("div", { className: "legend-slot" }),
        mapGrid(`step-${name}`, maps.shape[0]),
      ]);
      for (const [, block] of blocks) {
        const scale = stage.d_pooled.maxAbs();
        block.querySelector(".legend-slot").replaceChildren(scaleLegend(scale, `d loss / d pool${number}`));
        drawMapGrid(block.querySelector(".map-grid"), stage.d_pooled, scale);
      }
      part(
        `d loss / d pool${number}: this image's share, map by map`,
        element(
          "p",
          { className: "lead" },
          `Back through stage ${number}: ` +
            (Number(number) === step.stages.length
              ? "the features are these maps, flattened."
              : `each conv${Number(number) + 1} filter sends its map's gradient back over ` +
                `its window, through max-pooling (to the winners only) and ReLU.`),
        ),
        holder,
      );
    }
    const gradientBanks = step.stages.map((stage) => {
      const scale = stage.d_filters.maxAbs();
      return element(
        "div",
        { className: "layer" },
        element("h3", {}, `d loss / d ${stage.name} filters`),
        scaleLegend(scale, "this bank"),
        filterBank(`step-grad-${stage.name}`, stage.d_filters, scale),
      );
    });
    part(
      "The filters' gradients, for the whole batch",
      element(
        "p",
        { className: "lead" },
        "Each weight's gradient is a sum over every position of its map, and over the batch " +
          "(click a weight in “Why this answer” to see one such sum).",
      ),
      ...gradientBanks,
    );
    const updateBanks = step.stages.map((stage) => {
      const scale = stage.update.maxAbs();
      return element(
        "div",
        { className: "layer" },
        element("h3", {}, `${stage.name}: the change to each weight`),
        scaleLegend(scale, "this bank"),
        filterBank(`step-update-${stage.name}`, stage.update, scale),
      );
    });
    part(
      "Adam's update",
      element(
        "p",
        { className: "lead" },
        `Adam (step ${step.adam_step}, learning rate ${formatNumber(step.learning_rate)}) moves ` +
          "each weight against its gradient, scaled by the gradient's running size: " +
          (step.adam_step === 1
            ? "on its first step every weight moves by about the learning rate, whatever the " +
              "size of its gradient (red where the weight grows, blue where it shrinks)."
            : "weights whose gradients have been steady move most (red where the weight " +
              "grows, blue where it shrinks)."),
      ),
      ...updateBanks,
    );
    this.parts.replaceChildren(...parts);
    this.reveal(1);
  }
}

/** One cell per class: its name, and a value written on its colour. */
function valueRow(values, names, format, scale, id, signed = false) {
  return element(
    "div",
    { className: "logits", id },
    ...names.map((name, index) => {
      const value = values[index];
      const colour = signed ? divergingCss(value, scale) : divergingCss(value, 1);
      return element(
        "div",
        { className: "logit", data: { class: index } },
        element("span", { className: "logit-name" }, name),
        element(
          "span",
          {
            className: "logit-value",
            data: { value },
            style: { background: colour, color: textOnColour(value, signed ? scale : 1) },
          },
          format(value),
        ),
      );
    }),
  );
}
