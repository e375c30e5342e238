// The model explored (/api/model): the line at the top that names it, the architecture at the
// bottom, and, when the server has none, why and the command that trains one.

export class ModelView {
  /**
   * @param {object} parts  the page's elements: line (#model-line), summary (#model-summary),
   *   drawHeading (#draw-heading), explorer (#explorer, the views of a model), noModel
   *   (#no-model), error (#model-error), advice (#train-advice), command (#train-command),
   *   serverMessage (#server-message), notice (#model-notice: the model changed), noticeText,
   *   restore (its "Restore the original" button)
   */
  constructor(parts) {
    this.parts = parts;
    this.generation = 0; // models shown so far: a test hook (#model-line[data-generation])
  }

  /** Show /api/model's answer: a model ({ok: true, ...}) or why there is none; `canRestore`:
   * this page may bring the original back (when another model is explored). */
  show(model, canRestore) {
    const { line, summary, drawHeading, explorer, noModel, error, advice, command } = this.parts;
    this.generation += 1;
    line.dataset.generation = String(this.generation);
    const another = model.path !== model.original_path;
    this.parts.restore.hidden = !(another && canRestore);
    noModel.hidden = model.ok;
    explorer.hidden = !model.ok;
    if (!model.ok) {
      line.textContent = `No model loaded from ${model.path}.`;
      error.textContent = model.error;
      // No command where a model cannot be saved at that path: the error then says why.
      advice.hidden = !model.train_command;
      command.textContent = model.train_command || "";
      return;
    }
    line.textContent = describeModel(model);
    const fashion = model.dataset === "fashion";
    drawHeading.textContent = fashion ? "Draw a piece of clothing" : "Draw a digit";
    const head = [
      ...model.hidden.map((units) => `Dense(${units}, relu)`),
      `Dense(${model.class_names.length})`,
    ];
    summary.textContent = `${model.summary}\nhead           ${head.join(" -> ")} -> softmax`;
  }

  /** Say at the top that the model explored changed, and why (a run ended, perhaps started
   * from another page; the original was restored). */
  showNotice(text) {
    this.parts.noticeText.textContent = text;
    this.parts.notice.hidden = false;
  }

  /** Why /api/model could not be read (e.g. the server does not answer); "" hides it. */
  showServerMessage(text) {
    this.parts.serverMessage.textContent = text;
    this.parts.serverMessage.hidden = !text;
  }
}

/** The model in one line: its file, dataset, filters, dense layers, training and accuracy. */
function describeModel(model) {
  const history = model.history || [];
  const last = history[history.length - 1];
  const dataset = model.dataset === "fashion" ? "Fashion-MNIST clothes" : "MNIST digits";
  const filters = model.stages.map((s) => `${s.filters}`).join(", ");
  const hidden = model.hidden.length ? `, dense ${model.hidden.join(", ")}` : "";
  const trained = history.length
    ? ` · trained ${history.length} epoch${history.length > 1 ? "s" : ""}`
    : "";
  const accuracy =
    last && last.val_accuracy !== undefined
      ? `, validation accuracy ${(100 * last.val_accuracy).toFixed(1)}%`
      : "";
  const run = model.path !== model.original_path ? " (trained here; the original is kept)" : "";
  return `${model.path}${run} · ${dataset} · conv filters ${filters}${hidden}${trained}${accuracy}`;
}
