'use strict';
// The worker wire protocol (docs/worker-protocol.md), the Node.js side: frames of a JSON header plus raw
// little-endian tensor bytes. Only numeric, bool and string tensors: those are the values onnxruntime-web's
// wasm build takes; any other entry is refused by name, so the cell says what this runtime lacks.

const MAGIC = Buffer.from('OHW1', 'ascii');
const PREFIX_SIZE = 16; // magic, uint32 header length, uint64 payload length
const MAX_HEADER_BYTES = 1 << 20;
const MAX_PAYLOAD = Math.min(16 * 2 ** 30, require('buffer').constants.MAX_LENGTH);
const ALIGNMENT = 64;

// Wire dtype -> [ONNX element type, typed array that onnxruntime-web's Tensor takes for it].
const DTYPES = {
  float32: [1, Float32Array], uint8: [2, Uint8Array], int8: [3, Int8Array], uint16: [4, Uint16Array],
  int16: [5, Int16Array], int32: [6, Int32Array], int64: [7, BigInt64Array], string: [8, null],
  bool: [9, Uint8Array], float16: [10, Uint16Array], float64: [11, Float64Array], uint32: [12, Uint32Array],
  uint64: [13, BigUint64Array], uint4: [21, Uint8Array], int4: [22, Int8Array],  // 4-bit: one byte each on the wire
};
const DTYPE_OF_ELEM = Object.fromEntries(Object.entries(DTYPES).map(([name, [elem]]) => [elem, name]));

class ProtocolError extends Error {}

/** Reads frames from a stream as its bytes arrive; memory grows with the bytes received, never with what a
 * header announces, so a short frame that claims gigabytes ends as a truncated frame. */
class FrameReader {
  constructor(stream) {
    this.chunks = [];
    this.buffered = 0;
    this.ended = false;
    this.wake = null;
    stream.on('data', (chunk) => { this.chunks.push(chunk); this.buffered += chunk.length; this.notify(); });
    stream.on('end', () => { this.ended = true; this.notify(); });
    stream.on('error', () => { this.ended = true; this.notify(); });
  }

  notify() {
    if (this.wake) { const wake = this.wake; this.wake = null; wake(); }
  }

  async take(n) {
    while (this.buffered < n) {
      if (this.ended) return null;
      await new Promise((resolve) => { this.wake = resolve; });
    }
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }

  /** The next message as {header, tensors, refused}, or null on a clean end of stream (at a frame boundary). */
  async read() {
    if (this.buffered === 0) {
      while (this.buffered === 0 && !this.ended) await new Promise((resolve) => { this.wake = resolve; });
      if (this.buffered === 0) return null;
    }
    const prefix = await this.take(PREFIX_SIZE);
    if (prefix === null) throw new ProtocolError('truncated frame: end of stream inside the frame prefix');
    if (!prefix.subarray(0, 4).equals(MAGIC)) {
      throw new ProtocolError(`bad magic ${JSON.stringify(prefix.subarray(0, 4).toString('latin1'))}, expected "OHW1"`);
    }
    const hlen = prefix.readUInt32LE(4);
    const plen = prefix.readBigUInt64LE(8);
    if (hlen > MAX_HEADER_BYTES) throw new ProtocolError(`header of ${hlen} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    if (plen > BigInt(MAX_PAYLOAD)) throw new ProtocolError(`payload of ${plen} bytes exceeds this worker's ${MAX_PAYLOAD}-byte limit`);
    const headerBytes = await this.take(hlen);
    const payload = await this.take(Number(plen));
    if (headerBytes === null || payload === null) throw new ProtocolError('truncated frame: end of stream inside the frame');
    let header;
    try {
      header = JSON.parse(headerBytes.toString('utf8'));
    } catch (err) {
      throw new ProtocolError(`header is not JSON: ${err.message}`);
    }
    if (header === null || typeof header !== 'object' || Array.isArray(header) || typeof header.type !== 'string') {
      throw new ProtocolError('header must be a JSON object with a string "type"');
    }
    if (!Array.isArray(header.tensors)) throw new ProtocolError('header must have a "tensors" list');
    const tensors = {};
    let refused = null;  // a whole frame that holds a value this runtime lacks: answered, not fatal
    for (const entry of header.tensors) {
      if (entry === null || typeof entry !== 'object' || typeof entry.name !== 'string') {
        throw new ProtocolError('a tensor entry needs a string "name"');
      }
      if (entry.name in tensors) throw new ProtocolError(`tensor name ${JSON.stringify(entry.name)} appears twice`);
      try {
        tensors[entry.name] = decodeTensor(entry, payload);
      } catch (err) {
        if (!(err instanceof Unsupported)) throw err;
        refused = refused || err;
      }
    }
    return { header, tensors, refused };
  }
}

/** A wire tensor entry -> {dtype, shape, data}: a typed array (copied, so it is aligned) or a list of strings.
 * Entries this runtime cannot hold throw an Unsupported error naming the dtype or kind. */
function decodeTensor(entry, payload) {
  const kind = entry.kind || 'tensor';
  if (kind !== 'tensor') throw new Unsupported(`onnxruntime-web takes tensors only; input ${JSON.stringify(entry.name)} is a ${kind}`);
  const dtype = entry.dtype !== undefined ? entry.dtype : DTYPE_OF_ELEM[entry.elem_type];
  if (typeof dtype !== 'string') throw new ProtocolError(`tensor ${JSON.stringify(entry.name)} has no dtype or elem_type`);
  if (!(dtype in DTYPES)) throw new Unsupported(`onnxruntime-web (wasm) has no ${dtype} tensors (input ${JSON.stringify(entry.name)})`);
  const { shape, offset, nbytes } = entry;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new ProtocolError(`tensor ${JSON.stringify(entry.name)} has a bad shape ${JSON.stringify(shape)}`);
  }
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(nbytes) || offset < 0 || nbytes < 0 || offset + nbytes > payload.length) {
    throw new ProtocolError(`tensor ${JSON.stringify(entry.name)}: bytes [${offset}, ${offset + nbytes}) lie outside the ${payload.length}-byte payload`);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  const bytes = payload.subarray(offset, offset + nbytes);
  if (dtype === 'string') return { dtype, shape, data: decodeStrings(bytes, count, entry.name) };
  const Typed = DTYPES[dtype][1];
  if (nbytes !== count * Typed.BYTES_PER_ELEMENT) {
    throw new ProtocolError(`tensor ${JSON.stringify(entry.name)}: nbytes ${nbytes} != ${count} elements x ${Typed.BYTES_PER_ELEMENT} bytes`);
  }
  const copy = new Uint8Array(nbytes);
  copy.set(bytes);
  return { dtype, shape, data: new Typed(copy.buffer) };
}

function decodeStrings(bytes, count, name) {
  const table = 8 * (count + 1);
  if (bytes.length < table) throw new ProtocolError(`string tensor ${JSON.stringify(name)} is shorter than its offset table`);
  const data = bytes.subarray(table);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const out = [];
  let start = 0;
  for (let i = 1; i <= count; i++) {
    const end = Number(bytes.readBigUInt64LE(8 * i));
    if (end < start || end > data.length) throw new ProtocolError(`string tensor ${JSON.stringify(name)} has bad offsets`);
    try {
      out.push(decoder.decode(data.subarray(start, end)));
    } catch {
      throw new ProtocolError(`string tensor ${JSON.stringify(name)} holds bytes that are not UTF-8`);
    }
    start = end;
  }
  return out;
}

/** Unpacked 4-bit elements (one byte each, as the wire carries them) -> two per byte, low nibble first (as
 * ONNX and onnxruntime-web store them). */
function pack4(values) {
  const packed = new Uint8Array(Math.ceil(values.length / 2));
  for (let i = 0; i < values.length; i++) packed[i >> 1] |= (values[i] & 0x0f) << ((i & 1) * 4);
  return packed;
}

/** The reverse of pack4: ``count`` elements, int4 sign-extended. */
function unpack4(packed, count, signed) {
  const out = signed ? new Int8Array(count) : new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const nibble = (packed[i >> 1] >> ((i & 1) * 4)) & 0x0f;
    out[i] = signed && nibble > 7 ? nibble - 16 : nibble;
  }
  return out;
}

/** The bytes a tensor {dtype, shape, data} takes on the wire. */
function tensorBytes(dtype, data) {
  if (dtype === 'string') {
    const parts = data.map((s) => Buffer.from(s, 'utf8'));
    const table = Buffer.alloc(8 * (parts.length + 1));
    let end = 0;
    parts.forEach((part, i) => { end += part.length; table.writeBigUInt64LE(BigInt(end), 8 * (i + 1)); });
    return Buffer.concat([table, ...parts]);
  }
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** One frame: the header (with its tensor table filled in) and the tensors, each padded to 64 bytes. */
function encodeMessage(header, tensors = {}) {
  const table = [];
  const pieces = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = tensorBytes(t.dtype, t.data);
    const pad = (ALIGNMENT - (offset % ALIGNMENT)) % ALIGNMENT;
    if (pad) pieces.push(Buffer.alloc(pad));
    offset += pad;
    table.push({ name, dtype: t.dtype, elem_type: DTYPES[t.dtype][0], shape: t.shape.map(Number), offset, nbytes: bytes.length });
    pieces.push(bytes);
    offset += bytes.length;
  }
  const headerBytes = Buffer.from(JSON.stringify({ ...header, tensors: table }), 'utf8');
  if (headerBytes.length > MAX_HEADER_BYTES) throw new ProtocolError(`header is ${headerBytes.length} bytes, limit ${MAX_HEADER_BYTES}`);
  const prefix = Buffer.alloc(PREFIX_SIZE);
  MAGIC.copy(prefix, 0);
  prefix.writeUInt32LE(headerBytes.length, 4);
  prefix.writeBigUInt64LE(BigInt(offset), 8);
  return [prefix, headerBytes, ...pieces];
}

/** What onnxruntime-web cannot take (a dtype, a sequence): the session's edge says so by name. */
class Unsupported extends Error {}

module.exports = { FrameReader, encodeMessage, ProtocolError, Unsupported, DTYPES, pack4, unpack4 };
