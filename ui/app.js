// The UI's entry: hash routing between the grid and one camera, and the health refresh.
// Native ES modules, no build step, no framework; it uses only the public API.

import { admin } from './admin.js';
import { cameras } from './cameras.js';
import { editor } from './editor.js';
import { h } from './dom.js';
import { focus } from './focus.js';
import { grid } from './grid.js';
import { isAdmin, passwordPage, whoami } from './session.js';
import { refreshHealth } from './status.js';

const view = document.getElementById('view');

let timers = [];
const every = (ms, f) => timers.push(setInterval(f, ms));

function clearView() {
  for (const t of timers) clearInterval(t);
  timers = [];
  // Stop videos, so their connections (live views above all) close now.
  for (const v of view.querySelectorAll('video')) { v.pause(); v.removeAttribute('src'); v.load(); }
  view.replaceChildren();
}

async function route() {
  clearView();
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  try {
    if (!await whoami(view, route)) { document.body.dataset.ready = 'login'; return; }
    if (parts[0] === 'admin' && isAdmin()) await admin(view);
    else if (parts[0] === 'cameras' && isAdmin()) await cameras(view);
    else if (parts[0] === 'config' && isAdmin()) await editor(view);
    else if (parts[0] === 'password') view.replaceChildren(passwordPage(() => { location.hash = '#/'; }));
    else if (parts[0] === 'stream' && parts[1]) await focus(view, parts[1], parts[2] === 'recordings' ? 'recordings' : 'live', parts[3], route);
    else await grid(view, every);
  } catch (e) {
    view.replaceChildren(h('p', { class: 'err' }, 'Could not load: ' + (e.message || e)));
  }
  document.body.dataset.ready = location.hash || '#/';
}

window.addEventListener('hashchange', route);
refreshHealth();
setInterval(refreshHealth, 30000);
route();
