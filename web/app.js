// The page's side: reads the form (or the query string), calls the wasm
// module's `train`, and draws what it reports. The training itself, the
// parity check and the predictions are all in web/src/lib.rs.
import init, { default_options, train } from './pkg/wgtrain_web.js';

const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);

// The job's defaults (web/src/job.rs), then the form's fields, then the
// query string (`?auto=1&backend=cpu&epochs=1` is how web/test.mjs drives
// the page; any option's name works there).
let defaults = {};
const FORM = ['hidden', 'epochs', 'batch_size', 'lr'];

function options() {
  const opts = { ...defaults };
  for (const name of FORM) opts[name] = Number($(name).value);
  opts.backend = document.querySelector('input[name=backend]:checked').value;
  for (const [key, value] of query) {
    if (key !== 'auto') opts[key] = typeof defaults[key] === 'number' ? Number(value) : value;
  }
  return opts;
}

// What the curves show: training loss and accuracy every report window,
// test accuracy every epoch.
let curve = { steps: [], epochs: [], total: 1 };
let adapterLabel = '';

function drawCurves() {
  const c = $('curves'), g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  const half = c.width / 2, pad = 36, h = c.height - 2 * pad + 10;
  const panel = (x0, title, yMax, series) => {
    const w = half - 2 * pad;
    g.strokeStyle = '#999'; g.lineWidth = 1;
    g.strokeRect(x0 + pad, pad - 10, w, h);
    g.fillStyle = '#333'; g.font = '13px system-ui';
    g.fillText(title, x0 + pad, pad - 16);
    g.fillStyle = '#666'; g.font = '11px system-ui';
    g.fillText(yMax.toFixed(yMax < 2 ? 1 : 0), x0 + 4, pad);
    g.fillText('0', x0 + 4, pad - 10 + h);
    g.fillText(`step ${curve.total}`, x0 + pad + w - 50, pad + h + 4);
    const at = (s, v) => [x0 + pad + (w * s) / curve.total, pad - 10 + h * (1 - Math.min(v, yMax) / yMax)];
    for (const { points, color, dots } of series) {
      g.strokeStyle = color; g.fillStyle = color; g.lineWidth = 2;
      g.beginPath();
      points.forEach(([s, v], i) => { const [x, y] = at(s, v); i ? g.lineTo(x, y) : g.moveTo(x, y); });
      if (!dots) g.stroke();
      if (dots) points.forEach(([s, v]) => { const [x, y] = at(s, v); g.fillRect(x - 3, y - 3, 6, 6); });
    }
  };
  const lossMax = Math.max(0.5, ...curve.steps.map((p) => p.loss));
  panel(0, 'training loss (running mean of the epoch)', lossMax, [
    { points: curve.steps.map((p) => [p.steps_done, p.loss]), color: '#1f6feb' },
  ]);
  panel(half, 'accuracy: training (line), test (squares)', 1, [
    { points: curve.steps.map((p) => [p.steps_done, p.accuracy ?? 0]), color: '#1f6feb' },
    { points: curve.epochs.map((e) => [e.steps_done, e.test_accuracy ?? 0]), color: '#d1242f', dots: true },
  ]);
}

function drawGrid(summary, pixels) {
  const c = $('grid'), g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  const cols = 16, cell = c.width / cols, scale = 2;
  summary.grid.forEach(({ label, predicted }, i) => {
    const x0 = (i % cols) * cell + 2, y0 = Math.floor(i / cols) * 84 + 4;
    const img = g.createImageData(28 * scale, 28 * scale);
    for (let y = 0; y < 28 * scale; y++) {
      for (let x = 0; x < 28 * scale; x++) {
        const v = 255 - pixels[i * 784 + Math.floor(y / scale) * 28 + Math.floor(x / scale)];
        const o = 4 * (y * 28 * scale + x);
        img.data[o] = img.data[o + 1] = img.data[o + 2] = v;
        img.data[o + 3] = 255;
      }
    }
    g.putImageData(img, x0, y0);
    g.fillStyle = predicted === label ? '#1a7f37' : '#d1242f';
    g.font = '13px system-ui';
    g.fillText(predicted === label ? `${predicted}` : `${predicted} (is ${label})`, x0, y0 + 28 * scale + 14);
  });
}

function fail(message) {
  $('error').style.display = 'block';
  $('error').textContent = message;
  $('status').textContent = 'failed';
  document.body.dataset.state = 'error';
  $('result').textContent = JSON.stringify({ error: message });
  $('start').disabled = false;
}

function onEvent(text) {
  const e = JSON.parse(text);
  switch (e.kind) {
    case 'status':
      $('status').textContent = e.text + '…';
      break;
    case 'data':
      $('data').textContent = `MNIST (${e.source}): ${e.train} training digits, ${e.test} test digits`;
      break;
    case 'adapter': {
      const l = e.limits;
      $('adapter').textContent = `${e.name || adapterLabel} (${e.backend}, ${e.device_type}${e.software ? ', a CPU implementation: its timings are CPU timings' : ''}); ` +
        `max storage binding ${(l.max_storage_buffer_binding_size / 2 ** 20).toFixed(0)} MiB, ` +
        `${l.max_compute_invocations_per_workgroup} invocations per workgroup, ${l.max_compute_workgroup_storage_size / 1024} KiB shared`;
      break;
    }
    case 'parity':
      $('parity').textContent = `first step, WebGPU vs CPU: max |gpu − cpu| / max(1, |cpu|) = ${e.error.toExponential(2)} ` +
        `(largest in ${e.worst}); loss ${e.loss_gpu.toFixed(6)} vs ${e.loss_cpu.toFixed(6)}`;
      break;
    case 'steps':
      curve.steps.push(e);
      curve.total = Math.max(curve.total, e.steps * options().epochs);
      $('progress').max = curve.total;
      $('progress').value = e.steps_done;
      $('status').textContent = `epoch ${e.epoch}, step ${e.step}/${e.steps}: loss ${e.loss.toFixed(4)}`;
      $('speed').textContent = `${e.samples_per_sec.toFixed(0)} samples/s`;
      drawCurves();
      break;
    case 'epoch':
      curve.epochs.push({ ...e, steps_done: curve.steps.at(-1)?.steps_done ?? 0 });
      drawCurves();
      break;
  }
}

async function run() {
  $('start').disabled = true;
  $('error').style.display = 'none';
  document.body.dataset.state = 'running';
  curve = { steps: [], epochs: [], total: 1 };
  const opts = options();
  try {
    if (!navigator.gpu) {
      throw new Error('This browser has no WebGPU (navigator.gpu is missing). Use a current Chrome, Edge or Safari; ' +
        'on Linux start Chromium with --enable-unsafe-webgpu.');
    }
    // Browsers keep the adapter's description empty (wgpu names it from
    // that); its vendor and architecture say what it is.
    const info = (await navigator.gpu.requestAdapter())?.info;
    const label = [info?.vendor, info?.architecture].filter(Boolean).join(' ') || 'WebGPU adapter';
    adapterLabel = label;
    const trained = await train(JSON.stringify(opts), onEvent);
    const summary = JSON.parse(trained.summary);
    summary.adapter ||= label;
    drawGrid(summary, trained.grid_pixels);
    $('outcome').textContent = `test accuracy ${(100 * summary.test_accuracy).toFixed(2)}% on ${summary.test_digits} digits ` +
      `after ${summary.steps} steps on ${summary.backend === 'gpu' ? summary.adapter : 'the CPU backend'}; ` +
      `loss ${summary.loss_first.toFixed(3)} → ${summary.loss_last.toFixed(3)}`;
    const link = $('download');
    link.href = URL.createObjectURL(new Blob([trained.model], { type: 'application/octet-stream' }));
    link.style.display = 'inline';
    $('status').textContent = 'done';
    $('result').textContent = JSON.stringify(summary);
    document.body.dataset.state = 'done';
    $('start').disabled = false;
  } catch (err) {
    fail(err?.message ?? String(err));
  }
}

// A device the browser takes away mid-run (driver reset, tab in the
// background too long) rejects the read-backs, which `train` turns into an
// error; an uncaught one still reaches the page.
window.addEventListener('unhandledrejection', (e) => fail(`unexpected error: ${e.reason?.message ?? e.reason}`));

try {
  await init();
  defaults = JSON.parse(default_options());
  for (const name of FORM) $(name).value = defaults[name];
  $('status').textContent = 'ready';
  $('start').addEventListener('click', run);
  if (query.get('auto') === '1') run();
} catch (err) {
  fail(`The WebAssembly module did not load: ${err?.message ?? err}. Build it with \`bash scripts/web_serve.sh\`.`);
}
