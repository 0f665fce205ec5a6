/**
 * The `/ui` dashboard: one self-contained HTML document (inline CSS and JS, no CDN, no fonts to
 * fetch) so it ships pre-built in the package. Its script polls `/ui/api/state` every second and
 * uses the browser bundle of `ssehub/client` (`/ui/client.js`) for the live tail, because the
 * native EventSource cannot send the Authorization header. Everything it inserts from the hub or
 * from events goes through `textContent`, never `innerHTML`.
 */
export const UI_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ssehub</title>
<link rel="icon" href="data:,">
<style>
  :root { --fg: #1d2430; --muted: #667085; --line: #e4e7ec; --bg: #f7f8fa; --card: #fff; --a: #2563eb; --b: #16a34a; --bad: #dc2626; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
  header { display: flex; flex-wrap: wrap; align-items: center; gap: 24px; padding: 12px 20px; background: var(--card); border-bottom: 1px solid var(--line); }
  header h1 { font-size: 18px; margin: 0 12px 0 0; }
  .count { display: flex; flex-direction: column; }
  .count b { font-size: 20px; font-variant-numeric: tabular-nums; }
  .count span, .muted { color: var(--muted); font-size: 12px; }
  #status { margin-left: auto; font-size: 12px; }
  #status.bad { color: var(--bad); }
  main { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; padding: 16px 20px; }
  section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; min-width: 0; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size: 14px; margin: 0 0 8px; }
  table { width: 100%; border-collapse: collapse; font-size: 13px; }
  th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
  th { color: var(--muted); font-weight: 500; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  td { overflow-wrap: anywhere; }
  form { display: grid; grid-template-columns: 90px 1fr; gap: 6px 8px; align-items: center; }
  input[type=text], textarea { width: 100%; padding: 5px 7px; border: 1px solid var(--line); border-radius: 5px; font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; }
  textarea { min-height: 56px; resize: vertical; }
  button { padding: 5px 14px; border: 0; border-radius: 5px; background: var(--a); color: #fff; font: inherit; cursor: pointer; }
  .row { display: flex; gap: 8px; align-items: center; }
  .result { font: 12px ui-monospace, Menlo, monospace; overflow-wrap: anywhere; }
  .result.bad { color: var(--bad); }
  #tail { list-style: none; margin: 8px 0 0; padding: 0; max-height: 320px; overflow: auto; font: 12px ui-monospace, Menlo, monospace; }
  #tail li { padding: 4px 0; border-bottom: 1px solid var(--line); }
  #tail .meta { color: var(--muted); }
  #tail pre { margin: 2px 0 0; white-space: pre-wrap; overflow-wrap: anywhere; }
  #chart { width: 100%; height: 140px; display: block; }
  .legend { display: flex; gap: 16px; font-size: 12px; color: var(--muted); }
  .legend i { display: inline-block; width: 10px; height: 3px; margin-right: 4px; vertical-align: middle; }
  .hidden { display: none; }
</style>
</head>
<body>
<header>
  <h1>ssehub</h1>
  <div class="count"><b id="count-connections">–</b><span>connections</span></div>
  <div class="count"><b id="count-subscriptions">–</b><span>subscriptions</span></div>
  <div class="count"><b id="count-updates-rate">–</b><span>updates/s</span></div>
  <div class="count"><b id="count-deliveries-rate">–</b><span>deliveries/s</span></div>
  <div id="status" class="muted">connecting…</div>
</header>
<main>
  <section class="wide" id="token-section">
    <h2>Token</h2>
    <div class="row">
      <input type="text" id="token" placeholder="a JWT with the ssehub.ui claim (and publish/subscribe for the forms below)" autocomplete="off">
      <button id="token-save" type="button">Use</button>
    </div>
    <p class="muted" id="token-hint">Reading this page needs a token with the claim <code>{"ssehub": {"ui": true}}</code>.</p>
  </section>

  <section class="wide">
    <h2 id="chart-title">Updates/s and deliveries/s</h2>
    <svg id="chart" viewBox="0 0 600 140" preserveAspectRatio="none" role="img" aria-label="updates and deliveries per second">
      <line x1="0" y1="139.5" x2="600" y2="139.5" stroke="#e4e7ec"/>
      <polyline id="chart-deliveries" fill="none" stroke="#16a34a" stroke-width="1.5" vector-effect="non-scaling-stroke" points=""/>
      <polyline id="chart-updates" fill="none" stroke="#2563eb" stroke-width="1.5" vector-effect="non-scaling-stroke" points=""/>
    </svg>
    <div class="legend"><span><i style="background:var(--a)"></i>updates/s</span><span><i style="background:var(--b)"></i>deliveries/s</span><span id="chart-max"></span></div>
  </section>

  <section>
    <h2>Topics <span class="muted" id="template-subscribers"></span></h2>
    <table><thead><tr><th>topic</th><th class="num">subscribers</th></tr></thead><tbody id="topics"></tbody></table>
  </section>

  <section>
    <h2>Presence across the cluster <span class="muted" id="cluster-nodes"></span></h2>
    <table><thead><tr><th>topic or selector</th><th class="num">subscribers</th><th class="num">nodes</th></tr></thead><tbody id="cluster-topics"></tbody></table>
  </section>

  <section>
    <h2>Recent connection ends</h2>
    <table><thead><tr><th>ended</th><th>address</th><th>reason</th><th class="num">duration</th><th class="num">events</th><th class="num">bytes</th></tr></thead><tbody id="ends"></tbody></table>
  </section>

  <section>
    <h2>Live tail</h2>
    <div class="row">
      <input type="text" id="tail-topics" placeholder="topics or selectors, comma-separated (e.g. demo, https://example.com/books/{id})">
      <button id="tail-button" type="button">Tail</button>
    </div>
    <div class="result" id="tail-status"></div>
    <ul id="tail"></ul>
  </section>

  <section>
    <h2>Publish</h2>
    <form id="publish-form">
      <label for="publish-topic">topic</label><input type="text" id="publish-topic" required>
      <label for="publish-data">data</label><textarea id="publish-data"></textarea>
      <label for="publish-id">id</label><input type="text" id="publish-id" placeholder="optional">
      <label for="publish-type">type</label><input type="text" id="publish-type" placeholder="optional">
      <label for="publish-private">private</label><span><input type="checkbox" id="publish-private"></span>
      <label for="publish-token">token</label><input type="text" id="publish-token" placeholder="defaults to the page's token; a draft-07 token or a Mercure 1.0 access token">
      <span></span><div class="row"><button id="publish-button" type="submit">Publish</button><span class="result" id="publish-result"></span></div>
    </form>
  </section>

  <section class="hidden" id="generator">
    <h2>Token generator <span class="muted">(dev mode)</span></h2>
    <form id="generator-form">
      <label for="gen-kind">kind</label><select id="gen-kind"><option value="jwt">draft-07 token (mercure claim, 0.x clients)</option><option value="access-token">Mercure 1.0 access token (typ at+jwt)</option></select>
      <label for="gen-publish">publish</label><input type="text" id="gen-publish" value="*" placeholder="selectors (1.0: exact topics), comma-separated">
      <label for="gen-subscribe">subscribe</label><input type="text" id="gen-subscribe" value="*" placeholder="selectors (1.0: exact topics), comma-separated">
      <label for="gen-publish-urlpattern">publish URL patterns</label><input type="text" id="gen-publish-urlpattern" placeholder="1.0 only: e.g. https://example.com/books/:id, comma-separated">
      <label for="gen-subscribe-urlpattern">subscribe URL patterns</label><input type="text" id="gen-subscribe-urlpattern" placeholder="1.0 only, comma-separated">
      <label for="gen-ui">ui claim</label><span><input type="checkbox" id="gen-ui"></span>
      <span></span><div class="row"><button id="gen-button" type="submit">Generate</button></div>
    </form>
    <div class="result" id="gen-result"></div>
  </section>
</main>
<script type="module">
import { EventSource, mercureSubscribeUrl } from '/ui/client.js';

const $ = (id) => document.getElementById(id);
const HISTORY = 300; // one sample per second: 5 minutes
const TAIL_CAP = 200;
const state = { token: sessionStorage.getItem('ssehub-ui-token') || '', dev: false, hubPath: '/.well-known/mercure', prev: null, samples: [] };

function authHeaders(token) {
  return token ? { authorization: 'Bearer ' + token } : {};
}
function splitList(text) {
  return text.split(',').map((s) => s.trim()).filter((s) => s !== '');
}
function setResult(el, text, bad) {
  el.textContent = text;
  el.classList.toggle('bad', Boolean(bad));
}
function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = String(text);
  if (cls) td.className = cls;
  return td;
}
function formatDuration(ms) {
  if (ms < 1000) return ms + ' ms';
  const s = ms / 1000;
  if (s < 120) return s.toFixed(1) + ' s';
  if (s < 7200) return (s / 60).toFixed(1) + ' min';
  return (s / 3600).toFixed(1) + ' h';
}
function formatRate(x) {
  return x >= 100 ? Math.round(x).toString() : x.toFixed(1);
}

// Dev mode: the hub hands out tokens, so the page needs none from the user.
async function detectDev() {
  try {
    const res = await fetch('/ui/api/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ publish: ['*'], subscribe: ['*'], ui: true }) });
    if (!res.ok) return;
    const body = await res.json();
    state.dev = true;
    state.token = body.token;
    $('token').value = body.token;
    $('token-hint').textContent = 'Dev mode: this page got a token allowed to publish, subscribe and read this page.';
    $('token-section').classList.add('hidden');
    $('generator').classList.remove('hidden');
  } catch {
    // not in dev: the user pastes a token
  }
}

async function poll() {
  try {
    const res = await fetch('/ui/api/state', { headers: authHeaders(state.token) });
    if (res.status === 401 || res.status === 403) {
      setResult($('status'), 'needs a token with the ui claim (' + res.status + ')', true);
      $('token-section').classList.remove('hidden');
      return;
    }
    if (!res.ok) {
      setResult($('status'), 'state: HTTP ' + res.status, true);
      return;
    }
    render(await res.json());
  } catch (error) {
    setResult($('status'), 'hub unreachable: ' + error.message, true);
  }
}

function render(s) {
  state.hubPath = s.hubPath || state.hubPath;
  setResult($('status'), (s.dev ? 'dev · ' : '') + 'up ' + formatDuration(s.uptimeMs), false);
  $('count-connections').textContent = String(s.connections);
  $('count-subscriptions').textContent = String(s.subscriptions);
  const prev = state.prev;
  if (prev && s.now > prev.now) {
    const dt = (s.now - prev.now) / 1000;
    const u = Math.max(0, s.updatesPublished - prev.updatesPublished) / dt;
    const d = Math.max(0, s.deliveries - prev.deliveries) / dt;
    state.samples.push({ u, d });
    if (state.samples.length > HISTORY) state.samples.shift();
    $('count-updates-rate').textContent = formatRate(u);
    $('count-deliveries-rate').textContent = formatRate(d);
    drawChart();
  }
  state.prev = s;

  const topics = $('topics');
  topics.replaceChildren();
  const sorted = [...s.topics].sort((a, b) => b.subscribers - a.subscribers || a.topic.localeCompare(b.topic));
  for (const t of sorted) {
    const row = topics.insertRow();
    cell(row, t.topic);
    cell(row, t.subscribers, 'num');
  }
  if (sorted.length === 0) cell(topics.insertRow(), 'no subscribed topics', 'muted');
  $('template-subscribers').textContent = s.templateSubscribers ? '(+' + s.templateSubscribers + ' subscribers on templates)' : '';

  const cluster = $('cluster-topics');
  cluster.replaceChildren();
  for (const t of s.cluster.topics) {
    const row = cluster.insertRow();
    cell(row, t.topic);
    cell(row, t.subscribers, 'num');
    cell(row, t.nodes, 'num');
  }
  if (s.cluster.topics.length === 0) cell(cluster.insertRow(), 'nobody subscribed anywhere', 'muted');
  $('cluster-nodes').textContent = '(' + s.cluster.nodes.length + (s.cluster.nodes.length === 1 ? ' node' : ' nodes') + ' with subscribers)';

  const ends = $('ends');
  ends.replaceChildren();
  for (const e of [...s.recentEnds].sort((a, b) => b.endedAt - a.endedAt)) {
    const row = ends.insertRow();
    cell(row, new Date(e.endedAt).toLocaleTimeString());
    cell(row, e.address);
    cell(row, e.reason);
    cell(row, formatDuration(e.durationMs), 'num');
    cell(row, e.events, 'num');
    cell(row, e.bytes, 'num');
    row.title = 'connection ' + e.id + ', ' + e.topics + ' subscription(s)';
  }
  if (s.recentEnds.length === 0) cell(ends.insertRow(), 'none yet', 'muted');
}

function drawChart() {
  const w = 600, h = 140, pad = 4;
  const max = Math.max(1, ...state.samples.map((x) => Math.max(x.u, x.d)));
  // The x axis spans the last minute until there is more history, up to 5 minutes.
  const span = Math.min(HISTORY, Math.max(60, state.samples.length));
  const step = w / (span - 1);
  const x0 = w - (state.samples.length - 1) * step;
  const points = (key) => state.samples.map((x, i) => (x0 + i * step).toFixed(1) + ',' + (h - pad - (x[key] / max) * (h - 2 * pad)).toFixed(1)).join(' ');
  $('chart-title').textContent = 'Updates/s and deliveries/s, last ' + (span >= HISTORY ? '5 minutes' : Math.round(span / 60 * 10) / 10 + ' min');
  $('chart-updates').setAttribute('points', points('u'));
  $('chart-deliveries').setAttribute('points', points('d'));
  $('chart-max').textContent = 'scale: 0–' + formatRate(max) + '/s';
}

// Live tail: ssehub/client, because the native EventSource cannot send the Authorization header.
let tail = null;
async function startTail() {
  if (tail) tail.close();
  tail = null;
  const topics = splitList($('tail-topics').value);
  if (topics.length === 0) {
    setResult($('tail-status'), 'enter at least one topic', true);
    return;
  }
  $('tail').replaceChildren();
  const url = mercureSubscribeUrl(new URL(state.hubPath, location.href), topics);
  const source = new EventSource(url, { headers: () => authHeaders(state.token) });
  tail = source;
  setResult($('tail-status'), 'connecting…', false);
  source.addEventListener('open', () => setResult($('tail-status'), 'tailing ' + topics.join(', '), false));
  source.addEventListener('error', (e) => setResult($('tail-status'), (e.message || 'error') + (e.willRetry ? ' (retrying)' : ''), true));
  try {
    for await (const event of source) addTailEvent(event);
  } catch (error) {
    if (tail === source) setResult($('tail-status'), 'tail ended: ' + error.message, true);
  }
}
function addTailEvent(event) {
  const li = document.createElement('li');
  const meta = document.createElement('div');
  meta.className = 'meta';
  meta.textContent = new Date().toLocaleTimeString() + '  id=' + event.lastEventId + (event.type !== 'message' ? '  type=' + event.type : '');
  const data = document.createElement('pre');
  data.textContent = event.data;
  li.append(meta, data);
  const list = $('tail');
  list.prepend(li);
  while (list.children.length > TAIL_CAP) list.lastElementChild.remove();
}

async function publish(ev) {
  ev.preventDefault();
  const form = new URLSearchParams();
  form.set('topic', $('publish-topic').value);
  form.set('data', $('publish-data').value);
  if ($('publish-id').value) form.set('id', $('publish-id').value);
  if ($('publish-type').value) form.set('type', $('publish-type').value);
  if ($('publish-private').checked) form.set('private', 'on');
  const token = $('publish-token').value.trim() || state.token;
  setResult($('publish-result'), 'publishing…', false);
  try {
    const res = await fetch(state.hubPath, { method: 'POST', body: form, headers: authHeaders(token) });
    const text = await res.text();
    setResult($('publish-result'), res.ok ? text : 'HTTP ' + res.status + ': ' + text, !res.ok);
  } catch (error) {
    setResult($('publish-result'), error.message, true);
  }
}

async function generate(ev) {
  ev.preventDefault();
  const body = { kind: $('gen-kind').value, publish: splitList($('gen-publish').value), subscribe: splitList($('gen-subscribe').value), ui: $('gen-ui').checked };
  if (body.kind === 'access-token') {
    body.publishUrlpattern = splitList($('gen-publish-urlpattern').value);
    body.subscribeUrlpattern = splitList($('gen-subscribe-urlpattern').value);
  }
  try {
    const res = await fetch('/ui/api/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) return setResult($('gen-result'), 'HTTP ' + res.status + ': ' + text, true);
    setResult($('gen-result'), JSON.parse(text).token, false);
  } catch (error) {
    setResult($('gen-result'), error.message, true);
  }
}

function useToken() {
  state.token = $('token').value.trim();
  sessionStorage.setItem('ssehub-ui-token', state.token);
  state.prev = null;
  void poll();
}

$('token').value = state.token;
$('token-save').addEventListener('click', useToken);
$('tail-button').addEventListener('click', () => void startTail());
$('tail-topics').addEventListener('keydown', (e) => { if (e.key === 'Enter') void startTail(); });
$('publish-form').addEventListener('submit', publish);
$('generator-form').addEventListener('submit', generate);

await detectDev();
await poll();
setInterval(poll, 1000);
</script>
</body>
</html>
`;
