// The console and the portal in a real headless Chromium (Debian's `chromium`, driven by
// playwright-core), against a real pipeline that tests/tests/console.rs starts and describes
// in environment variables. It does what an operator does, through the pages only (the
// producer is called directly to publish events, as an auth service would), and fails on
// the first step that does not show what it should.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through tests/tests/console.rs`);
  return value;
};
const base = env('HOOKBUS_CONSOLE_URL');
const adminToken = env('HOOKBUS_ADMIN_TOKEN');
const producer = env('HOOKBUS_PRODUCER_URL');
const ingestToken = env('HOOKBUS_INGEST_TOKEN');
const goodUrl = env('HOOKBUS_GOOD_URL');
const failingUrl = env('HOOKBUS_FAILING_URL');
const shots = env('HOOKBUS_SCREENSHOTS');
mkdirSync(shots, { recursive: true });

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const HOOK_NAME = 'CRM <img src=x onerror="window.__pwned=2">';
const SCRIPT_ANSWER = '<script>window.__pwned=1</script>';

function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

/** Polls `probe` until it returns something truthy. */
async function until(what, probe, timeout = 30000) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

async function publish(event, count) {
  for (let i = 0; i < count; i++) {
    const res = await fetch(`${producer}/api/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ingestToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ event, userAgent: 'browser-test', ip: '203.0.113.7', data: { id: `u${i}` } }),
    });
    assert(res.status === 202, `publishing ${event}: ${res.status}`);
  }
}

async function adminApi(method, path, body) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return res.status === 204 ? null : res.json();
}

const count = (page, selector) => page.locator(selector).count();
const text = (page, selector) => page.locator(selector).first().textContent();

const browser = await chromium.launch({
  executablePath: env('HOOKBUS_CHROMIUM'),
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
const problems = [];
function watch(page) {
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (/Content.Security.Policy|Refused to/i.test(msg.text())) problems.push(`CSP: ${msg.text()}`);
  });
  page.on('request', (req) => {
    if (!req.url().startsWith(base)) problems.push(`request outside the router: ${req.url()}`);
  });
}

const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
watch(page);
let step = 'start';
const log = (name) => { step = name; console.log(`- ${name}`); };

try {
  log('sign in: a wrong token is refused, the right one kept in the tab only');
  await page.goto(`${base}/console`);
  await page.fill('#token', 'wrong');
  await page.click('button[type=submit]');
  await until('the refusal', async () => (await text(page, '#signin-error')).includes('refused'));
  await page.fill('#token', adminToken);
  await page.click('button[type=submit]');
  await page.waitForSelector('#figure-hooks');
  const stored = await page.evaluate(() => ({
    session: sessionStorage.getItem('hookbus.adminToken'),
    local: localStorage.length,
    cookies: document.cookie,
  }));
  assert(stored.session === adminToken && stored.local === 0 && stored.cookies === '', JSON.stringify(stored));
  assert(!page.url().includes(adminToken), 'the token is not in the address');

  log('create a hook: events from the catalogue, URL, a custom header');
  await page.click('a[data-nav=hooks]');
  await page.click('#new-hook');
  await page.waitForSelector('#hook-form');
  assert(await count(page, '#event-picker fieldset') >= 5, 'events grouped');
  await page.fill('#hook-name', HOOK_NAME);
  await page.fill('#hook-url', goodUrl);
  await page.check('input[data-event="User.Created"]');
  await page.check('input[data-event="PostSignIn"]');
  await page.click('#add-header');
  await page.fill('.header-name', 'x-tenant');
  await page.fill('.header-value', 'acme');
  await page.click('#save-hook');
  await page.waitForSelector('#hook-title');
  assert(await text(page, '#hook-title') === HOOK_NAME, 'the name is shown as text');
  const hookId = /#\/hooks\/(.+)$/.exec(page.url())[1];

  log('the signing key is hidden until revealed');
  assert(!(await text(page, '#signing-key')).match(/[A-Za-z0-9]{32}/), 'hidden');
  await page.click('#reveal-key');
  assert(/^[A-Za-z0-9]{32}$/.test(await text(page, '#signing-key')), 'revealed');

  log('send a test payload and see it succeed');
  await page.click('#send-test');
  await page.waitForSelector('#test-result .success');

  log('publish events and watch them appear');
  await publish('User.Created', 3);
  await until('3 successful requests', async () => (await count(page, '#logs details[data-result=Success]')) >= 3);

  log('a receiver answering <script> is shown as text and does not run');
  await page.click('#logs details summary');
  await until('the response body', async () => (await text(page, '#logs details[open] .response-body')) === SCRIPT_ANSWER);
  assert((await text(page, '#logs details[open] .request-body')).includes('"event": "User.Created"'), 'request body');
  assert(await page.evaluate(() => window.__pwned === undefined), 'no script ran');
  assert(await page.evaluate(() => document.scripts.length === 1), 'the only script is the console');

  log('the result filter');
  await page.selectOption('#log-status', 'Error');
  await until('no failed request', async () => (await text(page, '#logs')).includes('No requests.'));
  await page.selectOption('#log-status', '');
  await until('the successes again', async () => (await count(page, '#logs details[data-result=Success]')) >= 3);

  log('make the receiver fail: dead letters appear with their reason');
  await page.click('#edit-hook');
  await page.fill('#hook-url', failingUrl);
  await page.click('#save-hook');
  await until('the new URL', async () => (await text(page, '#hook-url-shown')) === failingUrl);
  await sleep(1000); // deliverers pick up a change within 200 ms
  await publish('User.Created', 2);
  await until('2 dead letters', async () => (await count(page, '#dead-letters details.dead')) === 2);
  assert((await text(page, '#dead-letters .reason')).includes('500'), 'the reason names the status');
  await until('failed requests', async () => (await count(page, '#logs details[data-result=Error]')) >= 6);
  await page.screenshot({ path: join(shots, 'console-hook.png'), fullPage: true });

  log('fix it and replay: the deliveries succeed');
  await page.click('#edit-hook');
  await page.fill('#hook-url', goodUrl);
  await page.click('#save-hook');
  await until('the fixed URL', async () => (await text(page, '#hook-url-shown')) === goodUrl);
  await sleep(1000);
  await page.click('#dead-letters details.dead .replay-one');
  await until('one replayed', async () => (await text(page, '#replay-result')) === 'Replayed 1.');
  await until('one dead letter left', async () => (await count(page, '#dead-letters details.dead')) === 1);
  await page.click('#replay-all');
  await until('the other replayed', async () => (await count(page, '#dead-letters details.dead')) === 0);
  await until('no dead letters', async () => (await text(page, '#dead-letters')).includes('No dead letters.'));
  await until('5 successful requests', async () => (await count(page, '#logs details[data-result=Success]')) >= 5);

  log('a portal link opens this hook only');
  const other = await adminApi('POST', '/api/hooks', { name: 'other team', events: ['PostSignIn'], config: { url: goodUrl } });
  await page.click('#portal-link');
  const portalUrl = await page.inputValue('#portal-url');
  assert(portalUrl.startsWith(`${base}/portal/`), portalUrl);
  const customer = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const portalPage = await customer.newPage();
  watch(portalPage);
  await portalPage.goto(portalUrl);
  await portalPage.waitForSelector('#hook-title');
  assert(await text(portalPage, '#hook-title') === HOOK_NAME, 'the portal shows the hook');
  assert(await portalPage.locator('#nav').isHidden(), 'no navigation to other hooks');
  assert(await portalPage.locator('#sign-out').isHidden(), 'nothing to sign out of');
  assert(!(await text(portalPage, 'main')).includes('null'), 'nothing missing shows');
  for (const adminOnly of ['#edit-hook', '#delete-hook', '#regenerate-key', '#portal-link']) {
    assert(await count(portalPage, adminOnly) === 0, `${adminOnly} is not in the portal`);
  }
  await until('its deliveries', async () => (await count(portalPage, '#logs details[data-result=Success]')) >= 5);
  await portalPage.click('#send-test');
  await portalPage.waitForSelector('#test-result .success');
  const refused = await portalPage.evaluate(async ([otherId, token]) => {
    const call = async (path) => (await fetch(path, { headers: { authorization: `Portal ${token}` } })).status;
    return {
      other: await call(`/api/portal/hooks/${otherId}`),
      otherLogs: await call(`/api/portal/hooks/${otherId}/recent-logs`),
      admin: await call('/api/hooks'),
    };
  }, [other.id, decodeURIComponent(new URL(portalUrl).pathname.split('/')[2])]);
  assert(refused.other === 403 && refused.otherLogs === 403 && refused.admin === 401, JSON.stringify(refused));
  assert(await portalPage.evaluate(() => window.__pwned === undefined), 'no script ran in the portal');
  await portalPage.click('#logs details summary');
  await portalPage.screenshot({ path: join(shots, 'console-portal.png'), fullPage: true });
  await customer.close();

  log('hooks list: search, disable, delete with confirmation');
  await page.click('a[data-nav=hooks]');
  await until('2 hooks', async () => (await count(page, '#hooks tbody tr')) === 2);
  const headings = await page.locator('#hooks th').allTextContents();
  assert(headings.includes('p99, 24 h') && headings.includes('Backlog'), headings.join(', '));
  const crm = `#hooks tr[data-hook-id="${hookId}"]`;
  assert((await text(page, `${crm} .p99`)).startsWith('≤ '), 'the p99 of its attempts');
  assert(/^(0|–)$/.test(await text(page, `${crm} .backlog`)), 'nothing waits');
  await page.fill('#search', 'OTHER');
  await page.click('button[type=submit]');
  await until('the search', async () => (await count(page, '#hooks tbody tr')) === 1);
  assert(await text(page, '#hooks .hook-name') === 'other team', 'found by name');
  await page.click('#hooks .toggle');
  await until('disabled', async () => (await text(page, '#hooks .badge')) === 'Disabled');
  await page.fill('#search', '');
  await page.click('button[type=submit]');
  await until('both hooks', async () => (await count(page, '#hooks tbody tr')) === 2);
  await page.screenshot({ path: join(shots, 'console-hooks.png'), fullPage: true });
  await page.click(`#hooks tr[data-hook-id="${other.id}"] .hook-name`);
  await page.waitForSelector('#delete-hook');
  await page.click('#delete-hook');
  await page.click('[data-confirm]');
  await until('back on the list without it', async () =>
    page.url().endsWith('#/hooks') && (await count(page, '#hooks tbody tr')) === 1);

  log('overview');
  await page.click('a[data-nav=overview]');
  await until('the figures', async () => Number(await text(page, '#figure-requests .value')) >= 11);
  assert(await text(page, '#figure-hooks .value') === '1', 'one hook left');
  await until('the failing hooks', async () => (await count(page, '#failing tbody tr')) === 1);
  assert(await text(page, '#figure-dead .value') === '0', 'no dead letters left after the replay');
  await until('the activity of the last hour', async () => {
    const total = async (key) => Number(await page.locator(`#activity-legend .${key}`).getAttribute('data-total'));
    return (await total('routed')) >= 5 && (await total('delivered')) >= 5 && (await total('failed')) >= 6;
  });
  assert(await count(page, '#activity polyline[data-series=routed]') === 1, 'the chart');
  for (const role of ['producer', 'router', 'deliverer']) {
    await until(`the ${role} ready`, async () => (await count(page, `#processes tr[data-role=${role}][data-state=ready]`)) === 1);
  }
  assert(await text(page, '#figure-backlog .value') === '0', 'nothing waits');
  await page.screenshot({ path: join(shots, 'console-overview.png'), fullPage: true });

  log('sign out forgets the token');
  await page.click('#sign-out');
  await page.waitForSelector('#token');
  assert(await page.evaluate(() => sessionStorage.getItem('hookbus.adminToken')) === null, 'forgotten');

  assert(problems.length === 0, problems.join('\n'));
  console.log(`console browser test: ${hookId}: every step passed`);
} catch (err) {
  await page.screenshot({ path: join(shots, 'failure.png'), fullPage: true }).catch(() => {});
  console.error(`step "${step}" failed: ${err.stack || err}`);
  if (problems.length) console.error(problems.join('\n'));
  console.error(`screenshot: ${join(shots, 'failure.png')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
