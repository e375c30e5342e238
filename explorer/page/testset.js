// The test set (/api/testset): how the model does on images it never trained on.
// The confusion matrix counts, for each true class (row), what the network answered (column);
// the most confident mistakes are the digits it got wrong while being surest of itself.
// Clicking a mistake (or a cell that has one) loads that digit into the explorer.

import { element } from "./element.js";
import { drawGrey } from "./maps.js";

export class TestSetView {
  /**
   * @param {HTMLElement} root  the section's body (#testset)
   * @param {(index: number, caption: string) => void} onLoad  load test digit `index`
   */
  constructor(root, onLoad) {
    this.root = root;
    this.onLoad = onLoad;
    this.summary = root.querySelector("#testset-summary");
    this.matrix = root.querySelector("#confusion");
    this.mistakes = root.querySelector("#mistakes");
  }

  /** No report (yet): a line instead of the matrix; `failed` says the server refused. */
  showMessage(text, failed = false) {
    this.root.classList.add("no-report");
    this.summary.classList.toggle("message", failed);
    this.summary.textContent = text;
    this.summary.dataset.count = "";
    this.matrix.replaceChildren();
    this.mistakes.replaceChildren();
  }

  show(report, classNames) {
    this.root.classList.remove("no-report");
    this.summary.classList.remove("message");
    const percent = (100 * report.accuracy).toFixed(2);
    const wrong = report.count - Math.round(report.accuracy * report.count);
    this.summary.textContent =
      `${percent}% right on the ${report.count.toLocaleString("en")} test images: ` +
      `${wrong.toLocaleString("en")} mistakes.`;
    this.summary.dataset.count = String(report.count);
    this.showMatrix(report, classNames);
    this.showMistakes(report.mistakes, classNames);
  }

  /** The matrix: one row per true class, one column per answer. A cell with images loads
   * the server's example for it (report.examples[true][predicted], its most confident one). */
  showMatrix(report, classNames) {
    const head = element(
      "tr",
      {},
      element("th", { className: "corner" }, "true ↓  answer →"),
      ...classNames.map((name) => element("th", { className: "column-name" }, name)),
    );
    const rows = [head];
    report.confusion.forEach((counts, trueClass) => {
      const total = counts.reduce((a, b) => a + b, 0) || 1;
      const tr = element("tr", {}, element("th", { className: "row-name" }, classNames[trueClass]));
      counts.forEach((count, predicted) => {
        const td = element(
          "td",
          { className: "count", data: { true: trueClass, predicted, count } },
          String(count),
        );
        const right = trueClass === predicted;
        // Share of the row: the diagonal in green (right), other cells in orange (mistakes).
        const share = count / total;
        const strength = right ? share : Math.min(1, Math.sqrt(share * 10));
        td.style.background = right
          ? `rgba(46, 139, 87, ${0.15 + 0.6 * strength})`
          : count
            ? `rgba(230, 126, 34, ${0.1 + 0.7 * strength})`
            : "";
        td.classList.toggle("zero", count === 0);
        const example = report.examples[trueClass][predicted]; // null: the cell is empty
        const what = outcome(classNames, trueClass, predicted);
        td.title = `${count} × ${what}`;
        if (example !== null) {
          td.classList.add("clickable");
          td.dataset.index = String(example);
          td.title += ": click to load one";
          td.addEventListener("click", () =>
            this.onLoad(example, `test digit #${example}: ${what}`),
          );
        }
        tr.append(td);
      });
      rows.push(tr);
    });
    this.matrix.replaceChildren(...rows);
  }

  showMistakes(mistakes, classNames) {
    this.mistakes.replaceChildren(
      ...mistakes.map((mistake) => {
        const canvas = element("canvas", { className: "thumbnail" });
        drawGrey(canvas, mistake.image, 56);
        const percent = Math.round(100 * mistake.probability);
        const caption = `${classNames[mistake.true]} → ${classNames[mistake.predicted]}`;
        const happened = outcome(classNames, mistake.true, mistake.predicted);
        const what = `test digit #${mistake.index}: ${happened}`;
        const button = element(
          "button",
          {
            className: "mistake",
            type: "button",
            title: `${what} with ${percent}%`,
            data: { index: mistake.index, true: mistake.true, predicted: mistake.predicted },
          },
          canvas,
          element("span", { className: "mistake-caption" }, caption),
          element("span", { className: "mistake-probability" }, `${percent}%`),
        );
        button.addEventListener("click", () => this.onLoad(mistake.index, what));
        return button;
      }),
    );
  }
}

/** "true 5, answered 3": what happened to a test image, in the model's class names. */
function outcome(classNames, trueClass, predicted) {
  return `true ${classNames[trueClass]}, answered ${classNames[predicted]}`;
}
