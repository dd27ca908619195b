'use strict';
// The harness's worker for ONNX Runtime Web's WebAssembly build under Node.js: one process per profile, reused
// across cases, speaking docs/worker-protocol.md over stdin/stdout (the Python worker is harness/worker/main.py).
//
//   node worker.js --spec '<profile worker spec JSON>'
//   worker -> hello   {available, reason, versions, ...}       (after a one-node session really ran)
//   parent -> load    {case, model_path}                       worker -> loaded {session_ms, threads} | error
//   parent -> infer   {datasets, measure} + "<k>/<input>"      worker -> result {...} + "<k>/<output>" | error
//   parent -> bye
//
// Environment (harness/setup/web.py's launch sets it): HARNESS_PYTHON_ONNXRUNTIME, the parent's onnxruntime
// version, which must pair with this package's onnxruntime-web; HARNESS_PROBE_MODEL, the probe model (base64).
// stdout carries frames only: everything else that would print there goes to stderr.

const fs = require('node:fs');
const { FrameReader, encodeMessage, ProtocolError, Unsupported, DTYPES, pack4, unpack4 } = require('./protocol');
const { measureLatency } = require('./sampling');
const { ortWords } = require('./ort-message');
const pkg = require('./package.json');

const writeFrame = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);
for (const level of ['log', 'info', 'debug']) console[level] = console.error;

const OPT_LEVELS = { disable: 'disabled', basic: 'basic', extended: 'extended', layout: 'layout', all: 'all' };
const FOUR_BIT = new Set(['int4', 'uint4']);

function send(header, tensors) {
  for (const piece of encodeMessage(header, tensors)) writeFrame(piece);
}

function sendError(kind, err) {
  if (err instanceof Unsupported) {
    send({ type: 'error', kind, status: 'NOT_IMPLEMENTED', message: `NOT_IMPLEMENTED: ${err.message}` });
    return;
  }
  const { status, message } = ortWords(err);
  const oom = err instanceof RangeError || /out of memory|OOM|bad_alloc|Failed to allocate/i.test(message);
  send({ type: 'error', kind: oom ? 'oom' : kind, status, message: message.slice(0, 4000) });
}

/** Why this onnxruntime-web cannot stand in for the parent's onnxruntime ('' when it can): kernels differ
 * between releases (181 ONNX node cases diverged between 1.30 and 1.32), so a mismatch would be mistaken for a
 * wasm difference. The pairing is package.json's ``harness.pairedWithPythonOnnxruntime``. */
function versionMismatch(webVersion, pythonVersion) {
  const pinned = pkg.dependencies['onnxruntime-web'];
  const paired = pkg.harness.pairedWithPythonOnnxruntime;
  if (webVersion !== pinned) {
    return `onnxruntime-web ${webVersion} is installed but package.json pins ${pinned}; fix: harness setup web --force`;
  }
  if (!pythonVersion) return 'the parent did not say its onnxruntime version (HARNESS_PYTHON_ONNXRUNTIME); fix: start the worker through harness/setup/web.py launch()';
  if (!(pythonVersion + '.').startsWith(paired + '.')) {
    return `onnxruntime-web ${webVersion} (Node worker) is paired with Python onnxruntime ${paired}.x, but the harness runs onnxruntime ${pythonVersion}; fix: pin the matching onnxruntime-web in harness/worker/js/package.json and run harness setup web, or install onnxruntime==${paired}.*`;
  }
  return '';
}

function sessionOptions(spec) {
  const session = spec.session || {};
  const options = { executionProviders: ['wasm'] };
  if (session.graph_optimization) options.graphOptimizationLevel = OPT_LEVELS[session.graph_optimization];
  if (session.intra_op_threads) options.intraOpNumThreads = session.intra_op_threads;
  if (session.inter_op_threads) options.interOpNumThreads = session.inter_op_threads;
  if (session.execution_mode) options.executionMode = session.execution_mode;
  if (session.cpu_arena !== undefined) options.enableCpuMemArena = session.cpu_arena;
  if (session.memory_pattern !== undefined) options.enableMemPattern = session.memory_pattern;
  if (session.config) {  // "session.x.y" = v -> extra: {session: {x: {y: v}}}, as onnxruntime-web flattens it back
    options.extra = {};
    for (const [key, value] of Object.entries(session.config)) {
      const path = key.split('.');
      let node = options.extra;
      for (const part of path.slice(0, -1)) node = node[part] = node[part] || {};
      node[path[path.length - 1]] = String(value);
    }
  }
  return options;
}

/** Resident memory from /proc (bytes); the kernel's high-water mark is reset per cell when it allows. */
function memoryNow() {
  try {
    const status = fs.readFileSync('/proc/self/status', 'utf8');
    const kb = (key) => Number((new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status) || [])[1]) * 1024 || null;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return { rss: process.memoryUsage.rss(), hwm: null };
  }
}

function resetPeak() {
  try { fs.writeFileSync('/proc/self/clear_refs', '5'); return true; } catch { return false; }
}

/** What a session's inputs or outputs need that onnxruntime-web cannot hold ('' when nothing). */
function unsupportedValue(session) {
  for (const [role, list] of [['input', session.inputMetadata], ['output', session.outputMetadata]]) {
    for (const meta of list || []) {
      if (!meta.isTensor) return `onnxruntime-web takes tensors only; ${role} ${JSON.stringify(meta.name)} is not a tensor`;
      if (!(meta.type in DTYPES)) return `onnxruntime-web (wasm) has no ${meta.type} tensors (${role} ${JSON.stringify(meta.name)})`;
      if (role === 'output' && FOUR_BIT.has(meta.type)) {  // it takes them in, but its run cannot hand them back
        return `onnxruntime-web (wasm) returns no ${meta.type} outputs (its run fails with "unsupported type: ${meta.type}"; output ${JSON.stringify(meta.name)})`;
      }
    }
  }
  return '';
}

class Worker {
  constructor(ort, spec) {
    this.ort = ort;
    this.spec = spec;
    this.session = null;
    this.memory = null;
  }

  tensor(value) {
    const data = FOUR_BIT.has(value.dtype) ? pack4(value.data) : value.data;
    return new this.ort.Tensor(value.dtype, data, value.shape);
  }

  async onLoad(header) {
    this.session = null;
    const peakReset = resetPeak();
    const start = memoryNow().rss;
    const began = process.hrtime.bigint();
    const session = await this.ort.InferenceSession.create(fs.readFileSync(header.model_path), sessionOptions(this.spec));
    const sessionMs = Number(process.hrtime.bigint() - began) / 1e6;
    const lacking = unsupportedValue(session);
    if (lacking) {
      await session.release();
      throw new Unsupported(lacking);
    }
    this.session = session;
    this.memory = { rss_start: start, after_session: memoryNow().rss, method: peakReset ? 'vmhwm' : 'rss' };
    const threads = this.ort.env.wasm.numThreads;
    send({ type: 'loaded', session_ms: sessionMs, providers: ['wasm'],
      placement: { available: false, reason: 'onnxruntime-web does not report node placement; every node runs on the wasm build\'s CPU kernels' },
      threads: { intra_op: (this.spec.session || {}).intra_op_threads || 0, inter_op: (this.spec.session || {}).inter_op_threads || 0,
        affinity: null, intra_op_effective: threads } });
  }

  /** Feeds per data set k, in numeric order; a model without inputs runs once per named data set. */
  feeds(header, tensors) {
    const byK = new Map();
    for (const [name, value] of Object.entries(tensors)) {
      const cut = name.indexOf('/');
      const k = name.slice(0, cut);
      if (!byK.has(k)) byK.set(k, {});
      byK.get(k)[name.slice(cut + 1)] = this.tensor(value);
    }
    if (byK.size === 0 && this.session.inputNames.length === 0) {
      const ids = Array.isArray(header.dataset_ids) ? header.dataset_ids
        : Array.from({ length: Number.isInteger(header.datasets) ? header.datasets : 0 }, (_, i) => i);
      for (const k of ids) byK.set(String(k), {});
    }
    const order = (k) => (/^\d+$/.test(k) ? Number(k) : -1);
    return [...byK.entries()].sort((a, b) => order(a[0]) - order(b[0]));
  }

  async onInfer(header, tensors) {
    const session = this.session;
    if (session === null) throw new Error('infer before load (or after a load that failed)');
    const outputs = {};
    let firstMs = null;
    const feeds = this.feeds(header, tensors);
    for (const [k, feed] of feeds) {
      const began = process.hrtime.bigint();
      const result = await session.run(feed);
      if (firstMs === null) firstMs = Number(process.hrtime.bigint() - began) / 1e6;
      for (const name of session.outputNames) {
        const t = result[name];
        const data = FOUR_BIT.has(t.type) ? unpack4(t.data, t.size, t.type === 'int4') : t.data;
        outputs[`${k}/${name}`] = { dtype: t.type, shape: t.dims, data };
      }
    }
    const now = memoryNow();
    const memory = { ...this.memory, rss_end: now.rss, peak: this.memory && this.memory.method === 'vmhwm' ? now.hwm : Math.max(now.rss, this.memory ? this.memory.after_session : 0) };
    const reply = { type: 'result', first_inference_ms: firstMs, output_names: session.outputNames, memory };
    this.memory = null;
    if (header.measure && feeds.length) {
      const feed = feeds[0][1];
      const { samples, info } = await measureLatency(() => session.run(feed), header.measure);
      outputs.__latency_ns = { dtype: 'int64', shape: [samples.length], data: samples };
      reply.latency = info;
    }
    this.session = null;
    await session.release();
    send(reply, outputs);
  }
}

/** The first frame: who we are, and whether a one-node wasm session really ran here (and why not). */
async function hello(spec) {
  const base = { type: 'hello', runtime: 'node', pid: process.pid, executable: process.execPath, protocol: 2,
    affinity: null, memory_limit_mb: null, versions: { node: process.versions.node } };
  const refuse = (unavailable, reason) => ({ ort: null, hello: { ...base, available: false, unavailable, reason } });
  if (spec.ep !== 'CPUExecutionProvider') {
    return refuse('not_in_build', `the Node worker runs onnxruntime-web's wasm build, whose kernels are the CPU EP's; ${spec.ep} is not in it`);
  }
  if (spec.cpu_cores != null || spec.memory_limit_mb != null) {
    return refuse('no_device', 'the Node worker cannot pin cores or cap memory (constraints.cpu_cores / memory_limit_mb); drop [constraints] from the profile');
  }
  let ort;
  try {
    ort = require('onnxruntime-web');
  } catch (err) {
    return refuse('not_installed', `onnxruntime-web cannot be loaded (${err.message.split('\n')[0]}); fix: harness setup web`);
  }
  base.versions['onnxruntime-web'] = ort.env.versions.web;
  base.versions['onnxruntime-common'] = ort.env.versions.common;
  base.versions.onnxruntime = process.env.HARNESS_PYTHON_ONNXRUNTIME || null;
  const mismatch = versionMismatch(ort.env.versions.web, process.env.HARNESS_PYTHON_ONNXRUNTIME);
  if (mismatch) return refuse('not_installed', mismatch);
  ort.env.wasm.numThreads = (spec.session || {}).intra_op_threads || 0;  // fixed by the first session: one worker per setting
  ort.env.logLevel = 'error';
  try {
    const probe = Buffer.from(process.env.HARNESS_PROBE_MODEL || '', 'base64');
    if (!probe.length) throw new Error('no probe model given (HARNESS_PROBE_MODEL); start the worker through harness/setup/web.py launch()');
    const session = await ort.InferenceSession.create(probe, sessionOptions(spec));
    await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', Float32Array.from([-1, 0, 0.5, 2]), [1, 4]) });
    await session.release();
  } catch (err) {
    return refuse('probe_failed', `a one-node wasm session could not be created and run on this host: ${ortWords(err).message.split('\n')[0]}`);
  }
  return { ort, hello: { ...base, available: true } };
}

async function serve(spec) {
  const reader = new FrameReader(process.stdin);
  const { ort, hello: first } = await hello(spec);
  send(first);
  const worker = ort ? new Worker(ort, spec) : null;
  for (;;) {
    let message;
    try {
      message = await reader.read();
    } catch (err) {  // the stream is out of step: say why, then stop (the parent starts a new worker)
      send({ type: 'error', kind: 'protocol', status: '', message: `protocol error: ${err.message}` });
      return 2;
    }
    if (message === null || message.header.type === 'bye') return 0;
    const { header, tensors, refused } = message;
    const kind = header.type === 'load' ? 'session' : 'run';
    try {
      if (worker === null) throw new Error(`worker unavailable: ${first.reason}`);
      if (refused) throw refused;
      if (header.type === 'load') await worker.onLoad(header);
      else if (header.type === 'infer') await worker.onInfer(header, tensors);
      else send({ type: 'error', kind: 'protocol', status: '', message: `unknown message ${JSON.stringify(header.type)}` });
    } catch (err) {
      if (worker) worker.session = null;
      sendError(err instanceof ProtocolError ? 'protocol' : kind, err);
    }
  }
}

function main(argv) {
  if (argv.length !== 2 || argv[0] !== '--spec') {
    process.stderr.write("usage: node worker.js --spec '<profile worker spec JSON>'\n");
    return Promise.resolve(2);
  }
  const parent = process.ppid;
  setInterval(() => { if (process.ppid !== parent) process.exit(70); }, 1000).unref();
  return serve(JSON.parse(argv[1]));
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => { process.stderr.write(`worker failed: ${err.stack || err}\n`); process.exit(1); },
);
