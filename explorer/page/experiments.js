// The experiments: filters switched off (clicked in the filters view) and part of the 28x28
// image covered (dragged across it here). This view states them in one line, offers to undo
// each, and draws the covered box over the prepared image; the page sends them with every
// request, and the server applies them to the analysis, the arithmetic and the gradients alike.

import { pixelAt } from "./maps.js";

const IMAGE_SIDE = 28;

export class ExperimentsView {
  /**
   * @param {object} parts  the page's elements: root (#experiments), text (its line), allOn
   *   (the "switch all filters on" button), uncover (the "uncover" button), prepared (the
   *   canvas of the prepared image, dragged across to cover), coverBox (drawn over it)
   * @param {object} actions
   * @param {() => boolean} actions.canCover  whether there is an image to cover
   * @param {(box: number[]) => void} actions.onCover  [top, left, bottom, right] was covered
   *   (bottom and right excluded)
   * @param {() => void} actions.onUncover  the cover was removed
   * @param {() => void} actions.onAllFiltersOn  every filter is to be switched on again
   */
  constructor({ root, text, allOn, uncover, prepared, coverBox }, actions) {
    this.root = root;
    this.text = text;
    this.allOn = allOn;
    this.uncover = uncover;
    this.prepared = prepared;
    this.coverBox = coverBox;
    const { canCover, onCover, onUncover, onAllFiltersOn } = actions;
    this.allOn.addEventListener("click", onAllFiltersOn);
    this.uncover.addEventListener("click", onUncover);
    this.letDragToCover(canCover, onCover);
  }

  /** Add a sentence to the line until the experiments change again (why a cover went). */
  note(text) {
    this.text.append(` ${text}`);
  }

  /** State the experiments: `disabled` {"conv1": [2, 5]}, `cover` a box or null. */
  show(disabled, cover) {
    const parts = [];
    for (const [layerName, list] of Object.entries(disabled)) {
      if (list.length)
        parts.push(`${layerName} filter${list.length > 1 ? "s" : ""} ${list.join(", ")} off`);
    }
    if (cover) {
      const [top, left, bottom, right] = cover;
      parts.push(`rows ${top}–${bottom - 1}, columns ${left}–${right - 1} covered`);
    }
    this.text.textContent = parts.length
      ? `Experiments: ${parts.join("; ")}.`
      : "No experiments: every filter on, nothing covered. Click a filter below to switch it " +
        "off; drag across the 28×28 image to cover part of it.";
    this.root.classList.toggle("active", parts.length > 0);
    this.allOn.disabled = !Object.values(disabled).some((list) => list.length);
    this.uncover.disabled = !cover;
    this.coverBox.hidden = !cover;
    if (cover) this.placeCoverBox(...cover);
  }

  placeCoverBox(top, left, bottom, right) {
    const style = this.coverBox.style;
    style.top = `${(100 * top) / IMAGE_SIDE}%`;
    style.left = `${(100 * left) / IMAGE_SIDE}%`;
    style.height = `${(100 * (bottom - top)) / IMAGE_SIDE}%`;
    style.width = `${(100 * (right - left)) / IMAGE_SIDE}%`;
  }

  /** Drag across the prepared image to cover a rectangle of it (in its 28x28 pixels). */
  letDragToCover(canCover, onCover) {
    const canvas = this.prepared;
    let start = null;
    const boxFrom = (a, b) => [
      Math.min(a.row, b.row),
      Math.min(a.column, b.column),
      Math.max(a.row, b.row) + 1,
      Math.max(a.column, b.column) + 1,
    ];
    canvas.addEventListener("pointerdown", (event) => {
      if (!canCover()) return;
      event.preventDefault();
      canvas.setPointerCapture(event.pointerId);
      start = pixelAt(event, canvas);
      this.coverBox.hidden = false;
      this.placeCoverBox(...boxFrom(start, start));
    });
    canvas.addEventListener("pointermove", (event) => {
      if (start) this.placeCoverBox(...boxFrom(start, pixelAt(event, canvas)));
    });
    const end = (event) => {
      if (!start) return;
      const box = boxFrom(start, pixelAt(event, canvas));
      start = null;
      onCover(box);
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
  }
}
