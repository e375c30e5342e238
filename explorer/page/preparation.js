// How the drawing became the 28x28 image the network receives (/api/preparation): each step of
// predict_digit.py's preparation, named, with its picture. Asked for only while the learner has
// "Step by step" open: the drawing's own answer does not wait for it.

import { element } from "./element.js";
import { greyPixels } from "./maps.js";

const STEP_BOX_PX = 88; // each step's picture fits a box this size on screen

export class PreparationView {
  /**
   * @param {HTMLDetailsElement} root  #preparation: its <summary>, then the steps
   * @param {() => void} onOpen  the learner opened it: ask for the steps
   */
  constructor(root, onOpen) {
    this.root = root;
    this.steps = root.querySelector(".preparation-steps");
    this.note = root.querySelector(".preparation-note");
    root.addEventListener("toggle", () => {
      if (root.open) onOpen();
    });
  }

  isOpen() {
    return this.root.open;
  }

  /** Each step: its picture (bright ink on black, as the network sees it) and its name. */
  show(reply) {
    this.note.textContent = "";
    this.steps.replaceChildren(
      ...reply.steps.map((step, index) => {
        const [height, width] = step.image.shape;
        const scale = STEP_BOX_PX / Math.max(height, width); // its proportions kept
        const canvas = element("canvas", {
          width,
          height,
          className: "preparation-image",
          style: { width: `${scale * width}px`, height: `${scale * height}px` },
        });
        canvas.getContext("2d").putImageData(greyPixels(step.image), 0, 0);
        canvas.dataset.sum = String(step.image.values.reduce((sum, level) => sum + level, 0));
        return element(
          "figure",
          { className: "preparation-step", data: { step: index } },
          canvas,
          element("figcaption", {}, `${index + 1}. ${step.name}`),
        );
      }),
    );
  }

  /** Nothing to show: no drawing, or a test digit (MNIST prepared it), or the server's words. */
  clear(note = "") {
    this.steps.replaceChildren();
    this.note.textContent = note;
  }
}
