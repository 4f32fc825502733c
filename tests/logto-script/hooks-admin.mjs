// A hooks administration script as a Logto user writes it against Logto's Management API
// (https://docs.logto.io/ "Webhooks" API): nothing in it knows about hookbus. The test
// `logto_script.rs` runs it unchanged against hookbus's router.
//
//   LOGTO_ENDPOINT=http://127.0.0.1:7802 LOGTO_M2M_TOKEN=... RECEIVER_URL=... node hooks-admin.mjs

const endpoint = process.env.LOGTO_ENDPOINT;
const token = process.env.LOGTO_M2M_TOKEN;
const receiver = process.env.RECEIVER_URL;

const api = async (method, path, body) => {
  const response = await fetch(`${endpoint}/api${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
};

const check = (condition, message) => {
  if (!condition) {
    console.error(`FAILED: ${message}`);
    process.exit(1);
  }
};

// Create a hook for two events.
const created = await api('POST', '/hooks', {
  name: 'CRM sync',
  events: ['User.Created', 'PostSignIn'],
  config: { url: receiver, headers: { 'x-source': 'logto' } },
});
check(created.status === 201, `create: ${created.status} ${JSON.stringify(created.body)}`);
const hook = created.body;
check(typeof hook.id === 'string' && typeof hook.signingKey === 'string', 'create: id and signingKey');
check(hook.enabled === true && hook.config.url === receiver, 'create: enabled, url');

// Send a test payload and expect 204.
const tested = await api('POST', `/hooks/${hook.id}/test`, { events: ['PostSignIn'], config: hook.config });
check(tested.status === 204, `test: ${tested.status} ${JSON.stringify(tested.body)}`);

// List hooks with their execution stats, paginated.
const listed = await api('GET', '/hooks?includeExecutionStats=true&page=1&page_size=20');
check(listed.status === 200, `list: ${listed.status}`);
check(Number(listed.headers.get('total-number')) >= 1, 'list: Total-Number header');
const mine = listed.body.find((h) => h.id === hook.id);
check(mine && typeof mine.executionStats.requestCount === 'number', 'list: executionStats');
check(typeof mine.executionStats.successCount === 'number', 'list: successCount');

// Recent logs of the last day.
const logs = await api('GET', `/hooks/${hook.id}/recent-logs?page=1&page_size=10`);
check(logs.status === 200 && Array.isArray(logs.body), `recent-logs: ${logs.status}`);
check(logs.headers.get('total-number') !== null, 'recent-logs: Total-Number header');
for (const log of logs.body) {
  check(log.key.startsWith('TriggerHook.'), 'log key');
  check(['Success', 'Error'].includes(log.payload.result), 'log result');
}

// Rotate the signing key.
const rotated = await api('PATCH', `/hooks/${hook.id}/signing-key`);
check(rotated.status === 200 && rotated.body.signingKey !== hook.signingKey, 'rotate');

// Disable, then delete; afterwards the hook is gone.
const patched = await api('PATCH', `/hooks/${hook.id}`, { enabled: false });
check(patched.status === 200 && patched.body.enabled === false, 'disable');
const deleted = await api('DELETE', `/hooks/${hook.id}`);
check(deleted.status === 204, `delete: ${deleted.status}`);
const gone = await api('GET', `/hooks/${hook.id}`);
check(gone.status === 404 && gone.body.code === 'entity.not_exists_with_id', 'deleted hook is 404');

console.log(`OK ${hook.id}`);
