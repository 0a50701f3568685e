// Who is using the UI: the first-run setup, the login, the header's user menu. `me` holds the
// caller ({username, role, auth}); views read `isAdmin()` to hide what a viewer cannot do.

import { api } from './api.js';
import { h, notice } from './dom.js';

export let me = null;
export const isAdmin = () => me && me.role === 'admin';

const post = (path, body) => api(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

// Resolves to the caller, or draws the setup or login page into `view` and resolves to null.
export async function whoami(view, done) {
  // Public, so a logged-out page makes no failing request (browsers log those as errors).
  const setup = await api('/api/setup');
  if (setup.needed) { view.replaceChildren(setupPage(done)); return null; }
  me = setup.me;
  drawMenu();
  if (!me) view.replaceChildren(loginPage(done));
  return me;
}

function form(title, fields, submit, label, extra) {
  const err = h('p', { class: 'err', id: 'form-error' });
  const inputs = fields.map(([name, text, type, auto]) => h('label', {}, text, h('input', { name, type: type || 'text', autocomplete: auto || 'off', required: true })));
  const button = h('button', { type: 'submit' }, label);
  const f = h('form', { class: 'account', onsubmit: async ev => {
    ev.preventDefault();
    const values = Object.fromEntries(new FormData(f));
    button.disabled = true;
    err.textContent = '';
    try { await submit(values); } catch (e) { err.textContent = e.message; } finally { button.disabled = false; }
  } }, h('h1', {}, title), extra, ...inputs, button, err);
  return f;
}

function setupPage(done) {
  return form('Set up this recorder', [
    ['code', 'Setup code (printed in the log and in the setup-code file)', 'text', 'one-time-code'],
    ['username', 'Admin user name', 'text', 'username'],
    ['password', 'Password (8 characters or more)', 'password', 'new-password'],
  ], async v => { await post('/api/setup', v); done(); }, 'Create the admin',
  h('p', {}, 'No user exists yet. The first user is an admin and can add others.'));
}

function loginPage(done) {
  return form('Log in', [
    ['username', 'User name', 'text', 'username'],
    ['password', 'Password', 'password', 'current-password'],
  ], async v => { await post('/api/login', v); done(); }, 'Log in');
}

export function passwordPage(done) {
  return form('Change your password', [
    ['current_password', 'Current password', 'password', 'current-password'],
    ['password', 'New password (8 characters or more)', 'password', 'new-password'],
  ], async v => {
    await api(`/api/users/${encodeURIComponent(me.username)}/password`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(v) });
    notice('Password changed; your other sessions have ended');
    done();
  }, 'Change');
}

// The header's menu: who, admin link, password, log out.
function drawMenu() {
  const menu = document.getElementById('user');
  if (!me || !me.auth) { menu.replaceChildren(); return; }
  menu.replaceChildren(
    h('span', { id: 'whoami' }, `${me.username} (${me.role})`),
    isAdmin() ? h('a', { href: '#/cameras', id: 'cameras-link' }, 'Cameras') : null,
    isAdmin() ? h('a', { href: '#/config', id: 'config-link' }, 'Config') : null,
    isAdmin() ? h('a', { href: '#/admin', id: 'admin-link' }, 'Admin') : null,
    h('a', { href: '#/password' }, 'Password'),
    h('button', { id: 'logout', onclick: async () => {
      await post('/api/logout', {}).catch(() => {});
      me = null;
      location.hash = '#/';
      location.reload();
    } }, 'Log out'));
}
