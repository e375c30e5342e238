// The test set (/api/testset): how the model does on images it never trained on.
// The confusion matrix counts, for each true class (row), what the network answered (column);
// the most confident mistakes are the digits it got wrong while being surest of itself.
// Clicking a mistake (or a cell that has one) loads that digit into the explorer.

import { drawGrey, element } from "./maps.js";

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

  /** Which test digit a cell loads: the server's example for the cell when it sends one
   * (report.examples[true][predicted]), otherwise the cell's most confident listed mistake. */
  cellExamples(report) {
    if (Array.isArray(report.examples)) return report.examples;
    const size = report.confusion.length;
    const examples = Array.from({ length: size }, () => new Array(size).fill(null));
    for (const mistake of report.mistakes) {
      examples[mistake.true][mistake.predicted] ??= mistake.index; // most confident first
    }
    return examples;
  }

  showMatrix(report, classNames) {
    const examples = this.cellExamples(report);
    const head = element("tr");
    head.append(element("th", "corner", "true ↓  answer →"));
    for (const name of classNames) head.append(element("th", "column-name", name));
    const rows = [head];
    report.confusion.forEach((counts, trueClass) => {
      const total = counts.reduce((a, b) => a + b, 0) || 1;
      const tr = element("tr");
      tr.append(element("th", "row-name", classNames[trueClass]));
      counts.forEach((count, predicted) => {
        const td = element("td", "count", String(count));
        td.dataset.true = String(trueClass);
        td.dataset.predicted = String(predicted);
        td.dataset.count = String(count);
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
        const example = examples[trueClass][predicted];
        const what = outcome(classNames, trueClass, predicted);
        td.title = `${count} × ${what}`;
        if (example !== null && example !== undefined && count > 0) {
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
        const button = element("button", "mistake");
        button.type = "button";
        button.dataset.index = String(mistake.index);
        button.dataset.true = String(mistake.true);
        button.dataset.predicted = String(mistake.predicted);
        const canvas = element("canvas", "thumbnail");
        drawGrey(canvas, mistake.image, 56);
        const percent = Math.round(100 * mistake.probability);
        const caption = `${classNames[mistake.true]} → ${classNames[mistake.predicted]}`;
        button.append(canvas, element("span", "mistake-caption", caption));
        button.append(element("span", "mistake-probability", `${percent}%`));
        const happened = outcome(classNames, mistake.true, mistake.predicted);
        const what = `test digit #${mistake.index}: ${happened}`;
        button.title = `${what} with ${percent}%`;
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
