// When the page asks the server: the analysis of the image, then its follow-ups.
//
// Why a scheduler: while a stroke is drawn the pad changes at every move of the pen, far more
// often than the server answers, and only the answer for the latest drawing matters. So:
// - Requests are coalesced. Asking marks a request as wanted; asking again before it leaves
//   changes nothing, and what leaves is the page's state at that moment: a slow server is sent
//   the newest drawing, never a queue of old ones.
// - One request at a time: answers come back in the order asked, so an old answer never
//   replaces a newer one on screen.
// - The analysis first: the follow-ups (a class's gradient, a pixel's arithmetic) are about the
//   image it returns, and they wait until the pen lifts.
// - At most one analysis every MIN_ANALYSIS_INTERVAL_MS; a stroke asks more often than that.
//
// body[data-busy] is "true" while a request is wanted, waiting or on its way: a test hook, and
// the page's way of saying it has not caught up yet.

const MIN_ANALYSIS_INTERVAL_MS = 100;

export class Scheduler {
  /**
   * @param {object} options
   * @param {() => Promise<void>} options.analysis  sends the analysis and shows its answer
   * @param {Object<string, () => Promise<void>>} options.followUps  the same for each
   *   follow-up, by name, in the order they are sent when several are wanted
   * @param {() => boolean} options.penDown  true while a stroke is being drawn
   */
  constructor({ analysis, followUps, penDown }) {
    this.send = { analysis, ...followUps };
    this.followUps = Object.keys(followUps);
    this.penDown = penDown;
    this.wanted = new Set(); // names of the requests to send
    this.sending = false; // a request is on its way
    this.timer = null; // the analysis waits for its interval to pass
    this.lastAnalysis = 0; // performance.now() when the last analysis left
  }

  /** Want these requests ("analysis" or a follow-up's name); each leaves once, when its turn
   * comes, with the page's state as it is then. */
  ask(names) {
    for (const name of names) this.wanted.add(name);
    this.sendNext();
  }

  /** No longer want these requests (there is no image to ask about). */
  forget(names) {
    for (const name of names) this.wanted.delete(name);
  }

  nextRequest() {
    if (this.wanted.has("analysis")) return "analysis";
    if (this.penDown()) return null;
    return this.followUps.find((name) => this.wanted.has(name)) ?? null;
  }

  async sendNext() {
    if (this.sending || this.timer !== null) return; // it runs again when they end
    const name = this.nextRequest();
    this.showBusy();
    if (name === null) return;
    if (name === "analysis") {
      const wait = this.lastAnalysis + MIN_ANALYSIS_INTERVAL_MS - performance.now();
      if (wait > 0) {
        this.timer = setTimeout(() => {
          this.timer = null;
          this.sendNext();
        }, wait);
        return;
      }
      this.lastAnalysis = performance.now();
    }
    this.wanted.delete(name);
    this.sending = true;
    try {
      await this.send[name]();
    } finally {
      this.sending = false;
      this.sendNext();
    }
  }

  showBusy() {
    const busy = this.sending || this.timer !== null || this.wanted.size > 0;
    document.body.dataset.busy = String(busy);
  }
}
