// k6 load test for Weir: SSE chat-completion streams through the mTLS Envoy listener.
//
// Each iteration POSTs one streaming /v1/chat/completions request, presenting
// the workload's client certificate (tlsAuth), and checks that the answer is a
// 200 event stream that ends with its terminator (`data: [DONE]`) and carries no
// in-band error event. Failures are counted in `stream_failures` (a Counter)
// and `stream_failed` (a Rate); the run itself never aborts on them.
//
// Environment (all optional except the certificate pair):
//   TARGET        base URL, default https://127.0.0.1:10000 (loopback only)
//   CERT, KEY     PEM client certificate and key of the workload
//   VUS           virtual users (concurrent streams), default 32
//   DURATION      run length, default 10s
//   EVENTS        content events per stream (x-fake-events), default 100
//   EVENT_BYTES   bytes per content event (x-fake-event-bytes), default: word pieces
//   MODEL         default gpt-4o-mini
//   SUMMARY       where handleSummary writes the JSON summary (default: stdout only)
//
// Run: k6 run -e CERT=... -e KEY=... -e SUMMARY=out.json loadtest/k6/stream.js

import http from 'k6/http';
import { check } from 'k6';
import { Counter, Rate } from 'k6/metrics';

const TARGET = __ENV.TARGET || 'https://127.0.0.1:10000';
const VUS = parseInt(__ENV.VUS || '32', 10);
const DURATION = __ENV.DURATION || '10s';
const EVENTS = __ENV.EVENTS || '100';
const EVENT_BYTES = __ENV.EVENT_BYTES || '';
const MODEL = __ENV.MODEL || 'gpt-4o-mini';
const TERMINATOR = 'data: [DONE]';

const host = TARGET.replace(/^https?:\/\//, '').replace(/[:/].*$/, '');
if (!/^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(host)) {
  throw new Error(`loopback targets only, got ${host}`);
}

export const options = {
  scenarios: {
    streams: {
      executor: 'constant-vus',
      vus: VUS,
      duration: DURATION,
      gracefulStop: '10s',
    },
  },
  tlsAuth: [
    {
      domains: [host],
      cert: open(__ENV.CERT),
      key: open(__ENV.KEY),
    },
  ],
  // The sandbox CA is not in the system store; k6 has no CA option, and the
  // identity that matters here is the client's, which Envoy verifies.
  insecureSkipTLSVerify: true,
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
  discardResponseBodies: false,
};

const streamFailures = new Counter('stream_failures');
const streamFailed = new Rate('stream_failed');

const body = JSON.stringify({
  model: MODEL,
  stream: true,
  messages: [{ role: 'user', content: 'Say hello to the load test.' }],
});
const headers = { 'content-type': 'application/json', 'x-fake-events': EVENTS };
if (EVENT_BYTES) {
  headers['x-fake-event-bytes'] = EVENT_BYTES;
}

function streamEndsWithTerminator(text) {
  if (typeof text !== 'string') {
    return false;
  }
  return text.trimEnd().endsWith(TERMINATOR);
}

export default function () {
  const res = http.post(`${TARGET}/v1/chat/completions`, body, { headers, timeout: '30s' });
  const ok = check(res, {
    'status is 200': (r) => r.status === 200,
    'stream ends with data: [DONE]': (r) => streamEndsWithTerminator(r.body),
    'no in-band error event': (r) => typeof r.body === 'string' && !r.body.includes('"error"'),
  });
  streamFailed.add(!ok);
  if (!ok) {
    streamFailures.add(1);
  }
}

export function handleSummary(data) {
  const out = {};
  if (__ENV.SUMMARY) {
    out[__ENV.SUMMARY] = JSON.stringify(data);
  }
  const reqs = data.metrics.http_reqs ? data.metrics.http_reqs.values : { count: 0, rate: 0 };
  const dur = data.metrics.http_req_duration ? data.metrics.http_req_duration.values : {};
  const failures = data.metrics.stream_failures ? data.metrics.stream_failures.values.count : 0;
  out.stdout = `requests ${reqs.count} (${reqs.rate.toFixed(1)}/s), ` +
    `p50 ${(dur.med || 0).toFixed(2)} ms, p99 ${(dur['p(99)'] || 0).toFixed(2)} ms, ` +
    `stream failures ${failures}\n`;
  return out;
}
