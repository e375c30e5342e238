// The drawing pad: write a digit with a mouse, a pen or a finger.
//
// Strokes are kept as lists of points in pad units (0..1 across and down), not as pixels: Undo
// removes the last stroke and redraws the rest, and the same strokes can be drawn again at any
// size, on screen (sharp on high-density screens) and small, for the server (inkGrid).

import { greyPixels, pointerPosition } from "./maps.js";

// The brush, as a fraction of the pad's side. A digit written across most of the pad is scaled
// to 20 of MNIST's 28 pixels by the server; at this width its strokes come out about 2 pixels
// wide, like MNIST's pen strokes.
const BRUSH_WIDTH = 0.075;

export class DrawingPad {
  /**
   * @param {HTMLCanvasElement} canvas  the pad (CSS gives it its size; `touch-action: none`)
   * @param {HTMLElement} caption  the line under the pad that says what it shows
   * @param {(finished: boolean, started: boolean) => void} onChange  called when a stroke
   *   starts (false, true), while it grows (false, false) and when it ends, on Undo and on
   *   Clear (true, false)
   */
  constructor(canvas, caption, onChange) {
    this.canvas = canvas;
    this.caption = caption;
    this.onChange = onChange;
    this.strokes = []; // each an array of [x, y] in pad units
    this.current = null; // the stroke being drawn
    this.picture = null; // a test digit shown on the pad instead of strokes (a uint8 Tensor)
    // Pointer Events cover mouse, pen and touch with one set of handlers.
    canvas.addEventListener("pointerdown", (event) => this.start(event));
    canvas.addEventListener("pointermove", (event) => this.extend(event));
    canvas.addEventListener("pointerup", (event) => this.end(event));
    canvas.addEventListener("pointercancel", (event) => this.end(event));
    new ResizeObserver(() => this.render()).observe(canvas);
  }

  isBlank() {
    return this.strokes.length === 0 && this.current === null;
  }

  /** True while a stroke is being drawn (the pen is down). */
  isDrawing() {
    return this.current !== null;
  }

  point(event) {
    return pointerPosition(event, this.canvas);
  }

  start(event) {
    if (event.button !== 0) return; // the main button, a pen's tip or a finger
    event.preventDefault();
    // Capture: the stroke keeps following the pointer even when it leaves the pad.
    this.canvas.setPointerCapture(event.pointerId);
    this.picture = null; // drawing replaces a test digit shown on the pad
    this.current = [this.point(event)];
    this.strokes.push(this.current);
    this.render();
    this.onChange(false, true);
  }

  extend(event) {
    if (this.current === null) return;
    // A fast pen reports several positions per frame: take them all for a smooth line.
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    for (const each of events.length ? events : [event]) this.current.push(this.point(each));
    this.current = this.current.filter(
      (point, i, stroke) => i === 0 || point[0] !== stroke[i - 1][0] || point[1] !== stroke[i - 1][1],
    );
    this.strokes[this.strokes.length - 1] = this.current; // the same stroke, repeats dropped
    this.render();
    this.onChange(false);
  }

  end(event) {
    if (this.current === null) return;
    this.extend(event);
    this.current = null;
    this.onChange(true);
  }

  undo() {
    this.current = null;
    this.strokes.pop();
    this.render();
    this.onChange(true);
  }

  clear() {
    this.current = null;
    this.strokes = [];
    this.picture = null;
    this.render();
    this.onChange(true);
  }

  /** Show a test-set digit on the pad (dark on white, as if written), until the next stroke. */
  showPicture(image) {
    this.current = null;
    this.strokes = [];
    this.picture = image;
    this.render();
  }

  /** Say under the pad what is explored: `source` is {kind: "pad"} or {kind: "test", index,
   * caption}, a digit of the test set. */
  showSource(source) {
    const test = source.kind === "test";
    this.caption.textContent = test
      ? `Showing ${source.caption}. Draw on the pad to try your own.`
      : this.isBlank()
        ? "Draw a digit on the pad."
        : "Your drawing.";
    this.caption.dataset.testIndex = test ? String(source.index) : "";
    this.canvas.classList.toggle("showing-test", test);
  }

  /** Draw the strokes on a canvas context of `side` pixels: black ink on white paper. */
  paint(context, side) {
    context.fillStyle = "#fff";
    context.fillRect(0, 0, side, side);
    context.strokeStyle = "#000";
    context.fillStyle = "#000";
    context.lineWidth = BRUSH_WIDTH * side;
    context.lineCap = "round"; // round ends and joins: the strokes look like a pen's
    context.lineJoin = "round";
    for (const stroke of this.strokes) {
      if (stroke.length === 1) {
        // A tap is a dot (a line of no length would draw nothing).
        context.beginPath();
        context.arc(
          stroke[0][0] * side,
          stroke[0][1] * side,
          context.lineWidth / 2,
          0,
          2 * Math.PI,
        );
        context.fill();
        continue;
      }
      context.beginPath();
      context.moveTo(stroke[0][0] * side, stroke[0][1] * side);
      for (const [x, y] of stroke.slice(1)) context.lineTo(x * side, y * side);
      context.stroke();
    }
  }

  render() {
    // The canvas's own pixels match the screen's (devicePixelRatio), so strokes stay sharp.
    const side = Math.round(this.canvas.clientWidth * (window.devicePixelRatio || 1));
    if (side === 0) return;
    if (this.canvas.width !== side) {
      this.canvas.width = side;
      this.canvas.height = side;
    }
    const context = this.canvas.getContext("2d");
    if (this.picture) {
      this.paintPicture(context, side);
    } else {
      this.paint(context, side);
    }
    this.canvas.classList.toggle("blank", this.isBlank() && !this.picture);
  }

  paintPicture(context, side) {
    const [height, width] = this.picture.shape;
    const small = new OffscreenCanvas(width, height);
    // MNIST is light on dark; on the pad, ink is dark: the grey levels inverted.
    small.getContext("2d").putImageData(greyPixels(this.picture, true), 0, 0);
    context.imageSmoothingEnabled = true;
    context.drawImage(small, 0, 0, side, side);
  }

  /**
   * The drawing as the server wants it: {width, height, ink}, ink row by row, 0 paper .. 255
   * ink, as {shape, bytes} (base64 of one byte per pixel: the server reads it far faster than
   * a list of numbers). Drawn again at `side` x `side` pixels: small enough for a quick request
   * (the server prepares it like a photo, so the size barely matters), large enough to keep
   * the strokes' shape.
   */
  inkGrid(side = 112) {
    const small = new OffscreenCanvas(side, side);
    const context = small.getContext("2d");
    this.paint(context, side);
    const rgba = context.getImageData(0, 0, side, side).data;
    let binary = "";
    for (let i = 0; i < side * side; i++) binary += String.fromCharCode(255 - rgba[4 * i]);
    return { width: side, height: side, ink: { shape: [side, side], bytes: btoa(binary) } };
  }
}
