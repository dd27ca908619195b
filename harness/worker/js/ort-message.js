'use strict';
// ONNX Runtime's own words, out of onnxruntime-web's error text (the Python worker's harness/worker/ort_message.py):
// onnxruntime-web says ``Can't create a session. ERROR_CODE: 9, ERROR_MESSAGE: <file>:<line> <signature> <words>``;
// a report needs ``NOT_IMPLEMENTED: <words>``, with the full text kept after it.

// ORT's numeric status codes (onnxruntime_c_api.h OrtErrorCode), as the Python worker names them.
const STATUS = ['OK', 'FAIL', 'INVALID_ARGUMENT', 'NO_SUCHFILE', 'NO_MODEL', 'ENGINE_ERROR', 'RUNTIME_EXCEPTION',
  'INVALID_PROTOBUF', 'MODEL_LOADED', 'NOT_IMPLEMENTED', 'INVALID_GRAPH', 'EP_FAIL'];
const ONNX_DTYPE_NAMES = { 14: 'complex64', 15: 'complex128', 16: 'bfloat16', 17: 'float8e4m3fn', 18: 'float8e4m3fnuz',
  19: 'float8e5m2', 20: 'float8e5m2fnuz', 23: 'float4e2m1' };

const LOCATION = /(?<![\w/.])\/?[\w.+-]+(?:\/[\w.+-]+)*\.(?:cc|cpp|cxx|c|h|hpp|cu|mm):\d+\s/g;
const QUALIFIER = /^(?:const|volatile|noexcept|override|&&?)(?=\s|$)|^\[with /;

/** Where the C++ signature that follows a source location ends (GCC's __PRETTY_FUNCTION__, e.g. ``virtual Status
 * onnxruntime::ConvInteger::Compute(OpKernelContext *) const``): the first blank outside brackets after its
 * argument list, past trailing qualifiers; ``start`` when no signature is there. */
function signatureEnd(text, start) {
  let depth = 0;
  let called = false;
  for (let i = start; i < Math.min(text.length, start + 1000); i++) {
    const ch = text[i];
    if ('(<['.includes(ch)) depth += 1;
    else if (')>]'.includes(ch) && !(ch === '>' && text[i - 1] === '-')) {
      depth -= 1;
      called = called || (ch === ')' && depth === 0);
      if (depth < 0) return start;
    } else if (/\s/.test(ch) && depth === 0 && called && !QUALIFIER.test(text.slice(i + 1))) return i + 1;
  }
  return start;
}

/** ORT's text without ``<file>:<line> <signature> `` spans (the Python worker's ort_message does the same). */
function stripLocations(text) {
  let kept = '';
  let pos = 0;
  for (const match of text.matchAll(LOCATION)) {
    if (match.index < pos) continue;
    kept += text.slice(pos, match.index);
    pos = signatureEnd(text, match.index + match[0].length);
  }
  return kept + text.slice(pos);
}

/** ``STATUS: words`` (ORT's code named, C++ source locations dropped), then the full text when that line
 * left something out: the same shape as the Python worker's error message. */
function ortWords(err) {
  const full = String((err && err.message) || err).trim() || (err && err.constructor.name) || 'Error';
  const coded = /ERROR_CODE: (\d+), ERROR_MESSAGE: ([\s\S]*)$/.exec(full);
  let status = coded ? (STATUS[Number(coded[1])] || `CODE_${coded[1]}`) : '';
  let text = coded ? coded[2] : full;
  const dtype = /unsupported data type: (\d+)/.exec(full);
  if (dtype) {  // thrown by onnxruntime-web's JS side while it reads the model's input/output types
    status = 'NOT_IMPLEMENTED';
    const name = ONNX_DTYPE_NAMES[dtype[1]];
    text = `onnxruntime-web (wasm) has no ${name ? name + ' tensors' : 'tensors of element type ' + dtype[1]} (its words: "${dtype[0]}")`;
  }
  text = stripLocations(text);
  const line = (status ? `${status}: ` : '') + text.split(/\s+/).join(' ').trim();
  return { status, message: line === full ? line : `${line}\n${full}` };
}

module.exports = { ortWords, stripLocations };
