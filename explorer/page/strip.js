// The answer strip: the network's answer kept in view (it sticks to the top of the window)
// while the learner is down among the layers and filters. For each class, its probability and
// its score (the logit); during an experiment, how far each probability moved since the
// experiment began.

import { element } from "./element.js";
import { formatNumber } from "./maps.js";

export class AnswerStrip {
  /**
   * @param {object} parts  the page's elements: prediction (#strip-prediction), cells
   *   (#strip-cells), note (#strip-note)
   */
  constructor({ prediction, cells, note }) {
    this.prediction = prediction;
    this.cells = cells;
    this.note = note;
  }

  setClasses(classNames) {
    this.cells.replaceChildren(
      ...classNames.map((name, index) =>
        element(
          "span",
          { className: "strip-cell", data: { class: index } },
          element("span", { className: "strip-name" }, name),
          element("span", { className: "strip-probability" }),
          element("span", { className: "strip-logit" }),
          element("span", { className: "strip-change" }),
        ),
      ),
    );
  }

  /**
   * Show an analysis; `baseline` is the analysis when the experiment began (null: no
   * experiment), each probability's change since then is shown under it.
   */
  show(analysis, baseline) {
    const probabilities = analysis.probabilities.values;
    const logits = analysis.layers.find((layer) => layer.name === "logits").values.values;
    this.prediction.textContent = analysis.label;
    this.cells.querySelectorAll(".strip-cell").forEach((cell, index) => {
      cell.classList.toggle("winner", index === analysis.prediction);
      cell.querySelector(".strip-probability").textContent = `${Math.round(100 * probabilities[index])}%`;
      cell.querySelector(".strip-logit").textContent = formatNumber(logits[index]);
      const change = cell.querySelector(".strip-change");
      if (baseline) {
        const points = 100 * (probabilities[index] - baseline.probabilities.values[index]);
        const rounded = Math.round(points);
        change.textContent = rounded === 0 ? "±0" : `${rounded > 0 ? "+" : "−"}${Math.abs(rounded)}`;
        change.dataset.value = String(points);
        change.classList.toggle("up", rounded > 0);
        change.classList.toggle("down", rounded < 0);
      } else {
        change.textContent = "";
        delete change.dataset.value;
      }
    });
    this.note.textContent = baseline
      ? `probability %, score, and change in points since the experiment began (it answered ${baseline.label})`
      : "probability %, and the score (logit) under it";
    this.prediction.parentElement.parentElement.hidden = false;
  }

  clear() {
    this.prediction.parentElement.parentElement.hidden = true;
  }
}
