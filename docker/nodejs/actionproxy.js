// OpenWhisk's action-runtime protocol for kind "nodejs:20": POST /init once with the code, POST
// /run per activation, on port 8080 of the container's address on the invoker's network (the
// namespace's overlay, attached later, finds nothing listening there: only the invoker drives
// the action). The action is `function main(params)` (or `exports.main`, or the function named
// by `main`); it may return a value or a promise of one: an object or an array is the result,
// an object with `error` an application error. After each activation the proxy prints the log
// sentinel on stdout and stderr. The SDK is `require('whiskmesh')`.
'use strict';
const http = require('http');
const os = require('os');
const dns = require('dns');
const vm = require('vm');
const Module = require('module');
const path = require('path');

const SENTINEL = 'XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX';
const MAX_BODY = 64 * 1024 * 1024;
const RUN_FIELDS = ['namespace', 'action_name', 'action_version', 'activation_id', 'transaction_id',
  'deadline', 'api_key', 'api_host', 'instance_id', 'overlay_ip', 'address_map'];

let main = null;

function load(value) {
  const code = value.code;
  if (typeof code !== 'string' || code.length === 0) throw new Error('Missing main/no code to execute.');
  if (value.binary) throw new Error('zip actions are not supported by this runtime');
  const entry = value.main || 'main';
  const filename = '/action/index.js';
  const sandbox = new Module(filename);
  sandbox.filename = filename;
  sandbox.paths = Module._nodeModulePaths('/action').concat([path.join(__dirname, 'node_modules')]);
  // The code as a module whose scope also exposes its top-level `function main`.
  const wrapper = vm.runInThisContext(Module.wrap(code + `\n;if (typeof ${entry} === 'function' && typeof module.exports.${entry} !== 'function') module.exports.${entry} = ${entry};`),
    { filename });
  wrapper.call(sandbox.exports, sandbox.exports, (id) => sandbox.require(id), sandbox, filename, '/action');
  const exported = typeof sandbox.exports === 'function' ? sandbox.exports : sandbox.exports[entry];
  if (typeof exported !== 'function') throw new Error(`Action entrypoint '${entry}' is not a function.`);
  return exported;
}

function finishLogs() {
  process.stdout.write(SENTINEL + '\n');
  process.stderr.write(SENTINEL + '\n');
}

function reply(response, status, body) {
  let text;
  try {
    text = JSON.stringify(body);
  } catch (error) {
    status = 502;
    text = JSON.stringify({ error: `The action returned a result that is not JSON: ${error.message}` });
  }
  response.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  response.end(text);
}

async function run(message, response) {
  if (!main) return reply(response, 502, { error: 'Cannot run an uninitialized action.' });
  for (const field of RUN_FIELDS) {
    const name = '__OW_' + field.toUpperCase();
    const value = message[field];
    if (value === undefined || value === null) delete process.env[name];
    else process.env[name] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  let result;
  try {
    result = await main(message.value || {});
  } catch (error) {
    console.error(error && error.stack ? error.stack : String(error));
    finishLogs();
    return reply(response, 200, { error: `An exception was raised: ${error && error.message ? error.message : String(error)}` });
  }
  finishLogs();
  if (result === null || typeof result !== 'object') {
    return reply(response, 502, { error: 'The action did not return a dictionary or an array.' });
  }
  reply(response, 200, result);
}

function handle(request, response) {
  const chunks = [];
  let size = 0;
  request.on('data', (chunk) => {
    size += chunk.length;
    if (size <= MAX_BODY) chunks.push(chunk);
  });
  request.on('end', () => {
    let message;
    try {
      if (size === 0 || size > MAX_BODY) throw new Error(`request body must be 1..${MAX_BODY} bytes`);
      message = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (error) {
      return reply(response, 400, { error: `bad request: ${error.message}` });
    }
    if (request.method === 'POST' && request.url === '/init') {
      if (main) return reply(response, 403, { error: 'Cannot initialize the action more than once.' });
      const value = message.value || {};
      try {
        for (const [key, val] of Object.entries(value.env || {})) process.env[key] = typeof val === 'string' ? val : JSON.stringify(val);
        main = load(value);
      } catch (error) {
        console.error(error && error.stack ? error.stack : String(error));
        finishLogs();
        return reply(response, 502, { error: `Initialization has failed due to: ${error.message}` });
      }
      return reply(response, 200, { ok: true });
    }
    if (request.method === 'POST' && request.url === '/run') return run(message, response);
    reply(response, 404, { error: `unknown path ${request.url}` });
  });
}

function serve(address) {
  http.createServer(handle).listen(Number(process.env.PORT || 8080), address);
}

if (process.env.PROXY_BIND) {
  serve(process.env.PROXY_BIND);
} else {
  dns.lookup(os.hostname(), { family: 4 }, (error, address) => {
    if (error) {
      console.error(`actionproxy: cannot find the container's address (${error.message}); serving on all interfaces`);
      serve('0.0.0.0');
    } else {
      serve(address);
    }
  });
}
