// The network's answer (/api/analyse): the class it picks (and, for a test digit, its true
// class), one bar per class with its probability, and the 28x28 image it received, prepared
// from the drawing as predict_digit.py prepares a photo.

import { element } from "./element.js";
import { drawGrey } from "./maps.js";

export class AnswerView {
  /**
   * @param {object} parts  the page's elements: prediction (#prediction), bars (#bars),
   *   prepared (the canvas of the prepared image), message (#draw-message), trueClass
   *   (#true-class: "true: 5" beside the answer of a test digit)
   */
  constructor({ prediction, bars, prepared, message, trueClass }) {
    this.trueClass = trueClass;
    this.prediction = prediction;
    this.bars = bars;
    this.prepared = prepared;
    this.message = message;
  }

  /** One bar per class, each carrying data-class and data-probability (a test hook). */
  setClasses(classNames) {
    this.classNames = classNames;
    this.bars.replaceChildren(
      ...classNames.map((name, index) =>
        element(
          "div",
          { className: "bar", data: { class: index, probability: 0 } },
          element("span", { className: "bar-label" }, name),
          element(
            "span",
            { className: "bar-track" },
            element("span", { className: "bar-fill" }),
          ),
          element("span", { className: "bar-value" }),
        ),
      ),
    );
  }

  show(analysis) {
    this.message.textContent = "";
    this.prediction.textContent = analysis.label;
    this.prediction.dataset.class = String(analysis.prediction);
    this.showBars(analysis.probabilities.values, analysis.prediction);
    drawGrey(this.prepared, analysis.image);
    const known = analysis.true_class !== undefined;
    this.trueClass.hidden = !known;
    this.trueClass.textContent = known ? `true: ${this.classNames[analysis.true_class]}` : "";
    this.trueClass.dataset.class = known ? String(analysis.true_class) : "";
    this.trueClass.classList.toggle("wrong", known && analysis.true_class !== analysis.prediction);
  }

  /** No answer: a blank pad (message "") or a drawing the server could not read. */
  clear(message) {
    this.message.textContent = message;
    this.prediction.textContent = "";
    delete this.prediction.dataset.class;
    this.trueClass.hidden = true;
    this.showBars(null, -1);
    this.prepared.getContext("2d").clearRect(0, 0, this.prepared.width, this.prepared.height);
    this.prepared.dataset.sum = "0";
  }

  showBars(probabilities, winner) {
    this.bars.querySelectorAll(".bar").forEach((bar, index) => {
      const p = probabilities ? probabilities[index] : 0;
      const percent = `${(100 * p).toFixed(1)}%`;
      bar.dataset.probability = String(p);
      bar.classList.toggle("winner", index === winner);
      bar.querySelector(".bar-fill").style.width = percent;
      bar.querySelector(".bar-value").textContent = probabilities ? percent : "";
    });
  }
}
