// Talking to the explorer's server (explore.py; explorer/api.py lists what it answers): JSON
// requests, and the arrays in the answers.
//
// The server sends every array as {"shape": [...], "data": base64} (float32) or
// {"shape": [...], "bytes": base64} (uint8), little-endian, row-major (explorer/json_arrays.py):
// far smaller and faster than nested JSON lists. decodeArrays() turns each into a Tensor.

/** An n-dimensional array: `values` is flat (row-major), `shape` says how to read it. */
export class Tensor {
  constructor(shape, values) {
    this.shape = shape;
    this.values = values;
  }

  /** The sub-array at index i of the first axis (a map of a layer, a filter of a bank). */
  slice(i) {
    const shape = this.shape.slice(1);
    const size = shape.reduce((a, b) => a * b, 1);
    return new Tensor(shape, this.values.subarray(i * size, (i + 1) * size));
  }

  /** The value at the given indices, e.g. t.at(channel, row, column). */
  at(...indices) {
    let flat = 0;
    indices.forEach((index, axis) => {
      flat = flat * this.shape[axis] + index;
    });
    return this.values[flat];
  }

  /** The largest absolute value: the colour scales run from -maxAbs to +maxAbs. */
  maxAbs() {
    let largest = 0;
    for (const value of this.values) largest = Math.max(largest, Math.abs(value));
    return largest;
  }
}

function base64Bytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** Every {shape, data} or {shape, bytes} inside a JSON answer, replaced by a Tensor. */
export function decodeArrays(value) {
  if (Array.isArray(value)) return value.map(decodeArrays);
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value.shape) && typeof value.bytes === "string") {
    return new Tensor(value.shape, base64Bytes(value.bytes));
  }
  if (Array.isArray(value.shape) && typeof value.data === "string") {
    const bytes = base64Bytes(value.data);
    // DataView reads little-endian explicitly, whatever the computer's own byte order is.
    const view = new DataView(bytes.buffer);
    const floats = new Float32Array(bytes.length / 4);
    for (let i = 0; i < floats.length; i++) floats[i] = view.getFloat32(4 * i, true);
    return new Tensor(value.shape, floats);
  }
  const decoded = {};
  for (const [key, item] of Object.entries(value)) decoded[key] = decodeArrays(item);
  return decoded;
}

/**
 * One request to the server. Never throws: the answer is {ok, status, body}, where a refused
 * request's body is {error: "one line for the user"}, as the server writes it.
 */
async function request(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    return {
      ok: false,
      status: 0,
      body: { error: `the server does not answer (${error.message}); is explore.py running?` },
    };
  }
  let body;
  try {
    body = decodeArrays(await response.json());
  } catch {
    body = { error: `the server sent an answer that is not JSON (HTTP ${response.status})` };
  }
  return { ok: response.ok, status: response.status, body };
}

export function getJSON(path) {
  return request(path, { headers: { Accept: "application/json" } });
}

export function postJSON(path, body) {
  return request(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}
