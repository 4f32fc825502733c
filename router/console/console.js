// The hookbus console (/console) and portal page (/portal/<token>): plain JavaScript, no
// framework, nothing fetched but this origin's API. Everything that comes from the API (hook
// names, URLs, events, request and response bodies, reasons) enters the page as text nodes
// or textContent, never as markup, so a receiver answering <script> shows as text.
// The admin token lives in sessionStorage only: gone when the tab closes, never in a URL.
'use strict';

const TOKEN_KEY = 'hookbus.adminToken';
const PAGE_SIZE = 20;
const LIVE_MS = 3000;
const portalMatch = /^\/portal\/([^/]+)$/.exec(location.pathname);
// A portal token is `{hookId}.{expiresAtMs}.{mac}` (router/src/portal.rs).
const portal = portalMatch ? portalLink(decodeURIComponent(portalMatch[1])) : null;

let generation = 0; // bumped on every page change: answers for a page left are dropped
let timers = [];

function portalLink(token) {
  const [hookId, expiresAt] = token.split('.');
  return { token, hookId, expiresAt: Number(expiresAt) };
}

// --- building the page, as text only ---

function h(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (['value', 'checked', 'disabled', 'hidden', 'open', 'selected', 'required', 'readOnly'].includes(key)) node[key] = value;
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function page(title) {
  const main = document.getElementById('main');
  main.replaceChildren();
  if (title) main.append(h('h1', {}, title));
  return main;
}

function toast(message) {
  const node = document.getElementById('toast');
  node.textContent = message;
  node.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { node.hidden = true; }, 4000);
}

function describe(err) {
  if (err && err.body && typeof err.body === 'object' && err.body.message) return err.body.message;
  return err && err.message ? err.message : String(err);
}

function failure(err) {
  return h('p', { class: 'error' }, describe(err));
}

function when(ms) {
  return ms ? new Date(ms).toLocaleString() : '–';
}

function pretty(body) {
  return typeof body === 'string' ? body : JSON.stringify(body, null, 2);
}

function rate(stats) {
  return stats && stats.requestCount ? `${(100 * stats.successCount / stats.requestCount).toFixed(1)} %` : '–';
}

function enc(value) {
  return encodeURIComponent(value);
}

function confirmBox(message, action, onConfirm) {
  const box = h('div', { class: 'confirm', role: 'alertdialog' }, h('p', {}, message));
  const yes = h('button', { type: 'button', class: 'danger', 'data-confirm': '' }, action);
  const no = h('button', { type: 'button' }, 'Cancel');
  yes.addEventListener('click', async () => {
    yes.disabled = true;
    try { await onConfirm(); box.remove(); } catch (err) { box.append(failure(err)); yes.disabled = false; }
  });
  no.addEventListener('click', () => box.remove());
  box.append(h('div', { class: 'row' }, yes, no));
  return box;
}

// --- the API ---

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function authorization() {
  if (portal) return `Portal ${portal.token}`;
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? `Bearer ${token}` : null;
}

async function api(method, path, body) {
  const headers = {};
  const auth = authorization();
  if (auth) headers.authorization = auth;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method, headers, credentials: 'omit', cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = text; } }
  if (!res.ok) {
    if (res.status === 401 && !portal) {
      sessionStorage.removeItem(TOKEN_KEY);
      signIn(auth ? 'The token was refused: sign in again.' : '');
    }
    throw new ApiError(res.status, data);
  }
  return { data, total: Number(res.headers.get('total-number') || 0) };
}

function hookPath(id) {
  return portal ? `/api/portal/hooks/${enc(id)}` : `/api/hooks/${enc(id)}`;
}

async function catalogue() {
  const res = await fetch('/console/catalogue.json', { credentials: 'omit' });
  return res.json();
}

// --- sign-in and navigation ---

function signIn(message) {
  generation++;
  stopTimers();
  document.getElementById('nav').hidden = true;
  document.getElementById('sign-out').hidden = true;
  const main = page('');
  const input = h('input', { type: 'password', id: 'token', autocomplete: 'off', required: true });
  const error = h('p', { class: 'error', id: 'signin-error' }, message || '');
  const form = h('form', { class: 'card signin' },
    h('h1', {}, 'Sign in'),
    h('label', { class: 'field' }, h('span', {}, 'Admin token'), input),
    h('p', { class: 'muted' }, 'The router\'s HOOKBUS_ADMIN_TOKEN. It is kept in this tab only, until you close it or sign out.'),
    error,
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    try { await api('GET', '/api/hooks?page=1&page_size=1'); enter(); } catch (err) {
      if (err.status !== 401) error.textContent = describe(err);
    }
  });
  main.append(h('section', { class: 'card signin' }, form));
  input.focus();
}

function enter() {
  document.getElementById('nav').hidden = false;
  document.getElementById('sign-out').hidden = !sessionStorage.getItem(TOKEN_KEY);
  route();
}

function stopTimers() {
  timers.forEach(clearInterval);
  timers = [];
}

function route() {
  generation++;
  stopTimers();
  const gen = generation;
  if (portal) return hookPage(portal.hookId, gen);
  const [path, query] = location.hash.replace(/^#/, '').split('?');
  const section = path.startsWith('/hooks') ? 'hooks' : 'overview';
  for (const link of document.querySelectorAll('[data-nav]')) {
    link.classList.toggle('active', link.dataset.nav === section);
  }
  if (path === '/hooks') return hooksPage(new URLSearchParams(query || ''), gen);
  if (path === '/hooks/new') return createPage(gen);
  const hook = /^\/hooks\/([A-Za-z0-9_-]+)$/.exec(path);
  if (hook) return hookPage(hook[1], gen);
  return overviewPage(gen);
}

async function start() {
  if (portal) {
    document.getElementById('brand').textContent = 'Webhook portal';
    document.title = 'Webhook portal';
    route();
    return;
  }
  document.getElementById('sign-out').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    signIn('Signed out.');
  });
  window.addEventListener('hashchange', route);
  // With HOOKBUS_ADMIN_OPEN the API answers without a token: then there is no sign-in.
  try { await api('GET', '/api/hooks?page=1&page_size=1'); enter(); } catch (err) {
    if (err.status !== 401) page('').append(failure(err));
  }
}

// --- Overview ---

function figure(label, value, id) {
  return h('div', { class: 'figure', id }, h('div', { class: 'value' }, value), h('div', { class: 'label' }, label));
}

function setFigure(id, value) {
  const node = document.querySelector(`#${id} .value`);
  if (node) node.textContent = value;
}

// A duration in words, coarse: "45 s", "3 min", "2 h 5 min".
function span(ms) {
  const s = Math.round(ms / 1000);
  if (s < 90) return `${s} s`;
  const min = Math.round(s / 60);
  if (min < 90) return `${min} min`;
  return `${Math.floor(min / 60)} h ${min % 60} min`;
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

// Events routed, deliveries and failed attempts per second over the last hour: one line per
// series over the 10 s buckets, the scale's top labelled; the partial last bucket is left out.
function activityChart(overview) {
  const points = overview.activity.slice(0, -1);
  const per = overview.bucketSeconds;
  const series = [['routed', 'events routed'], ['delivered', 'deliveries'], ['failed', 'failed attempts']];
  const top = Math.max(1, ...points.flatMap((p) => series.map(([key]) => p[key] / per)));
  const [width, height, left, bottom] = [720, 160, 44, 18];
  const x = (i) => left + (i / Math.max(1, points.length - 1)) * (width - left - 4);
  const y = (v) => 6 + (1 - v / top) * (height - bottom - 6);
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': 'Activity over the last hour' },
    svg('line', { x1: left, y1: y(0), x2: width - 4, y2: y(0), class: 'axis' }),
    svg('line', { x1: left, y1: y(top), x2: width - 4, y2: y(top), class: 'grid' }),
    svg('text', { x: left - 6, y: y(top) + 4, class: 'tick', 'text-anchor': 'end' }, top >= 10 ? top.toFixed(0) : top.toFixed(1)),
    svg('text', { x: left - 6, y: y(0) + 4, class: 'tick', 'text-anchor': 'end' }, '0'),
    svg('text', { x: left, y: height - 2, class: 'tick' }, '1 h ago'),
    svg('text', { x: width - 4, y: height - 2, class: 'tick', 'text-anchor': 'end' }, 'now'));
  for (const [key] of series) {
    const line = points.map((p, i) => `${x(i).toFixed(1)},${y(p[key] / per).toFixed(1)}`).join(' ');
    chart.append(svg('polyline', { points: line, class: `series ${key}`, 'data-series': key }));
  }
  const total = (key) => points.reduce((n, p) => n + p[key], 0);
  const recent = points.slice(-6);
  const lastMinute = (key) => (recent.reduce((n, p) => n + p[key], 0) / (recent.length * per || 1)).toFixed(1);
  const legend = h('div', { class: 'row legend', id: 'activity-legend' }, series.map(([key, label]) =>
    h('span', { class: `key ${key}`, dataset: { total: String(total(key)) } },
      `${label}: ${lastMinute(key)}/s over the last minute, ${total(key)} in the hour`)));
  return h('div', { id: 'activity' }, chart, legend);
}

function processesTable(processes) {
  if (!processes.length) return h('p', { class: 'muted' }, 'No process has announced itself yet.');
  return h('table', { id: 'processes' },
    h('thead', {}, h('tr', {}, ['Process', 'Host', 'State', 'Started', 'Last heard'].map((t) => h('th', {}, t)))),
    h('tbody', {}, processes.map((p) => {
      const state = !p.live ? ['bad', 'gone'] : p.ready ? ['ok', 'ready'] : ['bad', `not ready (${p.down.join(', ')})`];
      return h('tr', { dataset: { role: p.role, state: state[1].split(' ')[0] } },
        h('td', {}, `${p.role} `, h('code', {}, p.instance.slice(-8))),
        h('td', {}, p.host),
        h('td', {}, h('span', { class: `badge ${state[0]}` }, state[1])),
        h('td', {}, when(p.startedAt)),
        h('td', {}, when(p.seenAt)));
    })));
}

async function overviewPage(gen) {
  const main = page('Overview');
  const figures = h('div', { class: 'figures' }, h('p', { class: 'muted' }, 'Loading…'));
  const activity = h('section', { class: 'card' }, h('h2', {}, 'Per second, last hour'), h('p', { class: 'muted' }, 'Loading…'));
  const processes = h('section', { class: 'card', id: 'processes-card' }, h('h2', {}, 'Processes'), h('p', { class: 'muted' }, 'Loading…'));
  const failing = h('section', { class: 'card', id: 'failing' }, h('h2', {}, 'Hooks failing in the last 24 h'));
  main.append(figures, h('p'), activity, processes, failing);

  // Activity, backlog and processes refresh while the page is open; the 24 h figures once.
  async function live() {
    let overview;
    try { overview = (await api('GET', '/api/overview')).data; } catch (err) {
      if (gen === generation) activity.replaceChildren(h('h2', {}, 'Per second, last hour'), failure(err));
      return;
    }
    if (gen !== generation) return;
    activity.replaceChildren(h('h2', {}, 'Per second, last hour'), activityChart(overview));
    processes.replaceChildren(h('h2', {}, 'Processes'), processesTable(overview.processes));
    const b = overview.backlog;
    setFigure('figure-backlog', String(b.messages));
    setFigure('figure-oldest', b.messages ? span(b.oldestWaitingMs) : '–');
    const note = document.getElementById('backlog-note');
    if (note) {
      note.textContent = b.hooksMeasured
        ? `Backlog over the ${b.hooksMeasured} hook queues deliverers measured in the last minute${b.messages ? `; ${b.hooksWaiting} with deliveries waiting, the oldest for hook ${b.oldestHookId}` : ''}.`
        : 'No deliverer has measured the hook queues in the last minute.';
    }
  }

  let hooks;
  try { hooks = await api('GET', '/api/hooks?page=1&page_size=100&includeExecutionStats=true'); } catch (err) {
    if (gen === generation) figures.replaceChildren(failure(err));
    return;
  }
  if (gen !== generation) return;
  const { data, total } = hooks;
  const sum = (key) => data.reduce((n, hook) => n + ((hook.executionStats || {})[key] || 0), 0);
  const stats = { requestCount: sum('requestCount'), successCount: sum('successCount') };
  const deadLetters = figure('dead letters (of the failing hooks below)', '…', 'figure-dead');
  figures.replaceChildren(
    figure('hooks', String(total), 'figure-hooks'),
    figure('enabled', String(data.filter((hook) => hook.enabled).length), 'figure-enabled'),
    figure('requests, 24 h', String(stats.requestCount), 'figure-requests'),
    figure('success rate, 24 h', rate(stats), 'figure-rate'),
    figure('failed attempts, 24 h', String(stats.requestCount - stats.successCount), 'figure-failed'),
    figure('deliveries waiting', '…', 'figure-backlog'),
    figure('oldest waiting delivery', '…', 'figure-oldest'),
    deadLetters);
  figures.after(h('p', { class: 'muted', id: 'backlog-note' }));
  if (total > data.length) {
    figures.append(h('p', { class: 'muted' }, `24 h figures are over the ${data.length} newest hooks.`));
  }
  await live();
  timers.push(setInterval(live, 10000));
  const failures = (hook) => (hook.executionStats.requestCount - hook.executionStats.successCount);
  const worst = data.filter((hook) => failures(hook) > 0).sort((a, b) => failures(b) - failures(a)).slice(0, 10);
  if (!worst.length) {
    failing.append(h('p', { class: 'muted' }, 'None.'));
    deadLetters.querySelector('.value').textContent = '0';
    return;
  }
  const counts = await Promise.all(worst.map((hook) =>
    api('GET', `${hookPath(hook.id)}/dead-letters?page=1&page_size=1`).then((r) => r.total, () => null)));
  if (gen !== generation) return;
  deadLetters.querySelector('.value').textContent = String(counts.reduce((n, c) => n + (c || 0), 0));
  failing.append(h('table', {},
    h('thead', {}, h('tr', {}, h('th', {}, 'Hook'), h('th', {}, 'Failed attempts'), h('th', {}, 'Success rate'), h('th', {}, 'Dead letters'))),
    h('tbody', {}, worst.map((hook, i) => h('tr', {},
      h('td', {}, h('a', { href: `#/hooks/${enc(hook.id)}` }, hook.name || hook.id)),
      h('td', {}, String(failures(hook))),
      h('td', {}, rate(hook.executionStats)),
      h('td', {}, counts[i] === null ? '?' : String(counts[i])))))));
}

// --- Hooks ---

function hooksHash(pageNo, q) {
  const params = new URLSearchParams();
  if (pageNo > 1) params.set('page', String(pageNo));
  if (q) params.set('q', q);
  const query = params.toString();
  return `#/hooks${query ? `?${query}` : ''}`;
}

function eventsOf(hook) {
  return hook.events && hook.events.length ? hook.events : (hook.event ? [hook.event] : []);
}

async function hooksPage(params, gen) {
  const pageNo = Math.max(1, Number(params.get('page')) || 1);
  const q = params.get('q') || '';
  const main = page('Hooks');
  const search = h('input', { type: 'search', id: 'search', placeholder: 'Search by name or URL', value: q });
  const form = h('form', { class: 'row' }, search, h('button', { type: 'submit' }, 'Search'),
    h('a', { class: 'button primary', href: '#/hooks/new', id: 'new-hook' }, 'Create hook'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = hooksHash(1, search.value.trim());
  });
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  main.append(h('section', { class: 'card' }, form, body));
  let result;
  try {
    const filter = q ? `&q=${enc(q)}` : '';
    result = await api('GET', `/api/hooks?page=${pageNo}&page_size=${PAGE_SIZE}&includeExecutionStats=true&includeDeliveryStats=true${filter}`);
  } catch (err) {
    if (gen === generation) body.replaceChildren(failure(err));
    return;
  }
  if (gen !== generation) return;
  const { data: hooks, total } = result;
  if (!hooks.length) {
    body.replaceChildren(h('p', { class: 'muted' }, q ? 'No hook matches.' : 'No hooks yet.'));
    return;
  }
  const last = Math.max(1, Math.ceil(total / PAGE_SIZE));
  body.replaceChildren(
    h('table', { id: 'hooks' },
      h('thead', {}, h('tr', {}, ['Name', 'URL', 'Events', 'Status', 'Success rate, 24 h', 'Requests, 24 h', 'p99, 24 h', 'Backlog'].map((t) => h('th', {}, t)))),
      h('tbody', {}, hooks.map(hookRow))),
    h('div', { class: 'row pager' },
      pageNo > 1 ? h('a', { class: 'button', href: hooksHash(pageNo - 1, q) }, 'Previous') : null,
      h('span', { class: 'muted' }, `Page ${pageNo} of ${last} (${total} hooks)`),
      pageNo < last ? h('a', { class: 'button', href: hooksHash(pageNo + 1, q), id: 'next-page' }, 'Next') : null));
}

function hookRow(hook) {
  const events = eventsOf(hook);
  const shown = events.slice(0, 3).join(', ') + (events.length > 3 ? ` +${events.length - 3}` : '');
  return h('tr', { dataset: { hookId: hook.id } },
    h('td', {}, h('a', { href: `#/hooks/${enc(hook.id)}`, class: 'hook-name' }, hook.name || '(unnamed)')),
    h('td', { class: 'url' }, hook.config.url),
    h('td', {}, shown),
    h('td', {}, statusBadge(hook), ' ', toggleButton(hook)),
    h('td', {}, rate(hook.executionStats)),
    h('td', {}, String((hook.executionStats || {}).requestCount || 0)),
    h('td', { class: 'p99' }, p99(hook.deliveryStats)),
    h('td', { class: 'backlog' }, backlog(hook.deliveryStats)));
}

// "At most" this many ms: the bound of the duration bucket the 99th percentile falls in.
function p99(stats) {
  return stats && stats.p99DurationMs !== null && stats.p99DurationMs !== undefined ? `≤ ${stats.p99DurationMs} ms` : '–';
}

function backlog(stats) {
  if (!stats || stats.backlog === null || stats.backlog === undefined) return '–';
  return stats.backlog ? `${stats.backlog}, oldest ${span(stats.oldestWaitingMs)}` : '0';
}

function statusBadge(hook) {
  return h('span', { class: `badge ${hook.enabled ? 'ok' : 'bad'}` }, hook.enabled ? 'Enabled' : 'Disabled');
}

function toggleButton(hook) {
  const button = h('button', { type: 'button', class: 'toggle' }, hook.enabled ? 'Disable' : 'Enable');
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await api('PATCH', hookPath(hook.id), { enabled: !hook.enabled });
      toast(`${hook.name || hook.id} ${hook.enabled ? 'disabled' : 'enabled'}`);
      route();
    } catch (err) {
      toast(describe(err));
      button.disabled = false;
    }
  });
  return button;
}

// The create and edit form: name, URL, events by group, custom headers.
function hookForm(events, initial, submitLabel, onSubmit) {
  const name = h('input', { type: 'text', id: 'hook-name', value: initial.name || '', required: true });
  const url = h('input', { type: 'text', id: 'hook-url', value: (initial.config || {}).url || '', required: true, placeholder: 'https://example.com/webhook' });
  const chosen = new Set(initial.events || []);
  const groups = new Map();
  for (const event of events) {
    const group = event.kind === 'interaction' ? 'Sign-in flow' : event.kind === 'exception' ? 'Security' : event.name.split('.')[0];
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push(event.name);
  }
  const picker = h('div', { id: 'event-picker' }, [...groups].map(([group, names]) => {
    const boxes = names.map((n) => h('input', { type: 'checkbox', value: n, checked: chosen.has(n), dataset: { event: n } }));
    const all = h('button', { type: 'button', class: 'link' }, 'all');
    all.addEventListener('click', () => { const on = !boxes.every((b) => b.checked); boxes.forEach((b) => { b.checked = on; }); });
    return h('fieldset', {}, h('legend', {}, group, ' ', all), names.map((n, i) => h('label', {}, boxes[i], ' ', n)));
  }));
  const headers = h('div', { id: 'headers' });
  const addHeader = (key = '', value = '') => {
    const row = h('div', { class: 'row header-row' },
      h('input', { type: 'text', class: 'header-name', placeholder: 'name', value: key }),
      h('input', { type: 'text', class: 'header-value', placeholder: 'value', value }));
    const remove = h('button', { type: 'button', class: 'link' }, 'remove');
    remove.addEventListener('click', () => row.remove());
    row.append(remove);
    headers.append(row);
  };
  Object.entries((initial.config || {}).headers || {}).forEach(([k, v]) => addHeader(k, v));
  const add = h('button', { type: 'button', id: 'add-header' }, 'Add header');
  add.addEventListener('click', () => addHeader());
  const error = h('p', { class: 'error', id: 'form-error' });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'save-hook' }, submitLabel);
  const form = h('form', { id: 'hook-form' },
    h('label', { class: 'field' }, h('span', {}, 'Name'), name),
    h('label', { class: 'field' }, h('span', {}, 'Endpoint URL'), url),
    h('div', { class: 'field' }, h('strong', {}, 'Events'), picker),
    h('div', { class: 'field' }, h('strong', {}, 'Custom headers'), headers, add),
    error, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const config = { url: url.value.trim() };
    const extra = {};
    for (const row of headers.querySelectorAll('.header-row')) {
      const key = row.querySelector('.header-name').value.trim();
      if (key) extra[key] = row.querySelector('.header-value').value;
    }
    if (Object.keys(extra).length) config.headers = extra;
    const picked = [...picker.querySelectorAll('input:checked')].map((b) => b.value);
    submit.disabled = true;
    error.textContent = '';
    try { await onSubmit({ name: name.value.trim(), events: picked, config }); } catch (err) {
      error.textContent = describe(err);
    }
    submit.disabled = false;
  });
  return form;
}

async function createPage(gen) {
  const main = page('Create hook');
  let events;
  try { events = await catalogue(); } catch (err) { main.append(failure(err)); return; }
  if (gen !== generation) return;
  main.append(h('section', { class: 'card' }, hookForm(events, {}, 'Create hook', async (body) => {
    const { data } = await api('POST', '/api/hooks', body);
    toast(`Hook ${data.name} created`);
    location.hash = `#/hooks/${enc(data.id)}`;
  })));
}

// --- A hook (the console's, or the portal's one hook) ---

async function hookPage(id, gen) {
  const main = page('');
  let hook;
  try { hook = (await api('GET', `${hookPath(id)}?includeExecutionStats=true&includeDeliveryStats=true`)).data; } catch (err) {
    if (gen !== generation) return;
    if (portal && err.status === 401) {
      main.append(h('h1', {}, 'This link has expired or is not valid'), h('p', {}, 'Ask for a new link.'));
    } else main.append(failure(err));
    return;
  }
  if (gen !== generation) return;
  if (portal) {
    main.append(h('p', { class: 'muted' }, `This page is for one endpoint; its link expires ${when(portal.expiresAt)}.`));
  }
  main.prepend(h('div', { class: 'row spread' }, h('h1', { id: 'hook-title' }, hook.name || '(unnamed)'), statusBadge(hook)));
  main.append(
    settingsSection(hook),
    keySection(hook),
    testSection(hook),
    deliveriesSection(hook, gen));
}

function settingsSection(hook) {
  const headers = Object.entries(hook.config.headers || {});
  const section = h('section', { class: 'card', id: 'settings' },
    h('h2', {}, 'Settings'),
    h('table', {}, h('tbody', {},
      h('tr', {}, h('th', {}, 'ID'), h('td', {}, h('code', {}, hook.id))),
      h('tr', {}, h('th', {}, 'Endpoint URL'), h('td', { class: 'url', id: 'hook-url-shown' }, hook.config.url)),
      h('tr', {}, h('th', {}, 'Events'), h('td', {}, eventsOf(hook).join(', '))),
      h('tr', {}, h('th', {}, 'Custom headers'), h('td', {}, headers.length ? headers.map(([k, v]) => h('div', {}, h('code', {}, `${k}: ${v}`))) : '–')),
      h('tr', {}, h('th', {}, '24 h'), h('td', {}, `${(hook.executionStats || {}).requestCount || 0} requests, success rate ${rate(hook.executionStats)}, p99 ${p99(hook.deliveryStats)}`)),
      h('tr', {}, h('th', {}, 'Waiting'), h('td', { id: 'hook-backlog' }, backlog(hook.deliveryStats))),
      h('tr', {}, h('th', {}, 'Created'), h('td', {}, when(hook.createdAt))))));
  if (portal) return section;
  const actions = h('div', { class: 'row' });
  const edit = h('button', { type: 'button', id: 'edit-hook' }, 'Edit');
  edit.addEventListener('click', async () => {
    const events = await catalogue();
    section.replaceChildren(h('h2', {}, 'Edit settings'), hookForm(events, hook, 'Save', async (body) => {
      await api('PATCH', hookPath(hook.id), body);
      toast('Saved');
      route();
    }));
  });
  const del = h('button', { type: 'button', class: 'danger', id: 'delete-hook' }, 'Delete');
  del.addEventListener('click', () => actions.after(confirmBox(
    `Delete the hook "${hook.name}"? Its pending deliveries and dead letters are dropped.`, 'Delete hook', async () => {
      await api('DELETE', hookPath(hook.id));
      toast(`Hook ${hook.name} deleted`);
      location.hash = '#/hooks';
    })));
  const link = h('button', { type: 'button', id: 'portal-link' }, 'Create portal link');
  link.addEventListener('click', async () => {
    try {
      const { data } = await api('POST', `${hookPath(hook.id)}/portal-links`, {});
      const href = new URL(data.url, location.origin).href;
      const box = h('div', { class: 'notice', id: 'portal-notice' },
        h('p', {}, `A page for this hook only, for its endpoint's owner. It expires ${when(data.expiresAt)}; anyone with the link can see its deliveries and signing key, and replay.`),
        h('input', { type: 'text', id: 'portal-url', readOnly: true, value: href, size: 80 }));
      section.querySelector('#portal-notice')?.remove();
      actions.after(box);
    } catch (err) { toast(describe(err)); }
  });
  actions.append(edit, toggleButton(hook), link, del);
  section.append(actions);
  return section;
}

function keySection(hook) {
  const hidden = '•'.repeat(24);
  const code = h('code', { id: 'signing-key' }, hidden);
  let revealed = false;
  const reveal = h('button', { type: 'button', id: 'reveal-key' }, 'Reveal');
  reveal.addEventListener('click', () => {
    revealed = !revealed;
    code.textContent = revealed ? hook.signingKey : hidden;
    reveal.textContent = revealed ? 'Hide' : 'Reveal';
  });
  const copy = h('button', { type: 'button' }, 'Copy');
  copy.addEventListener('click', () => navigator.clipboard.writeText(hook.signingKey)
    .then(() => toast('Signing key copied'), () => toast('Copying was refused: reveal the key and select it')));
  const section = h('section', { class: 'card', id: 'key' }, h('h2', {}, 'Signing key'));
  const actions = h('div', { class: 'row' }, code, reveal, copy);
  section.append(actions, h('p', { class: 'muted' },
    'Verify logto-signature-sha-256 (hex HMAC-SHA256 of the body with this key), or webhook-signature with a Standard Webhooks library and the secret whsec_ + base64(key).'));
  if (!portal) {
    const regenerate = h('button', { type: 'button', id: 'regenerate-key' }, 'Regenerate');
    regenerate.addEventListener('click', () => actions.after(confirmBox(
      'A new key signs from now on. The current key keeps signing webhook-signature beside it for the rotation overlap (HOOKBUS_KEY_ROTATION_OVERLAP, 24 h by default), so receivers can switch without a gap; logto-signature-sha-256 uses the new key at once.',
      'Regenerate key', async () => {
        const { data } = await api('PATCH', `${hookPath(hook.id)}/signing-key`);
        hook.signingKey = data.signingKey;
        if (revealed) code.textContent = hook.signingKey;
        toast('Signing key regenerated');
      })));
    actions.append(regenerate);
  }
  return section;
}

function testSection(hook) {
  const event = h('select', { id: 'test-event' }, eventsOf(hook).map((e) => h('option', { value: e }, e)));
  const send = h('button', { type: 'button', class: 'primary', id: 'send-test' }, 'Send test payload');
  const result = h('div', { id: 'test-result' });
  send.addEventListener('click', async () => {
    send.disabled = true;
    result.replaceChildren(h('p', { class: 'muted' }, 'Sending…'));
    // The portal may only test the hook's own endpoint; the console sends it explicitly.
    const body = portal ? { events: [event.value] } : { events: [event.value], config: hook.config };
    try {
      await api('POST', `${hookPath(hook.id)}/test`, body);
      result.replaceChildren(h('p', { class: 'success' }, `Delivered: ${hook.config.url} answered 2xx.`));
    } catch (err) {
      const data = err.body && err.body.data;
      result.replaceChildren(failure(err));
      if (data && data.responseBody !== undefined) result.append(h('pre', {}, pretty(data.responseBody)));
    }
    send.disabled = false;
  });
  return h('section', { class: 'card', id: 'test' }, h('h2', {}, 'Send a test payload'),
    h('p', { class: 'muted' }, 'A fake payload of the event, signed with the signing key, posted to the endpoint now (not queued, not logged).'),
    h('div', { class: 'row' }, event, send), result);
}

function deliveriesSection(hook, gen) {
  const base = hookPath(hook.id);
  const status = h('select', { id: 'log-status' }, h('option', { value: '' }, 'All results'),
    h('option', { value: 'Success' }, 'Succeeded'), h('option', { value: 'Error' }, 'Failed'));
  const eventFilter = h('select', { id: 'log-event' }, h('option', { value: '' }, 'All events'),
    eventsOf(hook).map((e) => h('option', { value: e }, e)));
  const live = h('input', { type: 'checkbox', id: 'live', checked: true });
  const refresh = h('button', { type: 'button', id: 'refresh' }, 'Refresh');
  const count = h('p', { class: 'muted', id: 'log-count' });
  const logs = h('div', { id: 'logs' }, h('p', { class: 'muted' }, 'Loading…'));
  const dead = h('div', { id: 'dead-letters' }, h('p', { class: 'muted' }, 'Loading…'));
  const deadCount = h('p', { class: 'muted', id: 'dead-count' });
  const opened = new Set();
  let lastLogs = '';
  let lastDead = '';

  const remember = (node, key) => {
    node.open = opened.has(key);
    node.addEventListener('toggle', () => { if (node.open) opened.add(key); else opened.delete(key); });
    return node;
  };

  async function loadLogs() {
    const key = eventFilter.value ? `&logKey=${enc(`TriggerHook.${eventFilter.value}`)}` : '';
    const result = status.value ? `&result=${enc(status.value)}` : '';
    const { data: records, total } = await api('GET', `${base}/recent-logs?page=1&page_size=100${key}${result}`);
    if (gen !== generation) return;
    const text = JSON.stringify([records, total]);
    if (text === lastLogs) return;
    lastLogs = text;
    count.textContent = `${records.length} shown of ${total} matching attempts in the last 24 h.`;
    logs.replaceChildren(...(records.length ? records.map(logEntry) : [h('p', { class: 'muted' }, 'No requests.')]));
  }

  function logEntry(record) {
    const p = record.payload;
    const ok = p.result === 'Success';
    return remember(h('details', { class: 'entry log', dataset: { result: p.result, webhookId: p.webhookId } },
      h('summary', {},
        h('span', {}, when(record.createdAt)),
        h('span', {}, record.key.replace(/^TriggerHook\./, '')),
        h('span', { class: `badge ${ok ? 'ok' : 'bad'}` }, ok ? 'Success' : 'Failed'),
        h('span', {}, p.response ? String(p.response.statusCode) : '–'),
        h('span', {}, `#${p.attempt}`),
        h('span', {}, `${p.durationMs} ms`)),
      h('div', {},
        h('strong', {}, 'Request'), h('p', { class: 'muted' }, `webhook-id ${p.webhookId}`),
        h('pre', { class: 'request-body' }, pretty(p.hookRequest.body)),
        h('strong', {}, 'Response'),
        p.response ? h('p', {}, `HTTP ${p.response.statusCode}`) : h('p', { class: 'muted' }, 'No response.'),
        p.response ? h('pre', { class: 'response-body' }, p.response.body || '(empty)') : null,
        p.error ? h('p', { class: 'error' }, p.error) : null)), record.id);
  }

  async function loadDead() {
    const { data, total } = await api('GET', `${base}/dead-letters?page=1&page_size=100`);
    if (gen !== generation) return;
    const text = JSON.stringify(data);
    if (text === lastDead) return;
    lastDead = text;
    deadCount.textContent = total ? `${total} dead letters, oldest first.` : '';
    dead.replaceChildren(...(data.length ? data.map(deadEntry) : [h('p', { class: 'muted' }, 'No dead letters.')]));
  }

  function deadEntry(letter) {
    const replay = h('button', { type: 'button', class: 'replay-one' }, 'Replay');
    replay.addEventListener('click', (event) => {
      event.preventDefault();
      replayWith({ eventIds: [letter.eventId] });
    });
    return remember(h('details', { class: 'entry dead' },
      h('summary', {},
        h('span', {}, when(letter.deadAt)),
        h('span', {}, letter.event || '(unreadable)'),
        h('span', { class: 'reason' }, letter.reason),
        h('span', {}, `${letter.attempts} attempts`),
        letter.eventId ? replay : h('span')),
      h('div', {},
        h('p', { class: 'muted' }, `event id ${letter.eventId || '–'}; first attempt ${when(letter.firstAttemptAt)}, last ${when(letter.lastAttemptAt)}`),
        h('pre', {}, pretty(letter.payload)))), `dead:${letter.eventId}:${letter.deadAt}`);
  }

  async function replayWith(filter) {
    try {
      const { data } = await api('POST', `${base}/dead-letters/replay`, filter);
      toast(`Replayed ${data.replayed} dead letter${data.replayed === 1 ? '' : 's'}`);
      document.getElementById('replay-result').textContent = `Replayed ${data.replayed}.`;
      await loadAll();
    } catch (err) { toast(describe(err)); }
  }

  async function loadAll() {
    try { await Promise.all([loadLogs(), loadDead()]); } catch (err) {
      if (gen === generation) toast(describe(err));
    }
  }

  const replayAll = h('button', { type: 'button', id: 'replay-all' }, 'Replay all');
  replayAll.addEventListener('click', () => replayWith({}));
  const replayEvent = h('select', { id: 'replay-event' }, h('option', { value: '' }, 'Any event'),
    eventsOf(hook).map((e) => h('option', { value: e }, e)));
  const since = h('input', { type: 'datetime-local', id: 'replay-since' });
  const until = h('input', { type: 'datetime-local', id: 'replay-until' });
  const replayFiltered = h('button', { type: 'button', id: 'replay-filtered' }, 'Replay these');
  replayFiltered.addEventListener('click', () => replayWith({
    events: replayEvent.value ? [replayEvent.value] : undefined,
    since: since.value ? new Date(since.value).getTime() : undefined,
    until: until.value ? new Date(until.value).getTime() : undefined,
  }));

  status.addEventListener('change', loadLogs);
  eventFilter.addEventListener('change', loadLogs);
  refresh.addEventListener('click', loadAll);
  loadAll();
  timers.push(setInterval(() => { if (live.checked) loadAll(); }, LIVE_MS));

  return h('div', {},
    h('section', { class: 'card', id: 'requests' },
      h('div', { class: 'row spread' }, h('h2', {}, 'Recent requests'),
        h('div', { class: 'row' }, status, eventFilter, h('label', {}, live, ' live'), refresh)),
      count, logs),
    h('section', { class: 'card', id: 'dead' },
      h('h2', {}, 'Dead letters'),
      h('p', { class: 'muted' }, 'Deliveries that never succeeded, with the reason. A replay sends them again from the first attempt.'),
      h('div', { class: 'row' }, replayAll, h('span', { class: 'muted' }, 'or'), replayEvent,
        h('label', {}, 'died from ', since), h('label', {}, 'to ', until), replayFiltered,
        h('span', { id: 'replay-result', class: 'success' })),
      deadCount, dead));
}

start();
