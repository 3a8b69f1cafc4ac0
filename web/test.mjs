// Drives headless Chromium over the page (served by scripts/web_test.sh at
// the address given as the first argument) and checks what it reports:
//
// 1. WebGPU: an adapter was found, the loss fell, test accuracy is at least
//    MIN_ACCURACY, and the first step agrees with the CPU backend within
//    MAX_PARITY; a screenshot of the trained page goes to web/out/page.png,
//    and the model it offers for download loads natively with the same score.
// 2. The CPU backend inside the page trains as well.
// 3. Bad cases are reported in the page, as an error saying what to do: no
//    WebGPU in the browser, a device lost mid-run (the page's fault
//    injection ends it after 20 steps), a data file that is missing, one
//    that is corrupt.
//
// Prints one line per case and, last, the line the README quotes. Exits
// non-zero on the first failure, with the page's console.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';

const base = process.argv[2];
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const env = (name, fallback) => Number(process.env[name] ?? fallback);
const MIN_ACCURACY = env('WEB_MIN_ACCURACY', 0.90);
// f32 on two backends after one step; see the README's parity section.
const MAX_PARITY = env('WEB_MAX_PARITY', 1e-5);
const TIMEOUT_MS = 1000 * env('WEB_TIMEOUT_S', 600);
const EPOCHS = env('WEB_EPOCHS', 3);

// As the machine's own probe found: without the background-networking
// switches Chromium keeps dialling hosts this closed network refuses.
const quiet = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

function fail(message, console_) {
  console.error(`web: FAILED: ${message}`);
  if (console_?.length) console.error('page console:\n  ' + console_.join('\n  '));
  process.exit(1);
}

// Opens `path` in a fresh browser with `flags`, waits (bounded) for the
// page to say it is done or failed, and returns its state, result, error
// text and console.
async function visit(path, flags, screenshot, download) {
  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: [...quiet, ...flags] });
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  const log = [];
  page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  try {
    await page.goto(base + path);
    await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state), null,
      { timeout: TIMEOUT_MS, polling: 500 });
  } catch (e) {
    await browser.close();
    fail(`${path}: the page did not finish within ${TIMEOUT_MS / 1000} s (${e.message.split('\n')[0]})`, log);
  }
  const state = await page.evaluate(() => document.body.dataset.state);
  const result = JSON.parse(await page.textContent('#result'));
  const error = await page.textContent('#error');
  if (screenshot) {
    mkdirSync('out', { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
  }
  if (download && state === 'done') {
    const saved = page.waitForEvent('download');
    await page.click('#download');
    await (await saved).saveAs(download);
  }
  await browser.close();
  return { state, result, error, log };
}

const webgpu = ['--enable-unsafe-webgpu'];
const percent = (a) => (100 * a).toFixed(2);

// 1. WebGPU, with the screenshot.
const gpu = await visit(`?auto=1&backend=gpu&epochs=${EPOCHS}`, webgpu, 'out/page.png', 'out/model.safetensors');
if (gpu.state !== 'done') fail(`WebGPU run: ${gpu.error}`, gpu.log);
const s = gpu.result;
if (!s.adapter) fail('no WebGPU adapter was reported', gpu.log);
if (!(s.loss_last < s.loss_first)) fail(`the loss did not fall: ${s.loss_first} -> ${s.loss_last}`, gpu.log);
if (!(s.test_accuracy >= MIN_ACCURACY)) fail(`test accuracy ${percent(s.test_accuracy)}% < ${percent(MIN_ACCURACY)}%`, gpu.log);
if (!(s.parity <= MAX_PARITY)) fail(`first-step parity ${s.parity} (in ${s.parity_worst}) > ${MAX_PARITY}`, gpu.log);
console.log(`web: WebGPU ${s.samples_per_sec.toFixed(0)} samples/s (last epoch), ${s.train_digits} training digits, ` +
  `batch ${s.batch_size}, screenshot web/out/page.png`);

// The downloaded model loads natively and scores the same on the test set
// (the CPU backend there, WebGPU here: a digit whose two top scores tie to
// rounding may go either way).
const native = JSON.parse(execFileSync('../target/release/native', ['--evaluate', 'out/model.safetensors'],
  { encoding: 'utf8' }).trim().split('\n').at(-1));
const digits = Math.round(Math.abs(native.test_accuracy - s.test_accuracy) * s.test_digits);
if (digits > 1) fail(`the downloaded model scores ${percent(native.test_accuracy)}% natively, ${percent(s.test_accuracy)}% in the page`);
console.log(`web: the downloaded model.safetensors loads natively: test accuracy ${percent(native.test_accuracy)}% ` +
  `(page ${percent(s.test_accuracy)}%), loss ${native.test_loss.toFixed(6)} (page ${s.test_loss.toFixed(6)})`);

// 2. The CPU backend inside the page, one epoch.
const cpu = await visit('?auto=1&backend=cpu&epochs=1', webgpu);
if (cpu.state !== 'done') fail(`CPU run: ${cpu.error}`, cpu.log);
if (!(cpu.result.test_accuracy >= MIN_ACCURACY - 0.02)) fail(`CPU backend test accuracy ${percent(cpu.result.test_accuracy)}%`, cpu.log);
console.log(`web: cpu backend in the page: test accuracy ${percent(cpu.result.test_accuracy)}% after 1 epoch, ` +
  `${cpu.result.samples_per_sec.toFixed(0)} samples/s`);

// 3. What goes wrong is said in the page.
const expectError = async (name, path, flags, words) => {
  const r = await visit(path, flags);
  if (r.state !== 'error') fail(`${name}: the page did not report an error (state ${r.state})`, r.log);
  for (const w of words) if (!r.error.includes(w)) fail(`${name}: the page's error lacks "${w}": ${r.error}`, r.log);
  console.log(`web: ${name}: the page says "${r.error.split('. ')[0].slice(0, 140)}"`);
};
await expectError('no WebGPU', '?auto=1', [], ['WebGPU', '--enable-unsafe-webgpu']);
await expectError('lost device', '?auto=1&epochs=1&lose_device_after_steps=20', webgpu, ['lost', 'reload the page']);
await expectError('missing data', '?auto=1&manifest=data/nothing-here.json', webgpu, ['404', 'web_serve.sh']);
// A training-image file cut short, beside a manifest naming it.
const manifest = JSON.parse(readFileSync('data/mnist.json', 'utf8'));
mkdirSync('out/corrupt', { recursive: true });
for (const key of ['train_labels', 'test_images', 'test_labels']) {
  writeFileSync(`out/corrupt/${manifest[key]}`, readFileSync(`data/${manifest[key]}`));
}
const images = readFileSync(`data/${manifest.train_images}`);
writeFileSync(`out/corrupt/${manifest.train_images}`, images.subarray(0, images.length - 100));
writeFileSync('out/corrupt/mnist.json', JSON.stringify(manifest));
await expectError('corrupt data', '?auto=1&manifest=out/corrupt/mnist.json', webgpu, ['truncated', manifest.train_images]);

console.log(`web: ${s.adapter} trained ${s.steps} steps, loss ${s.loss_first.toFixed(4)} -> ${s.loss_last.toFixed(4)}, ` +
  `test accuracy ${percent(s.test_accuracy)}%, parity ${s.parity.toExponential(2)}`);
