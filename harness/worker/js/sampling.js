'use strict';
// Latency sampling, as docs/worker-protocol.md ("the stopping rule") and harness/worker/stats.py define it:
// warm-up, then timed calls until every target percentile's bootstrap interval is narrow enough or a cap is hit.
// Every sample goes back raw (int64 ns); the parent computes the statistics it reports.

const PERCENTILES = { p50: 50, p90: 90, p95: 95, p99: 99, p999: 99.9 };
const REWARM_RUNS = 2;

/** Fewest samples whose second-largest bounds the q-th percentile with 99% confidence. */
function minSamplesFor(q) {
  if (q <= 0) return 1;
  const p = 1 - q / 100;
  const tail = (n) => Math.exp((n - 1) * Math.log1p(-p)) * ((1 - p) + n * p);
  let lo = 2;
  let hi = 4;
  while (tail(hi) > 0.01) { lo = hi; hi *= 2; }
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (tail(mid) <= 0.01) hi = mid; else lo = mid + 1;
  }
  return lo;
}

function nearestRank(n, q) {
  const scaled = Math.round((q * n / 100) * 1e9) / 1e9;
  return Math.min(n, Math.max(1, Math.ceil(scaled)));
}

function percentileOfSorted(sorted, q) {
  return sorted[nearestRank(sorted.length, q) - 1];
}

/** numpy.quantile's default (linear) on sorted values. */
function quantileOfSorted(sorted, p) {
  const pos = p * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** A small seeded generator (mulberry32): the rule is statistical, so it need not match numpy's stream. */
function generator(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The 95% percentile-bootstrap interval of the nearest-rank q-th percentile. */
function percentileInterval(samples, q, nBoot, seed) {
  const random = generator(seed);
  const n = samples.length;
  const resample = new Float64Array(n);
  const stats = new Float64Array(nBoot);
  for (let b = 0; b < nBoot; b++) {
    for (let i = 0; i < n; i++) resample[i] = samples[Math.floor(random() * n)];
    resample.sort();
    stats[b] = percentileOfSorted(resample, q);
  }
  stats.sort();
  return [quantileOfSorted(stats, 0.025), quantileOfSorted(stats, 0.975)];
}

class StoppingRule {
  constructor(rule = {}) {
    const targets = rule.targets || ['p50'];
    this.targets = targets.map((name) => {
      if (!(name in PERCENTILES)) throw new Error(`unknown percentile ${JSON.stringify(name)}; known: ${Object.keys(PERCENTILES).join(', ')}`);
      return PERCENTILES[name];
    });
    this.relHalfWidth = rule.rel_half_width ?? 0.02;
    this.timeCapS = rule.time_cap_s ?? 1.0;
    this.maxIters = rule.max_iters ?? 100000;
    this.hardTimeCapS = rule.hard_time_cap_s ?? 60;
    this.checkEvery = rule.check_every ?? null;
    this.nBoot = rule.n_boot ?? 200;
    this.seed = rule.seed ?? 0;
    this.required = Math.max(rule.min_iters ?? 10, ...this.targets.map(minSamplesFor));
    this.lastChecked = 0;
    this.checks = 0;
  }

  /** [stop, reason] after each timed sample, in the documented order. */
  shouldStop(samples, elapsedS) {
    const n = samples.length;
    if (n >= this.maxIters) return [true, 'iter_cap'];
    if (elapsedS >= this.hardTimeCapS) return [true, 'time_cap'];
    if (n < this.required) return [false, ''];
    if (elapsedS >= this.timeCapS) return [true, this.converged(samples) ? 'converged' : 'time_cap'];
    if (this.due(n) && this.converged(samples)) return [true, 'converged'];
    return [false, ''];
  }

  due(n) {
    if (this.lastChecked === 0) return true;
    const step = this.checkEvery ?? Math.max(200, Math.floor(this.lastChecked / 4));
    return n - this.lastChecked >= step;
  }

  converged(samples) {
    const x = Float64Array.from(samples, Number);
    this.lastChecked = x.length;
    this.checks += 1;
    const sorted = Float64Array.from(x).sort();
    return this.targets.every((q) => {
      const estimate = percentileOfSorted(sorted, q);
      const [lo, hi] = percentileInterval(x, q, this.nBoot, this.seed);
      return (hi - lo) / 2 <= this.relHalfWidth * estimate;
    });
  }
}

function median(values) {
  const s = Float64Array.from(values).sort();
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Whether warm-up may stop: a fixed count, or batch medians that agree within the tolerance. */
function warmupDone(rule, samples) {
  const batch = rule.batch ?? 10;
  const maxCount = rule.until_stable ? batch * (rule.max_batches ?? 20) : (rule.count ?? 5);
  if (samples.length >= maxCount) return true;
  if (!rule.until_stable) return false;
  const k = Math.floor(samples.length / batch);
  if (k < 2) return false;
  const last = median(samples.slice((k - 1) * batch, k * batch));
  const prev = median(samples.slice((k - 2) * batch, (k - 1) * batch));
  return Math.abs(last - prev) <= (rule.tolerance ?? 0.05) * prev;
}

/** Warm up, then sample ``run`` (an async call with its inputs prepared) until the rule stops it.
 * Returns the raw samples (BigInt64Array, ns) and how the loop went. */
async function measureLatency(run, measure) {
  const clock = process.hrtime.bigint;
  const seconds = () => performance.now() / 1000;
  const warmRule = measure.warmup || {};
  const warmDeadline = seconds() + (measure.warmup_max_s ?? 2.0);
  const warm = [];
  while (!warmupDone(warmRule, warm) && seconds() < warmDeadline) {
    const start = clock();
    await run();
    warm.push(Number(clock() - start));
  }
  const rule = new StoppingRule(measure.stopping || {});
  const samples = [];
  const begin = seconds();
  let reason = '';
  for (;;) {
    const start = clock();
    await run();
    samples.push(clock() - start);
    const checks = rule.checks;
    const [stop, why] = rule.shouldStop(samples, seconds() - begin);
    if (stop) { reason = why; break; }
    if (rule.checks !== checks) {  // the bootstrap evicted caches: re-warm before the next timed call
      for (let i = 0; i < REWARM_RUNS; i++) await run();
    }
  }
  const info = { warmup_iters: warm.length, iters: samples.length, stop_reason: reason, sampling_s: seconds() - begin };
  return { samples: BigInt64Array.from(samples), info };
}

module.exports = { measureLatency, StoppingRule, minSamplesFor, nearestRank, warmupDone };
